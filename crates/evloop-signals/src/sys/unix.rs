//! Unix signal plumbing: `sigaction`, the `extern "C"` handler, and the
//! process-global tables it reads.
//!
//! The handler runs on whichever thread the kernel picks, at any point of that
//! thread's execution, so it does only async-signal-safe work: it saves
//! `errno`, sets the signal's pending flag, writes the signal number as one
//! byte to the wake-up fd of the loop that owns the signal (a non-blocking
//! pipe; a full pipe drops the byte, which is fine because the unread bytes
//! already wake the loop and the pending flag still records the signal), and
//! restores `errno`. Everything else happens later, on the loop.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};

use libc::c_int;

/// One past the highest signal number (the C `NSIG`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const NSIG: i32 = 65;
/// One past the highest signal number (the C `NSIG`).
#[cfg(target_vendor = "apple")]
pub(crate) const NSIG: i32 = 32;
/// One past the highest signal number (the C `NSIG`).
#[cfg(target_os = "openbsd")]
pub(crate) const NSIG: i32 = 33;
/// One past the highest signal number (the C `NSIG`).
#[cfg(target_os = "netbsd")]
pub(crate) const NSIG: i32 = 64;
/// One past the highest signal number (`_SIG_MAXSIG + 1`).
#[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
pub(crate) const NSIG: i32 = 129;
/// An upper bound for other Unixes: `sigaction` rejects numbers the platform
/// lacks with `EINVAL`.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "freebsd",
    target_os = "dragonfly",
)))]
pub(crate) const NSIG: i32 = 65;

const SLOTS: usize = NSIG as usize;

/// Per signal number, the write end of the owning loop's wake-up pipe.
///
/// # Invariant
/// `-1` means no loop owns the signal. A non-negative value is an open fd:
/// owners `release` their slots and call [`quiesce`] before closing the fd, so
/// the handler never writes to a closed (or reused) fd number.
static WAKEUP_FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];

/// Per signal number: set by the handler, cleared by the owning loop when it
/// schedules the callback. Several deliveries before the loop looks coalesce
/// into one callback run, as in asyncio.
static PENDING: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];

/// Handlers currently running (on any thread); [`quiesce`] waits for zero.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

fn slot(signum: i32) -> Option<usize> {
    usize::try_from(signum).ok().filter(|&i| i > 0 && i < SLOTS)
}

/// What [`claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The signal had no wake-up fd; now it is the caller's.
    New,
    /// The signal already was the caller's.
    Already,
    /// Another loop's fd holds the signal (or the number is out of range).
    Taken,
}

/// Makes `fd` the wake-up fd of `signum` unless another fd holds it.
pub(crate) fn claim(signum: i32, fd: RawFd) -> Claim {
    let Some(i) = slot(signum) else {
        return Claim::Taken;
    };
    match WAKEUP_FDS[i].compare_exchange(-1, fd, SeqCst, SeqCst) {
        Ok(_) => Claim::New,
        Err(current) if current == fd => Claim::Already,
        Err(_) => Claim::Taken,
    }
}

/// Forgets `fd` as the wake-up fd of `signum` (no-op if another fd holds it).
pub(crate) fn release(signum: i32, fd: RawFd) {
    if let Some(i) = slot(signum) {
        let _ = WAKEUP_FDS[i].compare_exchange(fd, -1, SeqCst, SeqCst);
    }
}

/// Forgets `fd` as the wake-up fd of every signal.
pub(crate) fn release_all(fd: RawFd) {
    for entry in &WAKEUP_FDS {
        let _ = entry.compare_exchange(fd, -1, SeqCst, SeqCst);
    }
}

/// Returns once every handler that could have read a released fd from
/// [`WAKEUP_FDS`] has finished, so that fd may be closed.
///
/// A handler increments [`IN_HANDLER`] before it reads its slot; with
/// sequentially consistent atomics, a handler that this call does not see
/// running started after the release and reads `-1`. Handlers are a few
/// instructions long, so this spins at most briefly.
pub(crate) fn quiesce() {
    while IN_HANDLER.load(SeqCst) != 0 {
        std::thread::yield_now();
    }
}

