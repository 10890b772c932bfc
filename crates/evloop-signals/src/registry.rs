//! The per-loop signal registry: the callbacks by signal number, the wake-up
//! pipe the reactor watches, and the close hook that undoes it all.
//!
//! # Invariant
//!
//! A signal number is a key of `handlers` exactly when the process-global slot
//! of that signal (see `sys`) holds this registry's write fd and the signal's
//! disposition is the crate's handler. `add`, `remove` and `shutdown` keep the
//! three in step, on the loop's thread.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};

use evloop_core::{Error, ErrorContext, EventLoop, FdClaim};
use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};

use crate::signal_name;
use crate::sys::{self, Claim};

/// A user's signal callback; shared so that it can run while the map is
/// unborrowed (it may add or remove handlers itself).
pub(crate) type SignalCallback = Rc<RefCell<dyn FnMut()>>;

/// One loop's signal state, stored with [`EventLoop::extension`].
#[derive(Default)]
pub(crate) struct Registry {
    handlers: RefCell<BTreeMap<i32, SignalCallback>>,
    wakeup: RefCell<Option<Wakeup>>,
}

/// The self-pipe: the signal handler writes to `write`, the loop watches
/// `read` through `claim`.
struct Wakeup {
    /// Fields drop in order: the claim (deregistering the read end from the
    /// reactor) before either fd closes.
    #[expect(dead_code, reason = "held only so that dropping it stops the watch")]
    claim: FdClaim,
    read: OwnedFd,
    write: OwnedFd,
}

impl Drop for Wakeup {
    fn drop(&mut self) {
        // No signal may write to `write` once it is closed: release every
        // slot still naming it (normally none), then wait out handlers that
        // may have read it before the release.
        sys::release_all(self.write.as_raw_fd());
        sys::quiesce();
    }
}

impl Registry {
    /// Sets (or replaces) the callback of `signum`, installing the handler.
    /// The caller has validated `signum`.
    pub(crate) fn add(
        self: &Rc<Self>,
        event_loop: &EventLoop,
        signum: i32,
        callback: SignalCallback,
    ) -> Result<(), Error> {
        let fd = self.wakeup_fd(event_loop)?;
        let claim = sys::claim(signum, fd);
        if claim == Claim::Taken {
            return Err(Error::invalid_argument(format!(
                "signal {signum} is handled by another event loop"
            )));
        }
        if claim == Claim::New {
            // Forget deliveries from an earlier owner.
            sys::clear_pending(signum);
        }
        // Installed on every add, like asyncio's `signal.signal`, in case
        // other code changed the disposition since.
        if let Err(error) = sys::install(signum) {
            if claim == Claim::New {
                sys::release(signum, fd);
            }
            return Err(Error::Io(error));
        }
        let previous = self.handlers.borrow_mut().insert(signum, callback);
        drop(previous);
        Ok(())
    }

    /// Removes the callback of `signum` and restores `SIG_DFL`; false if there
    /// was none.
    pub(crate) fn remove(&self, signum: i32) -> Result<bool, Error> {
        let removed = self.handlers.borrow_mut().remove(&signum);
        let Some(callback) = removed else {
            return Ok(false);
        };
        let restored = sys::restore_default(signum);
        if let Some(fd) = self.write_fd() {
            sys::release(signum, fd);
        }
        // Dropped with no borrow held: its captures' destructors may call us.
        drop(callback);
        restored.map_err(Error::Io)?;
        Ok(true)
    }

    /// Removes every handler (restoring `SIG_DFL`) and closes the pipe: the
    /// close hook, and the fallback in `Drop`. Idempotent. Failures to
    /// restore a disposition go to `event_loop`'s exception handler if given.
    pub(crate) fn shutdown(&self, event_loop: Option<&EventLoop>) {
        let handlers = std::mem::take(&mut *self.handlers.borrow_mut());
        let fd = self.write_fd();
        for &signum in handlers.keys() {
            let restored = sys::restore_default(signum);
            if let Some(fd) = fd {
                sys::release(signum, fd);
            }
            if let (Err(error), Some(event_loop)) = (restored, event_loop) {
                event_loop.call_exception_handler(ErrorContext::new(
                    format!(
                        "cannot restore the default disposition of {}",
                        signal_name(signum)
                    ),
                    Some(Error::Io(error)),
                ));
            }
        }
        let wakeup = self.wakeup.borrow_mut().take();
        drop(wakeup);
        drop(handlers);
    }

