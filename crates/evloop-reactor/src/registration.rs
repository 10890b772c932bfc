//! [`Registration`]: one fd's place in a [`Poller`](crate::Poller), removed on
//! drop.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::poller::Inner;
use crate::Interest;

/// One fd registered with a [`Poller`](crate::Poller) under a key.
///
/// Owns the registration, *not* the fd. Dropping it deregisters the fd
/// (errors such as `EBADF`/`ENOENT` are ignored: there is no one to report
/// them to).
///
/// # Invariant
///
/// Drop the `Registration` before closing its fd. An fd closed while still
/// registered can stay in the kernel's interest list (epoll tracks the open
/// file description, which `dup`s keep alive) and produce reports for a key
/// nobody expects.
///
/// # After registration
///
/// [`Poller::register`](crate::Poller::register) took a `BorrowedFd`, so the
/// fd was open then. From then on the `Registration` holds only the fd's
/// number: [`modify`](Self::modify), [`rearm`](Self::rearm) and `Drop` pass
/// that number to the backend, and safe code can close the fd (and the OS
/// reuse its number) without dropping the `Registration` first. The invariant
/// above is therefore a correctness rule, not a safety one, and the reactor
/// relies on this instead:
///
/// * The kernel checks every fd number it is given: a closed number gets
///   `EBADF` (reported to the caller) and never touches memory.
/// * On Linux, both backends are epoll (the `polling` crate uses epoll there
///   too): the kernel drops a file from the epoll set when its last fd is
///   closed, and neither backend keeps per-fd state in user space, so a fd
///   closed while registered leaves nothing dangling. `polling` documents
///   that its delete-before-close condition does not apply to epoll; what
///   it still needs, an fd that is valid when added, holds at
///   `register` (the borrow) and is checked by the kernel afterwards.
/// * A closed number that was reused for another file is the case
///   [`rearm`](Self::rearm) exists for: it adds the new file under this key
///   (`modify` gets `ENOENT` because epoll dropped the old one). At worst a
///   stale `Registration` makes readiness reports for a key, which callers
///   treat as hints (level-triggered: they retry on `EAGAIN`), or removes
///   the reused number from *this* poller on `Drop`; it never reads, writes
///   or closes the fd.
///
/// With the `polling` backend on other platforms the same holds where the
/// OS forgets closed fds itself (kqueue on the BSDs and macOS; `polling`
/// keeps only fd numbers there, so a stale one costs an `EEXIST` on a later
/// add of the reused number, never memory). A backend for
/// a platform whose poller keeps per-fd state past `close` (`polling`'s
/// `poll(2)` fallback keeps the number in a user-space list; Windows' AFD
/// keeps in-flight operations) must not rely on drop-before-close for
/// soundness: it must keep the fd open for the registration's life (tie the
/// `Registration` to the fd's borrow; owning a `dup` would keep a closed
/// socket alive) or make every use of a stale number harmless, and say
/// which in its `// SAFETY:` comments.
#[must_use = "dropping a Registration deregisters the fd at once"]
pub struct Registration {
    inner: Arc<Inner>,
    fd: RawFd,
    key: usize,
    /// # Invariant
    /// The fd is in the OS interest set iff `!interest.is_none()`.
    interest: Interest,
}

impl Registration {
    pub(crate) fn new(inner: Arc<Inner>, fd: RawFd, key: usize, interest: Interest) -> Self {
        Registration {
            inner,
            fd,
            key,
            interest,
        }
    }

    /// The registered fd.
    #[must_use]
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The key reported in this fd's [`Event`](crate::Event)s.
    #[must_use]
    pub fn key(&self) -> usize {
        self.key
    }

    /// The current interest.
    #[must_use]
    pub fn interest(&self) -> Interest {
        self.interest
    }

    /// Changes the interest; no syscall if it is unchanged.
    ///
    /// [`Interest::NONE`] stops every report for this fd, error and hang-up
    /// included (epoll reports `EPOLLERR`/`EPOLLHUP` even for an empty event
    /// mask, which would spin a level-triggered loop), by removing the fd
    /// from the OS interest set; a later non-empty interest adds it back.
    ///
    /// # Errors
    ///
    /// The OS error (`EBADF` if the fd was closed, for instance); the interest
    /// is then unchanged.
    pub fn modify(&mut self, interest: Interest) -> io::Result<()> {
        if interest == self.interest {
            return Ok(());
        }
        let sys = &self.inner.sys;
        match (self.interest.is_none(), interest.is_none()) {
            (true, false) => sys.add(self.fd, self.key, interest)?,
            (false, true) => sys.delete(self.fd)?,
            (false, false) => sys.modify(self.fd, self.key, interest)?,
            (true, true) => {}
        }
        self.interest = interest;
        Ok(())
    }
}

impl Registration {
    /// Applies `interest` with a syscall even if it is unchanged, and if the
    /// kernel no longer knows the fd (it was closed and its number reused
    /// behind the owner's back, which drops it from the epoll set) registers
    /// it anew. For callers that cannot know whether the fd they were handed
    /// is the one they registered.
    ///
    /// # Errors
    ///
    /// The OS error (`EBADF` for a closed fd); the interest is then unchanged.
    pub fn rearm(&mut self, interest: Interest) -> io::Result<()> {
        if interest.is_none() || self.interest.is_none() {
            return self.modify(interest);
        }
        let sys = &self.inner.sys;
        match sys.modify(self.fd, self.key, interest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                sys.add(self.fd, self.key, interest)?
            }
            other => other?,
        }
        self.interest = interest;
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.interest.is_none() {
            let _ = self.inner.sys.delete(self.fd);
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd)
            .field("key", &self.key)
            .field("interest", &self.interest)
            .finish()
    }
}
