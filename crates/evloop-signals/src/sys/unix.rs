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

use libc::c_int;

pub(crate) use crate::table::Claim;
use crate::table::SignalTable;

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

/// The process-global table the handler reads (see `table.rs`).
#[cfg(not(loom))]
static TABLE: SignalTable<SLOTS> = SignalTable::new();

#[cfg(loom)]
loom::lazy_static! {
    /// The process-global table the handler reads (see `table.rs`); loom's
    /// atomics cannot be built in a `static` initialiser.
    static ref TABLE: SignalTable<SLOTS> = SignalTable::new();
}

/// Makes `fd` the wake-up fd of `signum` unless another fd holds it.
pub(crate) fn claim(signum: i32, fd: RawFd) -> Claim {
    TABLE.claim(signum, fd)
}

/// Forgets `fd` as the wake-up fd of `signum` (no-op if another fd holds it).
pub(crate) fn release(signum: i32, fd: RawFd) {
    TABLE.release(signum, fd);
}

/// Forgets `fd` as the wake-up fd of every signal.
pub(crate) fn release_all(fd: RawFd) {
    TABLE.release_all(fd);
}

/// Returns once no handler can still write to an fd released before the
/// call.
pub(crate) fn quiesce() {
    TABLE.quiesce();
}

/// Clears the pending flag of `signum` (before a new owner installs it).
pub(crate) fn clear_pending(signum: i32) {
    TABLE.clear_pending(signum);
}

/// True (once) if `signum` arrived since the last call.
pub(crate) fn take_pending(signum: i32) -> bool {
    TABLE.take_pending(signum)
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
    let saved = errno::get();
    TABLE.on_signal(signum, |fd, byte| {
        // SAFETY: `write` is async-signal-safe; the buffer is one valid byte
        // on this stack. `fd` is open: owners release the slot and `quiesce`
        // (which waits for this handler) before closing it. A full pipe
        // gives EAGAIN, which is ignored on purpose.
        let _ = unsafe { libc::write(fd, std::ptr::from_ref(&byte).cast(), 1) };
    });
    errno::set(saved);
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
