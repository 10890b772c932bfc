//! Subprocesses (docs/behaviour.md 18.1): the facade's face of `evloop-process` —
//! `subprocess_exec`/`subprocess_shell` with a [`SubprocessProtocol`], and
//! the streams-level `create_subprocess_exec`/`create_subprocess_shell`.

use std::ffi::OsStr;
use std::future::Future;

use evloop_core::Error;
use evloop_process as pr;
use evloop_process::{Process, ProcessOptions, SubprocessConnection, SubprocessProtocol};

use crate::EventLoop;

impl EventLoop {
    /// Runs `program args…` as a child whose pipes this loop watches and
    /// connects it to a protocol made by `factory` (asyncio's
    /// `loop.subprocess_exec`). The pipes are connected stdin, stdout,
    /// stderr, then `connection_made` runs, then the future completes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty program or conflicting
    /// options; [`Error::Io`] from spawning (`NotFound`, `PermissionDenied`),
    /// with nothing left open; [`Error::Closed`] on a closed loop.
    pub fn subprocess_exec<P, A>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = A>,
        options: ProcessOptions,
    ) -> impl Future<Output = Result<SubprocessConnection<P>, Error>> + 'static
    where
        P: SubprocessProtocol,
        A: AsRef<OsStr>,
    {
        pr::subprocess_exec(self.as_core(), factory, program, args, options)
    }

    /// Runs `cmd` through `/bin/sh -c` (asyncio's `loop.subprocess_shell`).
    ///
    /// # Errors
    /// As [`subprocess_exec`](Self::subprocess_exec); an empty `cmd` is
    /// [`Error::InvalidArgument`].
    pub fn subprocess_shell<P: SubprocessProtocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        cmd: impl AsRef<OsStr>,
        options: ProcessOptions,
    ) -> impl Future<Output = Result<SubprocessConnection<P>, Error>> + 'static {
        pr::subprocess_shell(self.as_core(), factory, cmd, options)
    }

    /// Starts `program args…` with stream pipes and returns a [`Process`]
    /// (asyncio's `asyncio.create_subprocess_exec`); `limit` bounds each
    /// reader's buffer ([`pr::DEFAULT_LIMIT`] is asyncio's). The options'
    /// default pipes all three streams.
    ///
    /// # Errors
    /// As [`subprocess_exec`](Self::subprocess_exec);
    /// [`Error::InvalidArgument`] for `limit == 0`.
    pub fn create_subprocess_exec<A: AsRef<OsStr>>(
        &self,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = A>,
        options: ProcessOptions,
        limit: usize,
    ) -> impl Future<Output = Result<Process, Error>> + 'static {
        pr::create_subprocess_exec(self.as_core(), program, args, options, limit)
    }

    /// [`create_subprocess_exec`](Self::create_subprocess_exec) through
    /// `/bin/sh -c cmd` (asyncio's `asyncio.create_subprocess_shell`).
    ///
    /// # Errors
    /// As [`subprocess_shell`](Self::subprocess_shell);
    /// [`Error::InvalidArgument`] for `limit == 0`.
    pub fn create_subprocess_shell(
        &self,
        cmd: impl AsRef<OsStr>,
        options: ProcessOptions,
        limit: usize,
    ) -> impl Future<Output = Result<Process, Error>> + 'static {
        pr::create_subprocess_shell(self.as_core(), cmd, options, limit)
    }
}
