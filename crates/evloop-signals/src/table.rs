//! The process-global signal table and its cross-thread protocol: which
//! loop's wake-up fd each signal writes to, the per-signal pending flags,
//! and the count of handlers running. `sys` keeps one static table and
//! calls [`SignalTable::on_signal`] from the `extern "C"` handler; loops
//! call the rest from their own threads.
//!
//! Safe code only. Under `--cfg loom` its atomics are loom's and the type
//! is public, so that `tests/loom_signals.rs` (`cargo xtask loom`) can run
//! the handler as a loom thread against a loop's side of the protocol.
#![deny(unsafe_code)]
// Public so that the loom models can reach it; exported only under loom.
#![cfg_attr(not(loom), allow(unreachable_pub))]

use std::os::fd::RawFd;

use crate::sync::{yield_now, AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};

/// What [`SignalTable::claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The signal had no wake-up fd; now it is the caller's.
    New,
    /// The signal already was the caller's.
    Already,
    /// Another loop's fd holds the signal (or the number is out of range).
    Taken,
}

/// Per signal number `1..N`: the owning loop's wake-up fd and the pending
/// flag; plus how many handlers are running.
///
/// # Invariant
/// A wake-up fd of `-1` means no loop owns the signal. A non-negative value
/// is an open fd: owners [`release`](Self::release) their slots and call
/// [`quiesce`](Self::quiesce) before closing the fd, so a handler never
/// writes to a closed (or reused) fd number.
#[derive(Debug)]
pub struct SignalTable<const N: usize> {
    wakeup_fds: [AtomicI32; N],
    pending: [AtomicBool; N],
    in_handler: AtomicUsize,
}

impl<const N: usize> SignalTable<N> {
    /// An empty table: no signal owned, none pending.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        SignalTable {
            wakeup_fds: [const { AtomicI32::new(-1) }; N],
            pending: [const { AtomicBool::new(false) }; N],
            in_handler: AtomicUsize::new(0),
        }
    }

    /// An empty table: no signal owned, none pending.
    #[cfg(loom)]
    pub fn new() -> Self {
        SignalTable {
            wakeup_fds: std::array::from_fn(|_| AtomicI32::new(-1)),
            pending: std::array::from_fn(|_| AtomicBool::new(false)),
            in_handler: AtomicUsize::new(0),
        }
    }

    fn slot(signum: i32) -> Option<usize> {
        usize::try_from(signum).ok().filter(|&i| i > 0 && i < N)
    }

    /// The handler's part (async-signal-safe: atomics, and `write`, which
    /// must be too): marks `signum` pending, then, if a loop owns it, passes
    /// that loop's wake-up fd and the signal number as a byte to `write`.
    /// Counted in the running handlers for the whole time.
    pub fn on_signal(&self, signum: i32, write: impl FnOnce(RawFd, u8)) {
        self.in_handler.fetch_add(1, SeqCst);
        if let Some(i) = Self::slot(signum) {
            self.pending[i].store(true, SeqCst);
            let fd = self.wakeup_fds[i].load(SeqCst);
            if fd >= 0 {
                // Signal numbers are below NSIG (at most 129): one byte.
                write(fd, signum as u8);
            }
        }
        self.in_handler.fetch_sub(1, SeqCst);
    }

    /// Makes `fd` the wake-up fd of `signum` unless another fd holds it.
    /// Atomic, so two loops racing for one signal cannot both win.
    pub fn claim(&self, signum: i32, fd: RawFd) -> Claim {
        let Some(i) = Self::slot(signum) else {
            return Claim::Taken;
        };
        match self.wakeup_fds[i].compare_exchange(-1, fd, SeqCst, SeqCst) {
            Ok(_) => Claim::New,
            Err(current) if current == fd => Claim::Already,
            Err(_) => Claim::Taken,
        }
    }

    /// Forgets `fd` as the wake-up fd of `signum` (no-op if another fd holds
    /// it).
    pub fn release(&self, signum: i32, fd: RawFd) {
        if let Some(i) = Self::slot(signum) {
            let _ = self.wakeup_fds[i].compare_exchange(fd, -1, SeqCst, SeqCst);
        }
    }

    /// Forgets `fd` as the wake-up fd of every signal.
    pub fn release_all(&self, fd: RawFd) {
        for entry in &self.wakeup_fds {
            let _ = entry.compare_exchange(fd, -1, SeqCst, SeqCst);
        }
    }

    /// Returns once every handler that could have read a released fd has
    /// finished, so that fd may be closed.
    ///
    /// A handler counts itself in before it reads its slot. This reads the
    /// count with a read-modify-write, which joins the chain of the
    /// handlers' increments and decrements: either it comes after a
    /// handler's increment (and waits for that handler), or the handler's
    /// increment reads it, and with it the release before it, so the
    /// handler reads `-1`. (Plain `SeqCst` loads would do too, but loom
    /// models them as `AcqRel` only and cannot check that; `cargo xtask
    /// loom` checks this as written.) Handlers are a few instructions long,
    /// so this spins at most briefly.
    pub fn quiesce(&self) {
        while self.in_handler.fetch_add(0, SeqCst) != 0 {
            yield_now();
        }
    }

    /// Clears the pending flag of `signum` (before a new owner installs it).
    pub fn clear_pending(&self, signum: i32) {
        if let Some(i) = Self::slot(signum) {
            self.pending[i].store(false, SeqCst);
        }
    }

    /// True (once) if `signum` arrived since the last call.
    pub fn take_pending(&self, signum: i32) -> bool {
        Self::slot(signum).is_some_and(|i| self.pending[i].swap(false, SeqCst))
    }
}

impl<const N: usize> Default for SignalTable<N> {
    fn default() -> Self {
        Self::new()
    }
}
