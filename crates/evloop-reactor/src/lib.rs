//! fd readiness for evloop's single-threaded event loop.
//!
//! This crate owns: registering fds with read/write [`Interest`] under a
//! caller-chosen key ([`Poller::register`] → [`Registration`]), one blocking
//! [`Poller::wait`] with an optional timeout that fills a reusable
//! [`Events`] buffer, and a cross-thread [`Waker`]. Semantics are
//! level-triggered, like asyncio's `selectors`: a registered fd is reported
//! on every wait while it is ready; errors and hang-ups are reported as both
//! readable and writable.
//!
//! It does not own the fds (callers open and close them; a [`Registration`]
//! must be dropped before its fd is closed), callbacks, timers, or any
//! queue: the loop core (`evloop-core`) maps keys to callbacks and computes
//! the timeout from its timer heap.
//!
//! # Implementation
//!
//! Two backends sit behind the `sys` seam (see `src/sys/mod.rs` for the
//! contract). On Linux (and Android) the default is epoll through
//! `rustix::event::epoll` with an eventfd registered once under the reserved
//! key `usize::MAX`: steady state is a single `epoll_pwait` per wait, because
//! the waker writes the eventfd only when the loop is, or is about to be,
//! asleep (see `waker.rs` for the flag protocol). Elsewhere, and on Linux when
//! built with `--cfg evloop_polling_backend`, the `polling` crate is used in
//! level mode with `polling::Poller::notify` as the wake-up source.
//! Timeouts round up, never down, so a timer never fires early. All unsafe
//! code (borrowing raw fds for the syscalls) lives in `sys`.
//!
//! # I/O safety
//!
//! [`Poller::register`] takes a [`BorrowedFd`](std::os::fd::BorrowedFd), so
//! safe code can only register an fd that is open. Afterwards a
//! [`Registration`] holds just the fd's number, which its owner may close
//! (and the OS may reuse) behind the reactor's back; the section "After
//! registration" on [`Registration`] says why that stays sound with both
//! backends and what a new backend must guarantee.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::fd::AsFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! use evloop_reactor::{Events, Interest, Poller};
//!
//! let (mut a, mut b) = UnixStream::pair()?;
//! let poller = Poller::new()?;
//! let mut reg = poller.register(a.as_fd(), 1, Interest::READABLE)?;
//! let mut events = Events::with_capacity(64);
//!
//! // Nothing to read yet: the wait times out.
//! assert_eq!(poller.wait(&mut events, Some(Duration::from_millis(1)))?, 0);
//!
//! b.write_all(b"hi")?;
//! poller.wait(&mut events, None)?;
//! for ev in events.iter() {
//!     assert_eq!(ev.key, 1);
//!     let mut buf = [0; 2];
//!     a.read_exact(&mut buf)?;
//! }
//!
//! // Stop watching; then deregister before the fd is closed.
//! reg.modify(Interest::NONE)?;
//! drop(reg);
//! # std::io::Result::Ok(())
//! ```

#![deny(unsafe_code)]

mod interest;
mod poller;
mod registration;
mod sync;
#[allow(unsafe_code)]
mod sys;
mod waker;

pub use interest::{Event, Interest};
pub use poller::{Events, Poller};
pub use registration::Registration;
pub use std::os::fd::RawFd;
pub use waker::Waker;

/// What the loom backend's stand-in for the eventfd saw
/// ([`Poller::notifications`]); only with `--cfg loom`.
#[cfg(loom)]
pub use sys::Notifications;
