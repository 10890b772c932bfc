//! [`ProcessOptions`]: asyncio's `subprocess_exec` keyword arguments (the
//! `Popen` ones it passes through) as a plain struct with `Default`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

/// Where one of the child's standard streams goes (asyncio's `PIPE`,
/// `None`, `DEVNULL`, a file object, `STDOUT`).
#[derive(Default)]
pub enum Stdio {
    /// A new pipe whose other end the loop watches (asyncio's `PIPE`): the
    /// default.
    #[default]
    #[doc(alias = "PIPE")]
    Pipe,
    /// The parent's own stream (asyncio's `None`).
    Inherit,
    /// `/dev/null` (asyncio's `DEVNULL`).
    #[doc(alias = "DEVNULL")]
    Null,
    /// An fd the caller opened (a file, a socket, a pipe end). It is closed
    /// in the parent once the child has started.
    Fd(OwnedFd),
    /// For `stderr` only: the same place as the child's stdout (asyncio's
    /// `STDOUT`). Anywhere else it is [`Error::InvalidArgument`](evloop_core::Error::InvalidArgument).
    #[doc(alias = "STDOUT")]
    Stdout,
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stdio::Pipe => f.write_str("Pipe"),
            Stdio::Inherit => f.write_str("Inherit"),
            Stdio::Null => f.write_str("Null"),
            Stdio::Fd(fd) => f.debug_tuple("Fd").field(fd).finish(),
            Stdio::Stdout => f.write_str("Stdout"),
        }
    }
}

/// How the loop learns that a child exited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[doc(alias("ChildWatcher", "PidfdChildWatcher"))]
pub enum Reaper {
    /// A pidfd watched by the loop where the kernel has one (Linux ≥ 5.3),
    /// else [`Reaper::Sigchld`]: the default.
    #[default]
    Auto,
    /// A pidfd; spawning fails with the `pidfd_open` error (after killing
    /// and reaping the child) where there is none.
    Pidfd,
    /// The fallback: a `SIGCHLD` handler on the loop (through
    /// `evloop-signals`) that waits, without blocking, for this loop's own
    /// children only. If another loop already handles `SIGCHLD`, a thread per
    /// child (`evloop-waitpid-<pid>`) waits instead.
    Sigchld,
}

/// The options of [`subprocess_exec`](crate::subprocess_exec) and
/// [`subprocess_shell`](crate::subprocess_shell) (asyncio's keyword
/// arguments), with asyncio's defaults.
///
/// ```
/// use evloop_process::{ProcessOptions, Stdio};
///
/// let options = ProcessOptions::default()
///     .stderr(Stdio::Stdout)
///     .cwd("/")
///     .env("LANG", "C")
///     .env_remove("TERM");
/// assert!(options.kill_on_close);
/// ```
///
/// Built from `Default` with one setter per field (and [`env`](Self::env)/
/// [`env_remove`](Self::env_remove) for the environment), so later options
/// are additive; the fields stay public to read (and to set on a `let mut`).
#[derive(Debug)]
#[non_exhaustive]
pub struct ProcessOptions {
    /// The child's stdin; [`Stdio::Pipe`] by default.
    pub stdin: Stdio,
    /// The child's stdout; [`Stdio::Pipe`] by default.
    pub stdout: Stdio,
    /// The child's stderr; [`Stdio::Pipe`] by default.
    pub stderr: Stdio,
    /// The child's working directory (`cwd`); the parent's if `None`.
    pub cwd: Option<PathBuf>,
    /// Start from an empty environment instead of the parent's.
    pub env_clear: bool,
    /// Changes to the environment, in order: `Some(value)` sets, `None`
    /// removes. See [`env`](Self::env) and [`env_remove`](Self::env_remove).
    pub env: Vec<(OsString, Option<OsString>)>,
    /// Put the child in process group `pgid` (`Some(0)`: a new group led by
    /// the child, asyncio's `process_group=0`).
    pub process_group: Option<i32>,
    /// Start a new session (`setsid`, asyncio's `start_new_session`). Not
    /// together with `process_group`.
    #[doc(alias = "start_new_session")]
    pub new_session: bool,
    /// Extra fds the child inherits, at the same numbers (asyncio's
    /// `pass_fds`). They are closed in the parent once the child has
    /// started; pass a `try_clone()` to keep one.
    pub pass_fds: Vec<OwnedFd>,
    /// Fds the child inherits at the same numbers that stay the caller's
    /// (never closed here: Python's `Popen(pass_fds=…)`, whose caller keeps
    /// its fds). Each must stay open until the child has started (the
    /// spawning future's first poll); one that is not fails the spawn.
    pub inherit_fds: Vec<RawFd>,
    /// The child's umask.
    pub umask: Option<u32>,
    /// How the child's exit is observed.
    pub reaper: Reaper,
    /// Kill (`SIGKILL`) the child if it still runs when the loop closes:
    /// `true` by default. Either way it is reaped, never left a zombie: a
    /// child left running is waited for by a background thread.
    pub kill_on_close: bool,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            stdin: Stdio::Pipe,
            stdout: Stdio::Pipe,
            stderr: Stdio::Pipe,
            cwd: None,
            env_clear: false,
            env: Vec::new(),
            process_group: None,
            new_session: false,
            pass_fds: Vec::new(),
            inherit_fds: Vec::new(),
            umask: None,
            reaper: Reaper::Auto,
            kill_on_close: true,
        }
    }
}

