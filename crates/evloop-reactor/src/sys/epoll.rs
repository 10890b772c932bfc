//! The Linux backend: `epoll` through `rustix::event::epoll`, woken through an
//! `eventfd` registered once under [`WAKER_KEY`].
//!
//! Steady state is one `epoll_wait` (rustix issues `epoll_pwait`) per
//! [`Selector::select`]: no `epoll_ctl` re-arm (registrations are
//! level-triggered), no timerfd (the timeout is passed in milliseconds,
//! rounded up), and the eventfd is read only when it fired.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use rustix::event::{eventfd, EventfdFlags, Timespec};

use super::WAKER_KEY;
use crate::{Event, Interest};

/// The name [`Poller::backend_name`](crate::Poller::backend_name) reports.
pub(crate) const NAME: &str = "epoll";

/// An epoll instance plus its eventfd waker.
#[derive(Debug)]
pub(crate) struct Selector {
    epoll: OwnedFd,
    /// # Invariant
    /// Registered in `epoll` for `IN` under [`WAKER_KEY`] for the whole life
    /// of the selector; non-blocking, so draining an empty counter is
    /// `EAGAIN`, never a hang.
    eventfd: OwnedFd,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let eventfd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &eventfd,
            epoll::EventData::new_u64(WAKER_KEY as u64),
            epoll::EventFlags::IN,
        )?;
        Ok(Selector { epoll, eventfd })
    }

    pub(crate) fn add(&self, fd: RawFd, key: usize, interest: Interest) -> io::Result<()> {
        debug_assert!(fd >= 0 && key != WAKER_KEY && !interest.is_none());
        // SAFETY: `fd >= 0` (it came from a `BorrowedFd` at registration),
        // so it is not the -1 niche `BorrowedFd` forbids; the borrow lives
        // only for this one `epoll_ctl`, which reports `EBADF` if the number
        // was closed behind our back and, if it was reused, adds that open
        // file to this epoll set under this key (what `rearm` wants). The
        // kernel drops a closed file from the set itself and we keep no
        // per-fd state, so nothing dangles; see "After registration" on
        // `Registration`.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(key as u64),
            flags(interest),
        )?;
        Ok(())
    }

    pub(crate) fn modify(&self, fd: RawFd, key: usize, interest: Interest) -> io::Result<()> {
        debug_assert!(fd >= 0 && key != WAKER_KEY && !interest.is_none());
        // SAFETY: as in `add`: `fd >= 0`, the borrow ends with the call, and a
        // stale number gets `EBADF`/`ENOENT` or changes only this set's
        // interest in it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        epoll::modify(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(key as u64),
            flags(interest),
        )?;
        Ok(())
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        debug_assert!(fd >= 0);
        // SAFETY: as in `add`: `fd >= 0`, the borrow ends with the call, and a
        // stale number gets `EBADF`/`ENOENT` or leaves only this set.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        epoll::delete(&self.epoll, fd)?;
        Ok(())
    }

    pub(crate) fn select(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        events.list.clear();
        let timeout = timeout.map(timespec_millis_ceil);
        match epoll::wait(
            &self.epoll,
            spare_capacity(&mut events.list),
            timeout.as_ref(),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        // At most one entry carries the waker key: take it out, and drain the
        // eventfd so it stops being readable.
        let waker = events
            .list
            .iter()
            .position(|ev| ev.data.u64() == WAKER_KEY as u64);
        match waker {
            Some(pos) => {
                events.list.remove(pos);
                let mut buf = [0_u8; 8];
                // EAGAIN (already drained) and EINTR are harmless: the counter
                // is then 0, or still set and reported on the next wait.
                let _ = rustix::io::read(&self.eventfd, &mut buf);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub(crate) fn notify(&self) {
        // Cannot fail with EAGAIN: the waker protocol writes at most once per
        // drain, so the counter stays far below its maximum.
        let _ = rustix::io::write(&self.eventfd, &1_u64.to_ne_bytes());
    }
}

/// `epoll_wait` takes whole milliseconds: round up so a wait never ends
/// before `timeout`, and clamp to `i32::MAX` ms (about 24.8 days) so the
/// value always fits and rustix uses `epoll_pwait`, never `epoll_pwait2`.
fn timespec_millis_ceil(timeout: Duration) -> Timespec {
    let ms = timeout
        .as_millis()
        .saturating_add(u128::from(timeout.subsec_nanos() % 1_000_000 != 0));
    let ms = i64::try_from(ms).map_or(i64::from(i32::MAX), |ms| ms.min(i64::from(i32::MAX)));
    Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    }
}

fn flags(interest: Interest) -> epoll::EventFlags {
    let mut flags = epoll::EventFlags::empty();
    if interest.readable {
        flags |= epoll::EventFlags::IN;
    }
    if interest.writable {
        flags |= epoll::EventFlags::OUT;
    }
    flags
}

/// A reusable buffer of raw `epoll_event`s.
pub(crate) struct Events {
    /// # Invariant
    /// Capacity is at least 1 and is never grown by `select`.
    list: Vec<epoll::Event>,
}

// SAFETY: `epoll::Event` is `!Send` only because its `EventData` union can
// hold a `*mut c_void`. We only ever store and read `u64` keys in it, never a
// pointer that is dereferenced, so moving the buffer to another thread is
// sound. (Not `Sync`, like `polling::Events`, which the other backend uses.)
unsafe impl Send for Events {}

impl Events {
    pub(crate) fn with_capacity(n: usize) -> Events {
        Events {
            list: Vec::with_capacity(n.max(1)),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.list.iter().map(|ev| {
            let flags = ev.flags;
            // Like Python's selectors: anything but OUT counts as readable,
            // anything but IN as writable, so ERR/HUP set both.
            Event {
                key: ev.data.u64() as usize,
                readable: !(flags - epoll::EventFlags::OUT).is_empty(),
                writable: !(flags - epoll::EventFlags::IN).is_empty(),
            }
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("len", &self.list.len())
            .field("capacity", &self.list.capacity())
            .finish()
    }
}
