//! Reaping: learning that one of this loop's children exited and collecting
//! its status, per child and never with `waitpid(-1)` (which would steal
//! other code's children).
//!
//! * **pidfd** (Linux ≥ 5.3, the default): `pidfd_open(pid)` right after the
//!   spawn; the loop watches the pidfd through an fd claim; when it turns
//!   readable, `waitid(P_PIDFD, WEXITED | WNOHANG)` collects the status.
//! * **SIGCHLD** (the fallback): the loop's `SIGCHLD` handler (through
//!   `evloop-signals`, installed while the loop has children) runs
//!   `waitid(P_PID, pid, WEXITED | WNOHANG)` for each of *this loop's*
//!   children; a child that exited before the handler was installed is
//!   caught by one check right after registering. If another loop owns
//!   `SIGCHLD`, a thread per child blocks in `waitid(P_PID, pid)` and posts
//!   the status back with `call_soon_threadsafe`.
//!
//! A child someone else reaped (`ECHILD`) reports 255 with asyncio's
//! warning. When the loop closes, its live children are killed (or not, per
//! `kill_on_close`) and handed to a background thread that waits for them,
//! so none is left a zombie.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use evloop_core::{Error, EventLoop, FdClaim};
use rustix::process::{pidfd_open, waitid, Pid, PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus};

use crate::options::Reaper;

/// What to do with a child's return code.
pub(crate) type OnExit = Box<dyn FnOnce(i32)>;

/// A pidfd and the loop's watch on it. Field order matters: the claim
/// (watch) goes before the fd closes.
struct PidfdWatch {
    claim: FdClaim,
    fd: OwnedFd,
}

struct Child {
    pidfd: Option<PidfdWatch>,
    on_exit: Option<OnExit>,
    kill_on_close: bool,
}

/// Per-loop reaper state (a loop extension).
#[derive(Default)]
pub(crate) struct Reaping {
    children: RefCell<HashMap<i32, Child>>,
    /// Our `SIGCHLD` handler is installed on this loop.
    sigchld: RefCell<bool>,
    /// The close hook is registered.
    hooked: RefCell<bool>,
}

/// The child's pidfd, if one is to be used: `Ok(None)` means "use SIGCHLD".
pub(crate) fn open_pidfd(pid: i32, reaper: Reaper) -> Result<Option<OwnedFd>, Error> {
    if reaper == Reaper::Sigchld {
        return Ok(None);
    }
    let Some(target) = Pid::from_raw(pid) else {
        return Err(Error::invalid_argument("pid out of range"));
    };
    match pidfd_open(target, PidfdFlags::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if reaper == Reaper::Auto => {
            tracing::debug!(target: "evloop", pid, error = %e, "pidfd_open failed; using SIGCHLD");
            Ok(None)
        }
        Err(e) => Err(Error::Io(e.into())),
    }
}

/// The return code from a `waitid` status: the exit code, or −signum.
fn returncode(status: &WaitIdStatus) -> i32 {
    if let Some(code) = status.exit_status() {
        code
    } else if let Some(signal) = status.terminating_signal() {
        -signal
    } else {
        255
    }
}

/// Non-blocking wait for `pid` (through its pidfd if there is one):
/// `Some(returncode)` once it exited.
fn try_wait(pid: i32, pidfd: Option<&OwnedFd>) -> Option<i32> {
    let target = Pid::from_raw(pid)?;
    loop {
        let id = match pidfd {
            Some(fd) => WaitId::PidFd(fd.as_fd()),
            None => WaitId::Pid(target),
        };
        return match waitid(id, WaitIdOptions::EXITED | WaitIdOptions::NOHANG) {
            Ok(Some(status)) => Some(returncode(&status)),
            Ok(None) => None,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::CHILD) => {
                tracing::warn!(
                    target: "evloop",
                    "Unknown child process pid {pid}, will report returncode 255"
                );
                Some(255)
            }
            Err(e) => {
                tracing::warn!(target: "evloop", pid, error = %e, "waitid failed, will report returncode 255");
                Some(255)
            }
        };
    }
}

/// Blocking wait for `pid`; its return code.
fn wait_blocking(pid: i32) -> i32 {
    let Some(target) = Pid::from_raw(pid) else {
        return 255;
    };
    loop {
        match waitid(WaitId::Pid(target), WaitIdOptions::EXITED) {
            Ok(Some(status)) => return returncode(&status),
            Err(rustix::io::Errno::INTR) | Ok(None) => {}
            Err(_) => return 255,
        }
    }
}

