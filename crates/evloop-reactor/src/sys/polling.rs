//! The portable backend: the `polling` crate in `PollMode::Level`, woken with
//! `polling::Poller::notify`.
//!
//! Used on every Unix but Linux/Android, and on those when built with
//! `--cfg evloop_polling_backend` so CI exercises it. `polling::Poller::wait`
//! costs several syscalls per call on Linux (see DESIGN.md), which is why it
//! is not the default there.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use ::polling::{PollMode, Poller};

use super::WAKER_KEY;
use crate::{Event, Interest};

/// The name [`Poller::backend_name`](crate::Poller::backend_name) reports.
pub(crate) const NAME: &str = "polling";

/// A `polling::Poller`; its own notifier is the wake-up source.
#[derive(Debug)]
pub(crate) struct Selector {
    poller: Poller,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        Ok(Selector {
            poller: Poller::new()?,
        })
    }

    pub(crate) fn add(&self, fd: RawFd, key: usize, interest: Interest) -> io::Result<()> {
        debug_assert!(fd >= 0 && key != WAKER_KEY && !interest.is_none());
        // SAFETY: `polling` requires the source to be deleted before it is
        // closed. `Registration` (the only caller) deletes it in `modify` to
        // `NONE` and in `Drop`, and its documented invariant is that it is
        // dropped before the fd is closed. An fd that is not open gets `EBADF`
        // from the kernel.
        unsafe {
            self.poller
                .add_with_mode(fd, event(key, interest), PollMode::Level)
        }
    }

    pub(crate) fn modify(&self, fd: RawFd, key: usize, interest: Interest) -> io::Result<()> {
        debug_assert!(fd >= 0 && key != WAKER_KEY && !interest.is_none());
        // SAFETY: `fd` is not -1 (the caller checked `fd >= 0`), which is all
        // `BorrowedFd` needs to be valid as a value; the borrow lives only
        // for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller
            .modify_with_mode(fd, event(key, interest), PollMode::Level)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        debug_assert!(fd >= 0);
        // SAFETY: as in `modify`: `fd >= 0` and the borrow ends with the call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller.delete(fd)
    }

    pub(crate) fn select(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        events.inner.clear();
        // `polling` retries EINTR itself, converts a timeout that overflows
        // `Instant` into "forever", and consumes any notification. Its
        // timers have at least the resolution of the OS call it makes
        // (timerfd/kevent take nanoseconds; poll(2) rounds up), so waits do
        // not end early.
        match self.poller.wait(&mut events.inner, timeout) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                events.inner.clear();
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn notify(&self) {
        // An error here would mean the notifier itself is broken; the next
        // wait would then surface it.
        let _ = self.poller.notify();
    }
}

fn event(key: usize, interest: Interest) -> ::polling::Event {
    ::polling::Event::new(key, interest.readable, interest.writable)
}

/// A reusable `polling::Events` buffer.
#[derive(Debug)]
pub(crate) struct Events {
    inner: ::polling::Events,
}

impl Events {
    pub(crate) fn with_capacity(n: usize) -> Events {
        Events {
            inner: ::polling::Events::with_capacity(
                NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN),
            ),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.inner.iter().map(|ev| {
            let failed = ev.is_interrupt() || ev.is_err().unwrap_or(false);
            Event {
                key: ev.key,
                readable: ev.readable || failed,
                writable: ev.writable || failed,
            }
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    pub(crate) fn clear(&mut self) {
        self.inner.clear();
    }
}
