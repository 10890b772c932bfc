//! evloop: Python asyncio's event loop (`AbstractEventLoop`) in Rust.
//!
//! **Owns:** the [`EventLoop`] facade with the whole API — the core's
//! scheduling, running, futures, tasks and error handling (forwarded, so
//! that every callback sees this one type), plus the methods of the layers above the core: transports and servers,
//! streams, signal handlers, `run_in_executor` and the default executor,
//! `getaddrinfo`/`getnameinfo`;
//! [`run`]; re-exports; the contract examples.
//!
//! **Does not own:** any mechanism. The loop is `evloop-core`, readiness is
//! `evloop-reactor`, timers are `evloop-timers`, the thread pool is
//! `evloop-executor`, transports are `evloop-transports`, signals are
//! `evloop-signals`.
//!
//! # Implementation
//!
//! `EventLoop` is a newtype over `evloop_core::EventLoop` that forwards the
//! core's API (`core_api.rs`) without exposing its plumbing; what the layers
//! above add is implemented here, one file per asyncio documentation section. Per-loop
//! state of those layers lives in the core loop's extensions and is torn
//! down by its close hooks.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use evloop::EventLoop;
//!
//! let lp = EventLoop::new()?;
//! lp.call_soon(|| println!("soon"))?;
//! let stopper = lp.clone();
//! lp.call_later(Duration::from_millis(10), move || stopper.stop())?;
//! let task = lp.create_task(async { 6 * 7 })?;
//! let answer = lp.run_until_complete(task)??;
//! assert_eq!(answer, 42);
//! lp.close()?;
//! # Ok::<(), evloop::Error>(())
//! ```
#![forbid(unsafe_code)]

mod core_api;
mod event_loop;
mod executor;
mod names;
mod net;
mod per_core;
#[cfg(feature = "process")]
mod process;
mod signals;
#[cfg(feature = "tls")]
mod tls;

pub use core_api::{ExceptionHandler, TaskFactory};
pub use event_loop::{run, Builder, EventLoop};
pub use evloop_core::{
    panic_message, CallbackId, Clock, Error, ErrorContext, Handle, HandleInfo, Interval, IoPolling,
    LocalBoxFuture, LoopFuture, LoopStats, MonotonicClock, Readiness, Remote, RemoteTask, Sleep,
    Task, TaskId, TaskOptions, TaskRef, TimerHandle, TlsError, TlsErrorKind, VirtualClock,
};
pub use evloop_executor::{Executor, JobError, ThreadPool, ThreadPoolBuilder};
#[cfg(feature = "process")]
pub use evloop_process::{
    Process, ProcessOptions, Reaper, Stdio, SubprocessConnection, SubprocessProtocol,
    SubprocessProtocolHandle, SubprocessTransport,
};
#[cfg(feature = "tls")]
pub use evloop_tls::{
    rustls, ClientAuth, ClientTls, ClientTlsBuilder, ServerTls, ServerTlsBuilder,
    StreamWriterTlsExt, TlsConfig, TlsInfo, TlsTransportExt,
};
pub use evloop_transports::{
    Address, BufferedProtocol, ConnectOptions, DatagramOptions, DatagramProtocol,
    DatagramTransport, Family, Layer, Protocol, ProtocolHandle, Server, ServerOptions, StreamError,
    StreamReader, StreamWriter, Transport, UnixConnectOptions, UnixServerOptions, WaterMarks,
    DEFAULT_LIMIT,
};
pub use evloop_transports::{ConnectTarget, SendfileNotAvailable};
pub use executor::ExecutorFuture;
pub use names::{AddrInfo, AddrInfoHints, NameInfo};
pub use net::Connection;
pub use per_core::{run_per_core, PerCore, Pinning, Shutdown, ShutdownWait};
pub use signals::signal_name;

/// The layers the facade is built from, for users who want one of them alone.
pub mod layers {
    pub use evloop_core as core;
    pub use evloop_executor as executor;
    #[cfg(feature = "process")]
    pub use evloop_process as process;
    pub use evloop_reactor as reactor;
    pub use evloop_signals as signals;
    pub use evloop_timers as timers;
    #[cfg(feature = "tls")]
    pub use evloop_tls as tls;
    pub use evloop_transports as transports;
}