/// Clears the pending flag of `signum` (before a new owner installs it).
pub(crate) fn clear_pending(signum: i32) {
    if let Some(i) = slot(signum) {
        PENDING[i].store(false, SeqCst);
    }
}

/// True (once) if `signum` arrived since the last call.
pub(crate) fn take_pending(signum: i32) -> bool {
    slot(signum).is_some_and(|i| PENDING[i].swap(false, SeqCst))
}

/// Installs the crate's handler for `signum`, with `SA_RESTART` so slow
/// system calls on other threads are not interrupted with `EINTR`.
pub(crate) fn install(signum: i32) -> io::Result<()> {
    let handler = on_signal as extern "C" fn(c_int);
    set_disposition(signum, handler as libc::sighandler_t, libc::SA_RESTART)
}

/// Restores the default disposition (`SIG_DFL`) of `signum`.
pub(crate) fn restore_default(signum: i32) -> io::Result<()> {
    set_disposition(signum, libc::SIG_DFL, 0)
}

fn set_disposition(signum: i32, handler: libc::sighandler_t, flags: c_int) -> io::Result<()> {
    // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are a
    // valid value (SIG_DFL, no flags, empty mask); the fields that matter are
    // set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = flags;
    // SAFETY: `action.sa_mask` is a valid, exclusively borrowed `sigset_t`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and outlives the call; a null
    // old-action pointer is allowed. `handler` is SIG_DFL or `on_signal`,
    // which is async-signal-safe and never unwinds.
    let rc = unsafe { libc::sigaction(signum, &action, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The signal handler. Async-signal-safe: atomics, `write`, `errno`.
extern "C" fn on_signal(signum: c_int) {
    IN_HANDLER.fetch_add(1, SeqCst);
    let saved = errno::get();
    if let Some(i) = slot(signum) {
        PENDING[i].store(true, SeqCst);
        let fd = WAKEUP_FDS[i].load(SeqCst);
        if fd >= 0 {
            // Signal numbers are below NSIG (at most 129), so they fit a byte.
            let byte = signum as u8;
            // SAFETY: `write` is async-signal-safe; the buffer is one valid
            // byte on this stack. `fd` is open: owners release the slot and
            // `quiesce` (which waits for this handler) before closing it. A
            // full pipe gives EAGAIN, which is ignored on purpose.
            let _ = unsafe { libc::write(fd, std::ptr::from_ref(&byte).cast(), 1) };
        }
    }
    errno::set(saved);
    IN_HANDLER.fetch_sub(1, SeqCst);
}

/// Saving and restoring the thread's `errno`, so the handler does not clobber
/// the value the interrupted code is about to read.
mod errno {
    use libc::c_int;

    #[cfg(any(
        target_os = "linux",
        target_os = "emscripten",
        target_os = "hurd",
        target_os = "redox",
        target_os = "fuchsia",
        target_os = "dragonfly",
    ))]
    use libc::__errno_location as location;

    #[cfg(any(
        target_os = "android",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "cygwin",
        target_os = "nuttx",
    ))]
    use libc::__errno as location;

    #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
    use libc::__error as location;

    #[cfg(any(target_os = "solaris", target_os = "illumos"))]
    use libc::___errno as location;

    /// The calling thread's `errno`.
    pub(super) fn get() -> c_int {
        // SAFETY: the libc accessor returns a valid pointer to the calling
        // thread's errno, and reading it is async-signal-safe.
        unsafe { *location() }
    }

    /// Sets the calling thread's `errno`.
    pub(super) fn set(value: c_int) {
        // SAFETY: as in `get`; the pointer is valid for writes by this thread.
        unsafe { *location() = value };
    }
}
