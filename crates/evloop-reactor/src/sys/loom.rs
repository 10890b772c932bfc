//! The model-checking backend (`--cfg loom`): no fds, and the eventfd
//! replaced by a counter that loom can see.
//!
//! The waker protocol (`waker.rs`) is the code under test; this backend only
//! has to behave like the eventfd and the blocking wait do, in the ways the
//! protocol relies on:
//!
//! * [`Selector::notify`] is the eventfd `write`: it adds one to an unread
//!   counter (under a loom `Mutex`) and wakes a blocked `select`.
//! * [`Selector::select`] with `None` blocks (on a loom `Condvar`) until the
//!   counter is non-zero, then reads it to zero and reports the consumed
//!   notification, as the epoll backend does when the eventfd fired. A wait
//!   that nothing ends is a thread blocked for ever, which loom reports as a
//!   deadlock: that is how a lost wake-up shows.
//! * With a finite timeout (zero or not) it does not block: loom has no
//!   clock, so a timed wait is taken to time out at once. That is the
//!   weakest assumption for the protocol (the models that look for lost
//!   wake-ups wait with `None`).
//!
//! It also counts what a model asserts on ([`Notifications`]): how many
//! writes there were, and the most that were ever unread at once.
//!
//! Registering fds is not modelled: `add`/`modify`/`delete` fail with
//! `Unsupported`.

use std::io;
use std::time::Duration;

use loom::sync::{Condvar, Mutex};

use crate::{Event, Interest, RawFd};

/// The backend's name under loom.
pub(crate) const NAME: &str = "loom";

/// What the stand-in for the eventfd saw, for a model to assert on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notifications {
    /// `notify` calls (eventfd writes).
    pub writes: u64,
    /// The most writes that were ever unread at once (eventfd counter peak).
    pub max_unread: u64,
    /// Waits that blocked (timeout `None`) and were ended by a notification.
    pub blocking_waits: u64,
}

#[derive(Debug, Default)]
struct Counter {
    unread: u64,
    seen: Notifications,
}

/// The stand-in selector: a counter and a condition variable.
#[derive(Debug)]
pub(crate) struct Selector {
    counter: Mutex<Counter>,
    readable: Condvar,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        Ok(Selector {
            counter: Mutex::new(Counter::default()),
            readable: Condvar::new(),
        })
    }

    pub(crate) fn add(&self, _fd: RawFd, _key: usize, _interest: Interest) -> io::Result<()> {
        Err(unsupported())
    }

    pub(crate) fn modify(&self, _fd: RawFd, _key: usize, _interest: Interest) -> io::Result<()> {
        Err(unsupported())
    }

    pub(crate) fn delete(&self, _fd: RawFd) -> io::Result<()> {
        Err(unsupported())
    }

    pub(crate) fn select(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        events.clear();
        let mut counter = self.counter.lock().unwrap_or_else(|e| e.into_inner());
        if timeout.is_none() {
            while counter.unread == 0 {
                counter = self
                    .readable
                    .wait(counter)
                    .unwrap_or_else(|e| e.into_inner());
            }
            counter.seen.blocking_waits += 1;
        }
        let fired = counter.unread > 0;
        counter.unread = 0;
        Ok(fired)
    }

    pub(crate) fn notify(&self) {
        let mut counter = self.counter.lock().unwrap_or_else(|e| e.into_inner());
        counter.unread += 1;
        counter.seen.writes += 1;
        counter.seen.max_unread = counter.seen.max_unread.max(counter.unread);
        drop(counter);
        self.readable.notify_all();
    }

    /// What the model asserts on.
    pub(crate) fn notifications(&self) -> Notifications {
        self.counter.lock().unwrap_or_else(|e| e.into_inner()).seen
    }
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "the loom backend does not model fds",
    )
}

/// Always empty: no fd is ever registered.
#[derive(Debug, Default)]
pub(crate) struct Events {
    _private: (),
}

impl Events {
    pub(crate) fn with_capacity(_n: usize) -> Events {
        Events::default()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::empty()
    }

    pub(crate) fn len(&self) -> usize {
        0
    }

    pub(crate) fn clear(&mut self) {}
}
