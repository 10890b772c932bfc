//! The portable backend: the `polling` crate in `PollMode::Level`, woken with
//! `polling::Poller::notify`.
//!
//! Used on every Unix but Linux/Android, and on those when built with
//! `--cfg evloop_polling_backend` so CI exercises it. `polling::Poller::wait`
//! costs several syscalls per call on Linux (see docs/performance.md), which is why it
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
        // SAFETY: `polling::Poller::add_with_mode` asks that the fd be valid
        // and be deleted before it is closed. Valid: the first add of a
        // number comes from `Poller::register`, which holds a `BorrowedFd`
        // for it; later adds (`Registration::modify` from `NONE`, `rearm`)
        // may see a number closed behind our back, which the kernel rejects
        // with `EBADF`, or reused, which is an open fd, registered under this
        // key. Delete-before-close: `Registration` deletes on `modify` to
        // `NONE` and on `Drop`, but safe code may close first. On Linux and
        // Android `polling` is epoll, where (as its own docs say) that
        // condition does not apply: the kernel drops a closed file from the
        // set and `polling` keeps no per-fd state. On kqueue the kernel drops
        // a closed fd's kevents and `polling` keeps only the number (a stale
        // one costs `EEXIST`). Platforms whose poller keeps per-fd state past
        // `close` need more; see "After registration" on `Registration`.
        unsafe {
            self.poller
                .add_with_mode(fd, event(key, interest), PollMode::Level)
        }
    }

    pub(crate) fn modify(&self, fd: RawFd, key: usize, interest: Interest) -> io::Result<()> {
        debug_assert!(fd >= 0 && key != WAKER_KEY && !interest.is_none());
        // SAFETY: `fd >= 0` (it came from a `BorrowedFd` at registration),
        // so it is not the -1 niche `BorrowedFd` forbids, and the borrow lives
        // only for this call. If the number was closed behind our back the
        // kernel answers `EBADF`; if it was reused, `polling`'s epoll/kqueue
        // `modify` only changes this poller's interest in it (`ENOENT` if it
        // is not in the set): it never reads, writes or closes the fd.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller
            .modify_with_mode(fd, event(key, interest), PollMode::Level)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        debug_assert!(fd >= 0);
        // SAFETY: as in `modify`: `fd >= 0`, the borrow ends with the call,
        // and a stale number only removes it from this poller's set (or gets
        // `EBADF`/`ENOENT`).
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