impl ProcessOptions {
    /// Sets the child's stdin.
    #[must_use = "returns the changed options"]
    pub fn stdin(mut self, stdin: Stdio) -> Self {
        self.stdin = stdin;
        self
    }

    /// Sets the child's stdout.
    #[must_use = "returns the changed options"]
    pub fn stdout(mut self, stdout: Stdio) -> Self {
        self.stdout = stdout;
        self
    }

    /// Sets the child's stderr ([`Stdio::Stdout`]: with its stdout).
    #[must_use = "returns the changed options"]
    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.stderr = stderr;
        self
    }

    /// Starts the child in `cwd`.
    #[must_use = "returns the changed options"]
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Starts the child from an empty environment (`true`) or the
    /// parent's, before the [`env`](Self::env) changes.
    #[must_use = "returns the changed options"]
    pub fn env_clear(mut self, on: bool) -> Self {
        self.env_clear = on;
        self
    }

    /// Puts the child in process group `pgid` (0: a new group it leads).
    #[must_use = "returns the changed options"]
    pub fn process_group(mut self, pgid: i32) -> Self {
        self.process_group = Some(pgid);
        self
    }

    /// Starts the child in a new session (`setsid`).
    #[must_use = "returns the changed options"]
    #[doc(alias = "start_new_session")]
    pub fn new_session(mut self, on: bool) -> Self {
        self.new_session = on;
        self
    }

    /// Lets the child inherit `fds`, at the same numbers (replacing any
    /// set before).
    #[must_use = "returns the changed options"]
    pub fn pass_fds(mut self, fds: impl IntoIterator<Item = OwnedFd>) -> Self {
        self.pass_fds = fds.into_iter().collect();
        self
    }

    /// Lets the child inherit the caller's `fds`, at the same numbers,
    /// without taking them (see [`inherit_fds`](Self::inherit_fds); replaces
    /// any set before).
    #[must_use = "returns the changed options"]
    pub fn inherit_fds(mut self, fds: impl IntoIterator<Item = RawFd>) -> Self {
        self.inherit_fds = fds.into_iter().collect();
        self
    }

    /// Sets the child's umask.
    #[must_use = "returns the changed options"]
    pub fn umask(mut self, umask: u32) -> Self {
        self.umask = Some(umask);
        self
    }

    /// Chooses how the child's exit is observed.
    #[must_use = "returns the changed options"]
    pub fn reaper(mut self, reaper: Reaper) -> Self {
        self.reaper = reaper;
        self
    }

    /// Kills the child at loop close if it still runs (`true`), or leaves
    /// it running (it is still reaped).
    #[must_use = "returns the changed options"]
    pub fn kill_on_close(mut self, on: bool) -> Self {
        self.kill_on_close = on;
        self
    }

    /// Sets `key=value` in the child's environment.
    #[must_use = "returns the changed options"]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes `key` from the child's environment.
    #[must_use = "returns the changed options"]
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }
}
