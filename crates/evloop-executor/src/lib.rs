//! A thread pool for blocking calls, with results as futures.
//!
//! This is the pool behind asyncio's `loop.run_in_executor(None, f)`: the
//! default `ThreadPoolExecutor`, whose threads are named
//! `evloop-executor-0`, `evloop-executor-1`, … in spawn order.
//!
//! **Owns:** the [`Executor`] trait (queue a job, shut down), the
//! [`ThreadPool`] that implements it (lazy, bounded, idle threads exit), and
//! [`spawn_blocking`], which turns a closure into a [`BlockingTask`] future of
//! its result, catching panics.
//!
//! **Does not own:** the event loop. Nothing here knows about a loop, a clock
//! or a reactor. The facade wires a [`BlockingTask`] to the loop: it is a
//! `Send` future woken from the worker thread, so the waker it is polled with
//! should be the loop's cross-thread waker. Closing the loop, dropping late
//! results and `shutdown_default_executor()` are the facade's business.
//!
//! # Implementation
//!
//! Jobs go into a [`concurrent_queue::ConcurrentQueue`]. Workers pop from it
//! without locking while there is work; a worker that finds it empty sleeps
//! on a `Condvar` for at most the idle timeout, and exits if nothing arrived.
//! A `Mutex` guards the bookkeeping (how many workers are alive, how many are
//! sleeping, pending wake-ups, join handles), so the decision "wake a sleeping
//! worker or spawn a new one" in [`Executor::execute`] is made atomically with
//! respect to workers going to sleep: no wake-up is lost and no thread is
//! spawned while another sits idle. A job's result travels back through a
//! small `Arc<Mutex<..>>` slot shared by the [`BlockingTask`] and the job; if
//! the job is dropped without running, the slot is completed with
//! [`JobError::Dropped`]. The crate has no `unsafe` code.
//!
//! # Examples
//!
//! ```
//! use evloop_executor::{spawn_blocking, Executor, ThreadPool};
//!
//! let pool = ThreadPool::builder().max_workers(2).build()?;
//! let task = spawn_blocking(&pool, || 6 * 7)?;
//! assert_eq!(futures_lite::future::block_on(task), Ok(42));
//!
//! pool.shutdown(true);
//! assert_eq!(pool.worker_count(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod executor;
mod pool;
mod sync;

pub use executor::{spawn_blocking, BlockingTask, Executor, Job, JobError, ShutDown};
pub use pool::{ThreadPool, ThreadPoolBuilder};
