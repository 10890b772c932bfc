//! Subprocesses for evloop: asyncio's `loop.subprocess_exec` /
//! `subprocess_shell` and `asyncio.create_subprocess_exec` / `_shell`
//! (docs/behaviour.md 18.1).
//!
//! **Owns:** spawning a child per [`ProcessOptions`] (stdio as pipes,
//! inherited, `/dev/null`, a caller's fd or stderr → stdout; cwd; env;
//! process group / session; `pass_fds`; umask) without leaking an fd into
//! it; [`SubprocessTransport`] and the [`SubprocessProtocol`] callbacks in
//! asyncio's order; reaping each child (a pidfd, or `SIGCHLD` through
//! `evloop-signals`, never `waitpid(-1)`); what happens to live children
//! when the loop closes; the streams-level [`Process`].
//!
//! **Does not own:** the pipe transports (`evloop-transports`: the child's
//! pipes are its ordinary pipe transports), signal delivery
//! (`evloop-signals`), the loop (`evloop-core`), the facade's method names
//! (`evloop`).
//!
//! # Implementation
//!
//! `spawn` builds a `std::process::Command` (which blocks only until the
//! child has exec'd); the child setup in `sys` (the crate's only unsafe
//! code) marks every inherited fd above 2 close-on-exec except `pass_fds`.
//! The parent's pipe ends become pipe transports, connected stdin, stdout,
//! stderr; their events go through one dispatcher that queues them until
//! `connection_made`. The reaper (a loop extension) watches a pidfd per
//! child or, in the fallback, runs `waitid(P_PID, pid, WNOHANG)` for each
//! of its own children when `SIGCHLD` arrives. See `reaper.rs`.
//!
//! # Examples
//!
//! ```
//! use evloop_core::EventLoop;
//! use evloop_process::{subprocess_shell, ProcessOptions, SubprocessProtocol};
//!
//! struct Quiet;
//! impl SubprocessProtocol for Quiet {}
//!
//! let lp = EventLoop::new()?;
//! let spawn = subprocess_shell(&lp, || Quiet, "exit 3", ProcessOptions::default());
//! let (transport, _protocol) = lp.run_until_complete(spawn)??;
//! assert_eq!(lp.run_until_complete(transport.wait())?, 3);
//! assert_eq!(transport.returncode(), Some(3));
//! assert!(transport.kill().is_err()); // ProcessLookupError: it is gone
//! lp.close()?;
//! # Ok::<(), evloop_core::Error>(())
//! ```
#![deny(unsafe_code)]

mod options;
mod protocol;
mod reaper;
mod spawn;
mod streams;
#[allow(unsafe_code)]
mod sys;
mod transport;

pub use evloop_transports::{StreamReader, StreamWriter};
pub use options::{ProcessOptions, Reaper, Stdio};
pub use protocol::{SubprocessProtocol, SubprocessProtocolHandle};
pub use streams::{create_subprocess_exec, create_subprocess_shell, Process, DEFAULT_LIMIT};
pub use transport::{subprocess_exec, subprocess_shell, SubprocessConnection, SubprocessTransport};