    fn write_fd(&self) -> Option<RawFd> {
        self.wakeup.borrow().as_ref().map(|w| w.write.as_raw_fd())
    }

    /// The write end of the wake-up pipe, created (with its reader and the
    /// loop's close hook) on first use.
    fn wakeup_fd(self: &Rc<Self>, event_loop: &EventLoop) -> Result<RawFd, Error> {
        if let Some(fd) = self.write_fd() {
            return Ok(fd);
        }
        let (read, write) =
            pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC).map_err(io::Error::from)?;
        let claim = event_loop.claim_fd(&read)?;
        let registry = Rc::downgrade(self);
        claim.set_reader(move || {
            if let Some(registry) = registry.upgrade() {
                registry.on_wakeup();
            }
        })?;
        event_loop.add_close_hook(|event_loop| {
            if let Some(registry) = event_loop.get_extension::<Registry>() {
                registry.shutdown(Some(event_loop));
            }
        })?;
        let fd = write.as_raw_fd();
        *self.wakeup.borrow_mut() = Some(Wakeup { claim, read, write });
        Ok(fd)
    }

    /// The pipe's reader: drains it, then schedules with `call_soon` the
    /// callback of each signal that arrived, once per signal, in order of
    /// arrival (then, for bytes a full pipe dropped, in signal order).
    fn on_wakeup(self: &Rc<Self>) {
        let mut due = Vec::new();
        let handlers = self.handlers.borrow();
        // Only signals this loop owns: a byte left over from a signal removed
        // here and now owned by another loop must not take that loop's flag.
        let mut take = |signum: i32| {
            if handlers.contains_key(&signum) && sys::take_pending(signum) {
                due.push(signum);
            }
        };
        self.drain(&mut take);
        handlers.keys().for_each(|&signum| take(signum));
        drop(handlers);
        if due.is_empty() {
            return;
        }
        // The reader runs only inside this loop's `run_once`.
        let Some(event_loop) = EventLoop::try_current() else {
            return;
        };
        for signum in due {
            let registry = Rc::downgrade(self);
            let _ = event_loop.call_soon(move || dispatch(&registry, signum));
        }
    }

    /// Reads every byte in the pipe, passing each (a signal number) to `each`.
    fn drain(&self, mut each: impl FnMut(i32)) {
        let wakeup = self.wakeup.borrow();
        let Some(wakeup) = wakeup.as_ref() else {
            return;
        };
        let mut buf = [0u8; 64];
        loop {
            match rustix::io::read(&wakeup.read, &mut buf) {
                Ok(0) => return,
                Ok(n) => buf[..n].iter().for_each(|&b| each(i32::from(b))),
                Err(Errno::INTR) => {}
                // EAGAIN: drained. Anything else cannot happen on our pipe;
                // stopping is the safe choice.
                Err(_) => return,
            }
        }
    }
}

/// Runs the current callback of `signum`, if the registry still has one: a
/// handler removed (or replaced) after the signal arrived does not run (the
/// replacement does). A panic unwinds into the loop, which reports it to the
/// exception handler.
fn dispatch(registry: &Weak<Registry>, signum: i32) {
    let Some(registry) = registry.upgrade() else {
        return;
    };
    let callback = registry.handlers.borrow().get(&signum).cloned();
    drop(registry);
    if let Some(callback) = callback {
        // A callback never runs re-entrantly (callbacks run one at a time), so
        // the borrow cannot fail; skipping is the safe choice if it ever did.
        if let Ok(mut callback) = callback.try_borrow_mut() {
            (*callback)();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}
