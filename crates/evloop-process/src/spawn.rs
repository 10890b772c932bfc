//! Starting a child: [`ProcessOptions`] to a `std::process::Command`, the
//! three stdio ends, `spawn`, and the parent's ends of the pipes.
//!
//! std's `spawn` blocks only until the child has called `exec` (it reports
//! an exec failure through a close-on-exec pipe), so the loop is held up for
//! a fork and an exec, not for the child's run. Every pipe is created
//! close-on-exec; the child setup in `sys` marks every other inherited fd
//! close-on-exec too, so the child gets stdio, `pass_fds` and nothing else.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use evloop_core::Error;
use rustix::pipe::{pipe_with, PipeFlags};

use crate::options::{ProcessOptions, Reaper, Stdio};
use crate::sys::{install_child_setup, ChildSetup};

/// A started child: its pid and the parent's ends of its pipes.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: i32,
    /// The parent's ends: stdin's write end, stdout's and stderr's read ends.
    pub(crate) pipes: [Option<OwnedFd>; 3],
    pub(crate) reaper: Reaper,
    pub(crate) kill_on_close: bool,
}

/// The child's end of one stdio stream, before it becomes a `Stdio`.
enum ChildEnd {
    Fd(OwnedFd),
    Inherit,
    Null,
}

impl ChildEnd {
    fn into_std(self) -> std::process::Stdio {
        match self {
            ChildEnd::Fd(fd) => fd.into(),
            ChildEnd::Inherit => std::process::Stdio::inherit(),
            ChildEnd::Null => std::process::Stdio::null(),
        }
    }
}

fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(pipe_with(PipeFlags::CLOEXEC)?)
}

/// The child's and the parent's end for `stdio` on child fd `target`.
fn ends(stdio: Stdio, target: i32) -> Result<(ChildEnd, Option<OwnedFd>), Error> {
    Ok(match stdio {
        Stdio::Pipe => {
            let (read, write) = cloexec_pipe()?;
            if target == 0 {
                (ChildEnd::Fd(read), Some(write))
            } else {
                (ChildEnd::Fd(write), Some(read))
            }
        }
        Stdio::Inherit => (ChildEnd::Inherit, None),
        Stdio::Null => (ChildEnd::Null, None),
        Stdio::Fd(fd) => (ChildEnd::Fd(fd), None),
        Stdio::Stdout => {
            let name = ["stdin", "stdout"][usize::try_from(target).unwrap_or(0).min(1)];
            return Err(Error::invalid_argument(format!(
                "{name}: Stdio::Stdout is only for stderr"
            )));
        }
    })
}

/// stderr going where stdout goes.
fn same_as(stdout: &ChildEnd) -> io::Result<ChildEnd> {
    Ok(match stdout {
        ChildEnd::Fd(fd) => ChildEnd::Fd(fd.try_clone()?),
        ChildEnd::Inherit => ChildEnd::Fd(io::stdout().as_fd().try_clone_to_owned()?),
        ChildEnd::Null => ChildEnd::Null,
    })
}

/// The `(program, args)` of `sh -c cmd`.
pub(crate) fn shell_command(cmd: &OsStr) -> (OsString, Vec<OsString>) {
    ("/bin/sh".into(), vec!["-c".into(), cmd.to_owned()])
}

/// Spawns `program args…` per `options`.
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty program, a program or argument
/// with a NUL byte, `Stdio::Stdout` outside stderr, or `process_group`
/// together with `new_session`; [`Error::Io`] from `pipe`, `fork` or `exec`
/// (`NotFound` for a missing program, `PermissionDenied` for a file that is
/// not executable). Nothing is left open on error.
pub(crate) fn spawn(
    program: &OsStr,
    args: &[OsString],
    options: ProcessOptions,
) -> Result<Spawned, Error> {
    check(program, args, &options)?;
    let ProcessOptions {
        stdin,
        stdout,
        stderr,
        cwd,
        env_clear,
        env,
        process_group,
        new_session,
        pass_fds,
        inherit_fds,
        umask,
        reaper,
        kill_on_close,
    } = options;
    let (child_in, parent_in) = ends(stdin, 0)?;
    let (child_out, parent_out) = ends(stdout, 1)?;
    let (child_err, parent_err) = match stderr {
        Stdio::Stdout => (same_as(&child_out)?, None),
        other => ends(other, 2)?,
    };

    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(child_in.into_std())
        .stdout(child_out.into_std())
        .stderr(child_err.into_std());
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    if env_clear {
        command.env_clear();
    }
    for (key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    if let Some(pgid) = process_group {
        command.process_group(pgid);
    }
    install_child_setup(
        &mut command,
        ChildSetup {
            pass_fds: pass_fds
                .iter()
                .map(AsRawFd::as_raw_fd)
                .chain(inherit_fds)
                .collect(),
            new_session,
            umask,
        },
    );
    let child = command.spawn().map_err(Error::Io)?;
    // The child's ends (inside `command`) and the passed fds close here, in
    // the parent; the std `Child` only holds the pid (dropping it neither
    // waits nor kills).
    drop(command);
    drop(pass_fds);
    let pid = i32::try_from(child.id()).map_err(|_| Error::invalid_argument("pid out of range"))?;
    drop(child);
    tracing::debug!(target: "evloop", pid, program = ?program, "spawned child");
    Ok(Spawned {
        pid,
        pipes: [parent_in, parent_out, parent_err],
        reaper,
        kill_on_close,
    })
}

fn check(program: &OsStr, args: &[OsString], options: &ProcessOptions) -> Result<(), Error> {
    use std::os::unix::ffi::OsStrExt;
    if program.is_empty() {
        return Err(Error::invalid_argument("program: must not be empty"));
    }
    if program.as_bytes().contains(&0) {
        return Err(Error::invalid_argument("program: embedded NUL byte"));
    }
    if args.iter().any(|a| a.as_bytes().contains(&0)) {
        return Err(Error::invalid_argument("args: embedded NUL byte"));
    }
    if options.process_group.is_some() && options.new_session {
        return Err(Error::invalid_argument(
            "process_group: cannot be used together with new_session",
        ));
    }
    if options.process_group.is_some_and(|g| g < 0) {
        return Err(Error::invalid_argument(
            "process_group: must be 0 or a process group id",
        ));
    }
    Ok(())
}
