//! How often the loop polls for I/O while callbacks are ready: every
//! iteration (asyncio's `_run_once`, the default) or, opt-in, only every N
//! callbacks or T of time ([`IoPolling::Relaxed`]).

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use evloop_timers::Clock;

/// How often the loop polls the reactor for I/O while callbacks are ready
/// ([`Builder::io_polling`](crate::Builder::io_polling)).
///
/// Whatever the mode, an iteration whose ready queue is empty polls (and may
/// sleep there), and every iteration still takes in what other threads
/// posted, runs the due timers and runs exactly the batch ready when it
/// began (docs/behaviour.md 3.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoPolling {
    /// Poll once per iteration, as asyncio does: a callback chain pays one
    /// `epoll_wait` per link, and an fd that becomes readable is seen by the
    /// next iteration.
    #[default]
    EveryIteration,
    /// While callbacks are ready, poll only once `callbacks` callbacks have
    /// run since the last poll, or `interval` has passed since it on the
    /// loop's clock. An iteration that skips the poll costs no syscall, so a
    /// callback chain runs several times faster, and I/O waits for up to
    /// that many callbacks (or that long) longer.
    ///
    /// The clock is read only after 1, 2, 4, … callbacks since the poll, and
    /// sooner when the callbacks so far project that `interval` will be
    /// reached (a handful of reads per poll, not one per callback): with
    /// callbacks of similar length the poll comes at most about one callback
    /// after `interval`; a single slow callback after many fast ones can delay
    /// it by up to as many callbacks again. On a virtual clock, time stands
    /// still while callbacks are ready, so only `callbacks` applies.
    /// `callbacks` = 1 or a zero `interval` polls every iteration.
    Relaxed {
        /// Callbacks (timers, I/O callbacks and task steps included) run
        /// between two polls at most.
        callbacks: NonZeroUsize,
        /// Time between two polls at most (see above for how closely).
        interval: Duration,
    },
}

impl IoPolling {
    /// The relaxed mode the benchmarks use: poll at least every 64 callbacks
    /// or 1 ms. 64 callbacks of a chain take a few µs, so the syscall is
    /// amortised to a few ns per callback while I/O waits a few µs more; the
    /// 1 ms bound only matters when callbacks are slow.
    pub const RELAXED: IoPolling = IoPolling::Relaxed {
        callbacks: NonZeroUsize::new(64).expect("64 is not zero"),
        interval: Duration::from_millis(1),
    };
}

/// Decides, per iteration, whether a relaxed loop polls; remembers when and
/// after how many callbacks it last did.
#[derive(Debug)]
pub(crate) struct PollGate {
    mode: IoPolling,
    /// The loop's callback counter (`LoopStats::callbacks`) at the last poll.
    polled_after: Cell<u64>,
    /// When the last poll returned, on the loop's clock (`None` before the first).
    polled_at: Cell<Option<Instant>>,
    /// Callbacks since the last poll after which the clock is next read.
    next_check: Cell<u64>,
}

impl PollGate {
    pub(crate) fn new(mode: IoPolling) -> PollGate {
        PollGate {
            mode,
            polled_after: Cell::new(0),
            polled_at: Cell::new(None),
            next_check: Cell::new(1),
        }
    }

    /// The mode the loop was built with.
    pub(crate) fn mode(&self) -> IoPolling {
        self.mode
    }

    #[inline]
    pub(crate) fn is_relaxed(&self) -> bool {
        matches!(self.mode, IoPolling::Relaxed { .. })
    }

    /// Whether an iteration with callbacks ready should poll, `callbacks`
    /// being the loop's callback counter now (always true by default).
    #[inline]
    pub(crate) fn should_poll(&self, callbacks: u64, clock: &dyn Clock) -> bool {
        let IoPolling::Relaxed {
            callbacks: limit,
            interval,
        } = self.mode
        else {
            return true;
        };
        let since = callbacks.saturating_sub(self.polled_after.get());
        if since >= limit.get() as u64 {
            return true;
        }
        if since < self.next_check.get() {
            return false;
        }
        self.interval_passed(since, interval, clock)
    }

