//! [`Poller`]: registering fds and waiting for readiness; [`Events`]: the
//! reusable buffer a wait fills.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::registration::Registration;
use crate::sys;
use crate::waker::{WakeState, Waker};
use crate::{Event, Interest};

/// What a [`Poller`], its [`Registration`]s and its [`Waker`]s share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) sys: sys::Selector,
    pub(crate) wake: Arc<WakeState>,
}

/// A level-triggered readiness selector with a cross-thread waker.
///
/// Cheap to clone (an `Arc` inside) and `Send + Sync`, but built for one
/// waiting thread: call [`wait`](Poller::wait) from one thread at a time
/// (the loop's); [`Waker::wake`] may be called from anywhere.
///
/// The key `usize::MAX` is reserved for the internal wake-up source and is
/// never reported; [`register`](Poller::register) rejects it.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use evloop_reactor::{Event, Events, Interest, Poller};
///
/// let (a, mut b) = UnixStream::pair()?;
/// let poller = Poller::new()?;
/// let reg = poller.register(a.as_fd(), 7, Interest::READABLE)?;
/// b.write_all(b"x")?;
///
/// let mut events = Events::with_capacity(16);
/// let n = poller.wait(&mut events, Some(Duration::from_secs(5)))?;
/// assert_eq!(n, 1);
/// assert_eq!(
///     events.iter().next(),
///     Some(Event { key: 7, readable: true, writable: false })
/// );
/// drop(reg); // before `a` is closed
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct Poller {
    inner: Arc<Inner>,
}

impl Poller {
    /// Creates a poller with the platform's backend.
    ///
    /// # Errors
    ///
    /// The OS error if the selector or its wake-up source cannot be created
    /// (for example `EMFILE`).
    pub fn new() -> io::Result<Poller> {
        Ok(Poller {
            inner: Arc::new(Inner {
                sys: sys::Selector::new()?,
                wake: Arc::default(),
            }),
        })
    }

    /// The backend in use: `"epoll"` or `"polling"`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        sys::NAME
    }

    /// Registers `fd` under `key` with the given interest, level-triggered.
    ///
    /// Taking a [`BorrowedFd`] is the proof that `fd` is open while it is
    /// registered: safe code cannot hand the backend a negative, made-up or
    /// closed fd number. The returned [`Registration`] keeps only the fd's
    /// *number* (it owns the registration, not the fd): drop it (which
    /// deregisters) before closing the fd. With [`Interest::NONE`] nothing is
    /// registered with the OS until [`Registration::modify`] asks for
    /// something, so errors for the fd surface then. What the reactor relies
    /// on after this call, when the fd may be closed behind its back, is
    /// written on [`Registration`].
    ///
    /// # Errors
    ///
    /// * `InvalidInput` if `key` is `usize::MAX` (reserved).
    /// * OS errors keep their errno: `EEXIST` if the fd is already
    ///   registered with this poller, `EPERM` for fds that cannot be polled,
    ///   such as regular files (epoll).
    pub fn register(
        &self,
        fd: BorrowedFd<'_>,
        key: usize,
        interest: Interest,
    ) -> io::Result<Registration> {
        if key == sys::WAKER_KEY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "key usize::MAX is reserved by evloop-reactor",
            ));
        }
        let fd = fd.as_raw_fd();
        if !interest.is_none() {
            self.inner.sys.add(fd, key, interest)?;
        }
        Ok(Registration::new(
            Arc::clone(&self.inner),
            fd,
            key,
            interest,
        ))
    }

    /// One wait for readiness, blocking up to `timeout` (`None`: no limit).
    ///
    /// Clears `events`, fills it with at most its capacity of events and
    /// returns how many. Returns early, possibly with no events, when a
    /// [`Waker`] wakes it, and at once if a wake happened since the previous
    /// wait. A timeout is rounded up to the backend's resolution (whole
    /// milliseconds with epoll), so the wait never ends before it; timeouts
    /// too large for the OS are clamped (about 24.8 days with epoll), never a
    /// panic. An interrupted wait (`EINTR`) returns `Ok(0)`.
    ///
    /// Steady state costs one syscall (`epoll_pwait`) with the epoll backend
    /// and does not allocate.
    ///
    /// # Errors
    ///
    /// The OS error from the wait itself (rare: `EBADF`/`EINVAL` would mean a
    /// bug).
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        let timeout = self.inner.wake.before_wait(timeout);
        let res = self.inner.sys.select(&mut events.inner, timeout);
        // On an error, assume the notification may be gone: an extra signal
        // later is harmless, a `notified` flag stuck at true would lose wakes.
        self.inner.wake.after_wait(!matches!(res, Ok(false)));
        res?;
        Ok(events.len())
    }

    /// A handle that wakes this poller from any thread.
    #[must_use]
    pub fn waker(&self) -> Waker {
        Waker::new(Arc::clone(&self.inner.wake), Arc::downgrade(&self.inner))
    }

    /// The wake-up writes the loom backend counted, for a model to assert
    /// on (`cargo xtask loom`); only with `--cfg loom`.
    #[cfg(loom)]
    #[must_use]
    pub fn notifications(&self) -> crate::Notifications {
        self.inner.sys.notifications()
    }
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller")
            .field("backend", &sys::NAME)
            .field("sys", &self.inner.sys)
            .finish()
    }
}

/// A reusable buffer of [`Event`]s filled by [`Poller::wait`].
///
/// Allocate it once with the capacity you want per wait (the default is
/// 1024) and pass it to every wait.
pub struct Events {
    inner: sys::Events,
}

impl Events {
    /// The capacity [`Events::default`] uses.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A buffer for up to `n` events per wait (at least 1).
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Events {
            inner: sys::Events::with_capacity(n),
        }
    }

    /// The events from the last wait.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.inner.iter()
    }

    /// How many events the last wait reported.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Returns `true` if the last wait reported no events.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the events (keeps the capacity).
    pub fn clear(&mut self) {
        self.inner.clear();
    }
}

impl Default for Events {
    fn default() -> Self {
        Events::with_capacity(Events::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
