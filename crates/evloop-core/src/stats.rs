//! Debug mode switches and the always-on counters of `EventLoop::stats()`
//! (docs/behaviour.md 15).

use std::cell::Cell;
use std::time::{Duration, Instant};

use evloop_timers::Clock;

use crate::EventLoop;

/// Counters kept by every loop, debug mode or not; reading them is free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Iterations of `run_once`.
    pub iterations: u64,
    /// Polls of the reactor (`epoll_wait` calls): one per iteration, fewer
    /// with relaxed I/O polling ([`IoPolling`](crate::IoPolling)).
    pub polls: u64,
    /// Callbacks, watchers and task steps run (cancelled ones included).
    pub callbacks: u64,
    /// Timers moved to the ready queue.
    pub timers_fired: u64,
    /// fd readiness events received from the reactor.
    pub io_events: u64,
    /// Iterations whose batch of callbacks took at least
    /// `slow_callback_duration` (measured always, one clock read per batch).
    pub slow_iterations: u64,
    /// Single callbacks slower than `slow_callback_duration` (counted in
    /// debug mode only, where each callback is timed).
    pub slow_callbacks: u64,
    /// Loop lag: how late the most recent timer batch ran after its deadline.
    pub last_lag: Duration,
    /// The largest loop lag seen.
    pub max_lag: Duration,
}

#[derive(Default)]
pub(crate) struct StatCells {
    pub(crate) iterations: Cell<u64>,
    pub(crate) polls: Cell<u64>,
    pub(crate) callbacks: Cell<u64>,
    pub(crate) timers_fired: Cell<u64>,
    pub(crate) io_events: Cell<u64>,
    pub(crate) slow_iterations: Cell<u64>,
    pub(crate) slow_callbacks: Cell<u64>,
    last_lag: Cell<Duration>,
    max_lag: Cell<Duration>,
}

impl StatCells {
    pub(crate) fn record_lag(&self, lag: Duration) {
        self.last_lag.set(lag);
        if lag > self.max_lag.get() {
            self.max_lag.set(lag);
        }
    }

    fn snapshot(&self) -> LoopStats {
        LoopStats {
            iterations: self.iterations.get(),
            polls: self.polls.get(),
            callbacks: self.callbacks.get(),
            timers_fired: self.timers_fired.get(),
            io_events: self.io_events.get(),
            slow_iterations: self.slow_iterations.get(),
            slow_callbacks: self.slow_callbacks.get(),
            last_lag: self.last_lag.get(),
            max_lag: self.max_lag.get(),
        }
    }
}

impl EventLoop {
    /// The loop's counters (docs/behaviour.md 15.2).
    pub fn stats(&self) -> LoopStats {
        self.inner.stats.snapshot()
    }

    /// True in debug mode.
    pub fn get_debug(&self) -> bool {
        self.inner.debug.get()
    }

    /// Turns debug mode on or off: slow callbacks logged with where they were
    /// scheduled. (The thread check asyncio does in debug mode is a compile
    /// error here: `EventLoop` is `!Send`.)
    pub fn set_debug(&self, on: bool) {
        self.inner.debug.set(on);
    }

    /// How long a callback may run before it counts as slow.
    pub fn slow_callback_duration(&self) -> Duration {
        self.inner.slow_callback_duration.get()
    }

    /// Sets how long a callback may run before it counts as slow.
    pub fn set_slow_callback_duration(&self, limit: Duration) {
        self.inner.slow_callback_duration.set(limit);
    }

    /// Live timers in the heap (cancelled ones excluded).
    pub fn pending_timers(&self) -> usize {
        self.inner.timers.borrow().len()
    }

    /// Callbacks waiting in the ready queue.
    pub fn pending_callbacks(&self) -> usize {
        self.inner.ready.borrow().len()
    }
}

/// Times a batch for the always-on counters: on the loop's clock when it is
/// virtual (so tests are deterministic), else on a coarse real clock (a few
/// ns instead of `Instant::now`'s tens, which would cost as much as running
/// a callback; a 100 ms threshold needs no better than milliseconds).
pub(crate) enum Stopwatch {
    Loop(Instant),
    Coarse(Duration),
}

impl Stopwatch {
    pub(crate) fn start(clock: &dyn Clock) -> Self {
        if clock.is_virtual() {
            Stopwatch::Loop(clock.now())
        } else {
            Stopwatch::Coarse(coarse_now())
        }
    }

    pub(crate) fn elapsed(&self, clock: &dyn Clock) -> Duration {
        match self {
            Stopwatch::Loop(start) => clock.now().saturating_duration_since(*start),
            Stopwatch::Coarse(start) => coarse_now().saturating_sub(*start),
        }
    }
}

/// A cheap monotonic reading (a few ns, millisecond resolution) for the
/// always-on counters: `Instant::now` costs as much as running a callback,
/// and a 100 ms threshold needs no better. Not the loop's clock: virtual time
/// is for timers, these counters measure real work.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn coarse_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or_default(),
        u32::try_from(t.tv_nsec).unwrap_or_default(),
    )
}

/// A monotonic reading for the always-on counters.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn coarse_now() -> Duration {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}
