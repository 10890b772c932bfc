//! The evloop event loop: Python asyncio's `BaseEventLoop` core, in Rust.
//!
//! **Owns:** the ready queue and one loop iteration (`run_once`, asyncio's
//! `_run_once`), `run_forever`/`run_until_complete`/`stop`/`close`,
//! `call_soon`/`call_later`/`call_at` with cancellable [`Handle`]s and
//! [`TimerHandle`]s, [`Remote`] for `call_soon_threadsafe`, fd watchers
//! (`add_reader`/`add_writer`) and fd claims for transports, [`LoopFuture`],
//! [`Task`]/[`TaskRef`] and the task factory, time as futures ([`Sleep`],
//! `timeout`, [`Interval`]) on the loop's clock, fd readiness futures
//! ([`Readiness`]), [`RemoteTask`] for `Remote::spawn`, the exception handler with
//! [`ErrorContext`], debug mode, [`LoopStats`], the opt-in relaxed I/O
//! polling ([`IoPolling`]), and the one [`Error`] type.
//!
//! **Does not own:** fd readiness (`evloop-reactor`), the timer heap and clocks
//! (`evloop-timers`), transports, signals, the executor, name resolution —
//! the crates above plug into the loop through [`EventLoop::extension`] and
//! [`EventLoop::add_close_hook`].
//!
//! # Implementation
//!
//! `EventLoop` is an `Rc` over single-threaded state, so it is `!Send`; only
//! [`Remote`] (an `Arc` over a lock-free queue and the reactor's waker)
//! crosses threads. A scheduled callback is one `Rc` node shared by the queue
//! and its handle: cancelling takes the closure out, freeing its captures at
//! once. Each iteration polls exactly once; the reactor's waker writes its
//! eventfd only while the loop sleeps. Opt-in, [`IoPolling::Relaxed`] skips
//! the poll while callbacks are ready until N callbacks have run or T has
//! passed since the last one, so a `call_soon` chain pays no syscall per
//! link and I/O is seen up to N callbacks later (docs/behaviour.md 3.10).
//! Every callback runs under `catch_unwind`; a panic goes to the exception
//! handler and the loop goes on.
//!
//! # Examples
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use evloop_core::EventLoop;
//!
//! let lp = EventLoop::builder().virtual_clock().build()?;
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let (a, b) = (log.clone(), log.clone());
//! lp.call_later(Duration::from_secs(5), move || a.borrow_mut().push("later"))?;
//! lp.call_soon(move || b.borrow_mut().push("soon"))?;
//! let answer = lp.run_until_complete(lp.create_task(async { 6 * 7 })?)??;
//! assert_eq!(answer, 42);
//! let stopper = lp.clone();
//! lp.call_later(Duration::from_secs(10), move || stopper.stop())?;
//! lp.run_forever()?;
//! assert_eq!(*log.borrow(), ["soon", "later"]);
//! lp.close()?;
//! # Ok::<(), evloop_core::Error>(())
//! ```
#![forbid(unsafe_code)]

mod due;
mod error;
mod event_loop;
mod exception;
mod future;
mod handle;
mod io_polling;
mod io_watch;
mod readiness;
mod ready;
mod remote;
mod run;
mod spawn;
mod stats;
mod sync;
mod task;
mod time;

pub use error::{panic_message, Error, OsErrorContext, TlsError, TlsErrorKind};
pub use event_loop::{Builder, EventLoop, DEFAULT_SLOW_CALLBACK_DURATION};
pub use evloop_timers::{Clock, MonotonicClock, VirtualClock};
pub use exception::{ErrorContext, ExceptionHandler};
pub use future::{CallbackId, LoopFuture};
pub use handle::{Handle, HandleInfo, TimerHandle};
pub use io_polling::IoPolling;
pub use io_watch::FdClaim;
pub use readiness::Readiness;
pub use remote::Remote;
pub use spawn::RemoteTask;
pub use stats::LoopStats;
pub use task::{LocalBoxFuture, Task, TaskFactory, TaskId, TaskOptions, TaskRef};
pub use time::{Interval, Sleep};