/// Starts watching `pid` on `event_loop`; `on_exit` gets its return code,
/// from the loop, once. With `pidfd` the pidfd path is used, else SIGCHLD.
///
/// # Errors
/// [`Error::Closed`] on a closed loop; [`Error::Io`] if the pidfd cannot be
/// watched. On error the child is *not* watched; the caller kills and reaps
/// it with [`abandon`].
pub(crate) fn watch(
    event_loop: &EventLoop,
    pid: i32,
    pidfd: Option<OwnedFd>,
    kill_on_close: bool,
    on_exit: OnExit,
) -> Result<(), Error> {
    let reaping = event_loop.extension(Reaping::default);
    if !reaping.hooked.replace(true) {
        event_loop.add_close_hook(|lp| {
            if let Some(reaping) = lp.get_extension::<Reaping>() {
                reaping.shutdown();
            }
        })?;
    }
    let mut child = Child {
        pidfd: None,
        on_exit: Some(on_exit),
        kill_on_close,
    };
    if let Some(fd) = pidfd {
        let claim = event_loop.claim_fd(&fd)?;
        let me = reaping.clone();
        let lp = event_loop.clone();
        claim.set_reader(move || me.check(&lp, pid))?;
        child.pidfd = Some(PidfdWatch { claim, fd });
        reaping.children.borrow_mut().insert(pid, child);
        return Ok(());
    }
    reaping.children.borrow_mut().insert(pid, child);
    if !*reaping.sigchld.borrow() {
        let me = reaping.clone();
        let lp = event_loop.clone();
        match evloop_signals::add_signal_handler(event_loop, libc::SIGCHLD, move || {
            me.check_all(&lp);
        }) {
            Ok(()) => *reaping.sigchld.borrow_mut() = true,
            Err(error) => {
                tracing::debug!(target: "evloop", pid, %error, "SIGCHLD unavailable; waiting in a thread");
                return wait_in_thread(event_loop, &reaping, pid);
            }
        }
    }
    // The child may have exited before the handler was installed.
    let me = reaping.clone();
    let lp = event_loop.clone();
    event_loop.call_soon(move || me.check(&lp, pid))?;
    Ok(())
}

/// The thread fallback: a thread blocks in `waitid(…, WNOWAIT)` for `pid`
/// (which does not reap it, so its pid stays ours) and asks the loop to
/// collect the status; if the loop is gone, the thread reaps it itself.
fn wait_in_thread(event_loop: &EventLoop, reaping: &Reaping, pid: i32) -> Result<(), Error> {
    let remote = event_loop.remote();
    let spawned = std::thread::Builder::new()
        .name(format!("evloop-waitpid-{pid}"))
        .spawn(move || {
            if let Some(target) = Pid::from_raw(pid) {
                while let Err(rustix::io::Errno::INTR) = waitid(
                    WaitId::Pid(target),
                    WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
                ) {}
            }
            let posted = remote.call_soon_threadsafe(move || {
                let Some(lp) = EventLoop::try_current() else {
                    return;
                };
                if let Some(reaping) = lp.get_extension::<Reaping>() {
                    reaping.check(&lp, pid);
                }
            });
            if posted.is_err() {
                let code = wait_blocking(pid);
                tracing::warn!(target: "evloop", pid, code, "child exited after its loop closed");
            }
        });
    if let Err(e) = spawned {
        reaping.children.borrow_mut().remove(&pid);
        return Err(Error::Io(e));
    }
    Ok(())
}

impl Reaping {
    /// One child's wait check (pidfd readable, or SIGCHLD).
    fn check(&self, event_loop: &EventLoop, pid: i32) {
        let code = {
            let children = self.children.borrow();
            let Some(child) = children.get(&pid) else {
                return;
            };
            try_wait(pid, child.pidfd.as_ref().map(|w| &w.fd))
        };
        if let Some(code) = code {
            self.finish(event_loop, pid, code);
        }
    }

