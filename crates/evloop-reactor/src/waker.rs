//! The cross-thread [`Waker`] and the flag protocol that keeps it cheap.
//!
//! # Protocol
//!
//! Three flags are shared between the waiting thread and any number of
//! waking threads (all `SeqCst`):
//!
//! * `pending`: a wake happened since the waiter last cleared it.
//! * `sleeping`: the waiter is in, or about to enter, a blocking wait.
//! * `notified`: the backend's wake-up source has been signalled and not yet
//!   consumed, so another signal would be redundant.
//!
//! `wake`: `pending = true` (a swap); then, only if `sleeping` and
//! `notified` was false (swapped to true), signal the backend (write the
//! eventfd / call `polling::Poller::notify`).
//!
//! `wait` with a non-zero timeout: `sleeping = true`, then if `pending` was
//! set (swapped to false) use a zero timeout; with a zero timeout it only
//! clears `pending` (swapped to false: the caller drains its own queues
//! after every wait, so a wake folded into a non-blocking wait loses
//! nothing). After the one backend wait: `sleeping = false`, and if the
//! backend consumed a notification, `notified = false`.
//!
//! Why no wake is lost (Dekker): the waker writes `pending` then reads
//! `sleeping`; the waiter writes `sleeping` then reads `pending`. Every
//! write of `pending` is a read-modify-write, so the two sides' writes form
//! one chain in its modification order: if the waiter's swap comes first,
//! the waker's swap reads it and so sees `sleeping` (and the waiter's
//! earlier writes); if the waker's comes first, the waiter's swap reads
//! `pending` set, and with it everything the waker wrote before waking (the
//! item it posted). So at least one of them sees the other's write, and a
//! swap that clears a wake also makes the post behind it visible to the
//! drain that follows. (Plain `SeqCst` stores would do for the flags
//! alone, but loom models `SeqCst` loads and stores as `AcqRel` only and
//! cannot check that; `cargo xtask loom` checks this protocol as written.)
//! If the waiter sees `pending`, it does not block. If the waker sees
//! `sleeping`, it signals the backend (or someone else already did and
//! `notified` is still set, meaning a signal is outstanding and not yet
//! consumed), so the blocking wait returns. Either way a wake that lands after
//! the caller checked its queues ends the wait. While the loop is busy
//! (`sleeping` false) a wake is one swap and one load: no syscall, and the
//! waiter's steady state is the single backend wait.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::poller::Inner;
use crate::sync::{AtomicBool, Ordering::SeqCst};

/// The shared flags of the protocol described in the module docs.
///
/// Model-checked by `tests/loom_waker.rs` (`cargo xtask loom`), through
/// [`Poller`](crate::Poller) and [`Waker`] with the loom backend.
#[derive(Debug, Default)]
pub(crate) struct WakeState {
    pending: AtomicBool,
    sleeping: AtomicBool,
    notified: AtomicBool,
}

impl WakeState {
    /// The waker's half. `signal` is the backend's notify.
    #[inline]
    pub(crate) fn wake(&self, signal: impl FnOnce()) {
        // A swap, not a store (see "Why no wake is lost"); on x86 it is the
        // same `xchg` a `SeqCst` store compiles to.
        self.pending.swap(true, SeqCst);
        if self.sleeping.load(SeqCst) && !self.notified.swap(true, SeqCst) {
            signal();
        }
    }

    /// The waiter's half before the backend wait: returns the timeout to use.
    #[inline]
    pub(crate) fn before_wait(&self, timeout: Option<Duration>) -> Option<Duration> {
        if timeout == Some(Duration::ZERO) {
            // A swap too: reading the waker's `pending` is what makes the
            // post it announced visible to the drain that follows this wait.
            self.pending.swap(false, SeqCst);
            return timeout;
        }
        self.sleeping.store(true, SeqCst);
        if self.pending.swap(false, SeqCst) {
            Some(Duration::ZERO)
        } else {
            timeout
        }
    }

    /// The waiter's half after the backend wait (whether it succeeded or not).
    #[inline]
    pub(crate) fn after_wait(&self, consumed_notification: bool) {
        self.sleeping.store(false, SeqCst);
        if consumed_notification {
            self.notified.store(false, SeqCst);
        }
    }
}

/// Wakes a [`Poller`](crate::Poller) from any thread.
///
/// `Send + Sync + Clone`; get one with [`Poller::waker`](crate::Poller::waker).
/// It does not keep the poller's OS resources alive: once every `Poller`
/// clone and `Registration` is gone, the selector and its wake-up source are
/// closed, and waking does nothing.
#[derive(Clone)]
pub struct Waker {
    state: Arc<WakeState>,
    poller: Weak<Inner>,
}

impl Waker {
    pub(crate) fn new(state: Arc<WakeState>, poller: Weak<Inner>) -> Waker {
        Waker { state, poller }
    }

    /// Wakes a [`wait`](crate::Poller::wait) in progress, or makes the next
    /// one return at once (with no events unless fds are ready).
    ///
    /// Cheap when the loop is busy: no syscall unless the poller is (about to
    /// be) blocked, and many wakes before a wait coalesce into one.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop_reactor::{Events, Poller};
    ///
    /// let poller = Poller::new()?;
    /// let waker = poller.waker();
    /// let t = std::thread::spawn(move || waker.wake());
    /// let mut events = Events::with_capacity(8);
    /// // Returns once the other thread has woken us (or at once if it already has).
    /// poller.wait(&mut events, None)?;
    /// t.join().unwrap();
    /// # std::io::Result::Ok(())
    /// ```
    #[inline]
    pub fn wake(&self) {
        // Upgrading costs a shared atomic increment, so only the rare path
        // that must signal a sleeping poller pays it.
        self.state.wake(|| {
            if let Some(inner) = self.poller.upgrade() {
                inner.sys.notify();
            }
        });
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker").finish_non_exhaustive()
    }
}