    /// Reads the clock: true if `interval` has passed since the last poll;
    /// else sets when to read it next.
    fn interval_passed(&self, since: u64, interval: Duration, clock: &dyn Clock) -> bool {
        let now = clock.now();
        let Some(polled_at) = self.polled_at.get() else {
            // No poll yet (callbacks were ready when the loop started): time
            // counts from this first reading.
            self.polled_at.set(Some(now));
            self.next_check.set(since + since.max(1));
            return false;
        };
        let elapsed = now.saturating_duration_since(polled_at);
        if elapsed >= interval {
            return true;
        }
        self.next_check
            .set(since + next_step(since, elapsed, interval));
        false
    }

    /// Records a poll, `callbacks` being the loop's callback counter.
    #[inline]
    pub(crate) fn polled(&self, callbacks: u64, clock: &dyn Clock) {
        if let IoPolling::EveryIteration = self.mode {
            return;
        }
        self.polled_after.set(callbacks);
        // A clock read per poll: next to the syscall it is small, and a busy
        // loop polls only every N callbacks.
        self.polled_at.set(Some(clock.now()));
        self.next_check.set(1);
    }
}

/// How many more callbacks to run before reading the clock again, `since`
/// callbacks having taken `elapsed` (< `interval`): as many as should bring
/// it to `interval` at the pace so far, but at most `since` (doubling), so a
/// pace that slows down is caught within a factor of two; at least one.
fn next_step(since: u64, elapsed: Duration, interval: Duration) -> u64 {
    let elapsed_ns = elapsed.as_nanos();
    if elapsed_ns == 0 {
        return since.max(1);
    }
    let left_ns = interval.saturating_sub(elapsed).as_nanos();
    let projected = u128::from(since) * left_ns / elapsed_ns;
    u64::try_from(projected)
        .unwrap_or(u64::MAX)
        .clamp(1, since.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn next_step_doubles_while_the_clock_shows_nothing() {
        assert_eq!(next_step(1, Duration::ZERO, MS), 1);
        assert_eq!(next_step(8, Duration::ZERO, MS), 8);
    }

    #[test]
    fn next_step_aims_at_the_interval_at_the_pace_so_far() {
        // 10 callbacks took 0.5 ms of 1 ms: 10 more would reach it.
        assert_eq!(next_step(10, MS / 2, MS), 10);
        // 10 callbacks took 0.8 ms: 2.5 more, rounded down.
        assert_eq!(next_step(10, MS * 8 / 10, MS), 2);
        // Far from it: never more than doubling.
        assert_eq!(next_step(10, MS / 100, MS), 10);
        // Nearly there: at least one.
        assert_eq!(next_step(10, MS * 999 / 1000, MS), 1);
    }

    #[test]
    fn every_iteration_always_polls() {
        let gate = PollGate::new(IoPolling::EveryIteration);
        let clock = evloop_timers::VirtualClock::new();
        assert!(gate.should_poll(0, &clock));
        gate.polled(5, &clock);
        assert!(gate.should_poll(5, &clock));
    }

    #[test]
    fn relaxed_polls_after_the_callback_limit_on_a_still_clock() {
        let gate = PollGate::new(IoPolling::Relaxed {
            callbacks: NonZeroUsize::new(4).expect("non-zero"),
            interval: MS,
        });
        let clock = evloop_timers::VirtualClock::new();
        gate.polled(10, &clock);
        assert!(!gate.should_poll(10, &clock));
        assert!(!gate.should_poll(13, &clock));
        assert!(gate.should_poll(14, &clock));
    }

    #[test]
    fn relaxed_polls_once_the_interval_passed() {
        let gate = PollGate::new(IoPolling::Relaxed {
            callbacks: NonZeroUsize::MAX,
            interval: MS,
        });
        let clock = evloop_timers::VirtualClock::new();
        gate.polled(0, &clock);
        assert!(!gate.should_poll(1, &clock));
        clock.advance(MS);
        // The next reading is due after 2 callbacks (doubling).
        assert!(!gate.should_poll(1, &clock));
        assert!(gate.should_poll(2, &clock));
    }
}