    /// SIGCHLD arrived: check each child that has no pidfd.
    fn check_all(&self, event_loop: &EventLoop) {
        let pids: Vec<i32> = self
            .children
            .borrow()
            .iter()
            .filter(|(_, c)| c.pidfd.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        for pid in pids {
            self.check(event_loop, pid);
        }
    }

    /// `pid` exited with `code`: forget it, then tell its transport.
    fn finish(&self, event_loop: &EventLoop, pid: i32, code: i32) {
        let Some(mut child) = self.children.borrow_mut().remove(&pid) else {
            return;
        };
        if let Some(watch) = child.pidfd.take() {
            drop(watch.claim);
            drop(watch.fd);
        }
        let idle = !self.children.borrow().values().any(|c| c.pidfd.is_none());
        if idle && self.sigchld.replace(false) {
            if let Err(error) = evloop_signals::remove_signal_handler(event_loop, libc::SIGCHLD) {
                tracing::debug!(target: "evloop", %error, "removing the SIGCHLD handler failed");
            }
        }
        tracing::debug!(target: "evloop", pid, code, "child exited");
        if let Some(on_exit) = child.on_exit.take() {
            on_exit(code);
        }
    }

    /// The loop is closing: kill (per option) and hand every live child to
    /// a background waiter; their transports hear nothing more.
    fn shutdown(&self) {
        let children: Vec<(i32, Child)> = self.children.borrow_mut().drain().collect();
        let mut orphans = Vec::new();
        for (pid, mut child) in children {
            // Drop the watch first (the loop is going away), keep the pidfd
            // for signalling.
            let pidfd = child.pidfd.take().map(|w| {
                drop(w.claim);
                w.fd
            });
            if child.kill_on_close {
                kill(pid, pidfd.as_ref(), libc::SIGKILL).ok();
            }
            if try_wait(pid, pidfd.as_ref()).is_none() {
                orphans.push(pid);
            }
            drop(child.on_exit.take());
        }
        abandon_all(orphans);
    }
}

/// Kills and reaps a child that is not watched (a failed setup).
pub(crate) fn abandon(pid: i32, pidfd: Option<&OwnedFd>) {
    kill(pid, pidfd, libc::SIGKILL).ok();
    if try_wait(pid, pidfd).is_none() {
        abandon_all(vec![pid]);
    }
}

/// Waits for `pids` on a background thread, so none stays a zombie.
fn abandon_all(pids: Vec<i32>) {
    if pids.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("evloop-reaper".to_owned())
        .spawn(move || {
            for pid in pids {
                wait_blocking(pid);
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(target: "evloop", %error, "could not start a reaper thread; children may stay zombies");
    }
}

/// Sends `signum` to `pid` (through its pidfd if there is one, which cannot
/// hit a recycled pid).
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad signal number; [`Error::Io`] with
/// `ESRCH` if the process is gone.
pub(crate) fn kill(pid: i32, pidfd: Option<&OwnedFd>, signum: i32) -> Result<(), Error> {
    let Some(target) = Pid::from_raw(pid) else {
        return Err(Error::invalid_argument("pid out of range"));
    };
    let result = if signum == 0 {
        rustix::process::test_kill_process(target)
    } else {
        let Some(signal) = crate::sys::signal(signum) else {
            return Err(Error::invalid_argument(format!(
                "signum: invalid signal number {signum}"
            )));
        };
        match pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
            None => rustix::process::kill_process(target, signal),
        }
    };
    result.map_err(|e| Error::Io(io::Error::from(e)))
}

/// The pidfd of a watched child, for signalling (a duplicate would cost a
/// syscall; the reaper lends it).
pub(crate) fn with_pidfd<R>(
    event_loop: &EventLoop,
    pid: i32,
    f: impl FnOnce(Option<&OwnedFd>) -> R,
) -> R {
    let reaping = event_loop.get_extension::<Reaping>();
    let children = reaping.as_ref().map(|r| r.children.borrow());
    let pidfd = children
        .as_ref()
        .and_then(|c| c.get(&pid))
        .and_then(|c| c.pidfd.as_ref())
        .map(|w| &w.fd);
    f(pidfd)
}

/// True while `pid` is a watched, unreaped child of this loop.
pub(crate) fn is_watched(event_loop: &EventLoop, pid: i32) -> bool {
    event_loop
        .get_extension::<Reaping>()
        .is_some_and(|r| r.children.borrow().contains_key(&pid))
}
