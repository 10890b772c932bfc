//! The crate's only unsafe code: what the child does between `fork` and
//! `exec` (std's `pre_exec`), and signal numbers rustix has no name for.
//!
//! # Contract
//!
//! * [`install_child_setup`] makes every fd above 2 close-on-exec in the
//!   child (so nothing the parent opened without `O_CLOEXEC`, here or in
//!   another library, leaks), then clears close-on-exec on the `pass_fds`,
//!   then applies `setsid` and `umask`. The closure only makes
//!   async-signal-safe system calls and does not allocate.
//! * [`signal`] turns a signal number into rustix's `Signal`, realtime
//!   signals included.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::Signal;

/// What the child does before `exec`, beyond what std's `Command` does.
#[derive(Debug)]
pub(crate) struct ChildSetup {
    /// Fds the child keeps (close-on-exec cleared).
    pub(crate) pass_fds: Vec<RawFd>,
    pub(crate) new_session: bool,
    pub(crate) umask: Option<u32>,
}

/// Installs the child setup on `command`.
pub(crate) fn install_child_setup(command: &mut Command, setup: ChildSetup) {
    let ChildSetup {
        pass_fds,
        new_session,
        umask,
    } = setup;
    let hook = move || -> io::Result<()> {
        if new_session {
            rustix::process::setsid()?;
        }
        if let Some(mask) = umask {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
        }
        mark_cloexec_from_3();
        for &fd in &pass_fds {
            // SAFETY: fcntl on an fd number touches no memory; an fd that is
            // not open gives EBADF, which we report as the spawn error.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec. It only makes
    // async-signal-safe system calls (setsid, umask, close_range, fcntl,
    // getrlimit), takes no locks and does not allocate: `pass_fds` was
    // allocated in the parent and is only read.
    unsafe {
        command.pre_exec(hook);
    }
}

/// Sets close-on-exec on every fd from 3 up: `close_range(…,
/// CLOSE_RANGE_CLOEXEC)` where the kernel has it (5.11), else one `fcntl`
/// per possible fd (bounded by `RLIMIT_NOFILE`, at most 65536).
fn mark_cloexec_from_3() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags;
    // the arguments are plain integers.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3_u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    } == 0;
    if done {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } == 0 {
        limit.rlim_cur.min(65_536)
    } else {
        1024
    };
    let max = RawFd::try_from(max).unwrap_or(1024);
    for fd in 3..max {
        // SAFETY: fcntl on an fd number touches no memory; closed numbers
        // give EBADF, which is ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// The rustix `Signal` for `signum` (1..=SIGRTMAX), `None` otherwise.
pub(crate) fn signal(signum: i32) -> Option<Signal> {
    if let Some(signal) = Signal::from_named_raw(signum) {
        return Some(signal);
    }
    if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signum) {
        // SAFETY: a realtime signal number in the kernel's range is a valid
        // signal; rustix only asks that it not be one libc reserves, and
        // SIGRTMIN() already excludes glibc's internal ones.
        return Some(unsafe { Signal::from_raw_unchecked(signum) });
    }
    None
}
