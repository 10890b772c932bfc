"""Subprocesses for evloop.Loop: ``subprocess_exec`` and
``subprocess_shell`` over evloop-process.

evloop spawns the child (``fork``/``exec`` without running Python in
between), reaps it through its pidfd on the loop (no asyncio child watcher
is used or needed) and connects its pipes as evloop pipe transports.
``SubprocessTransport`` is the ``asyncio.SubprocessTransport`` on top; it
calls the protocol in asyncio's order and with asyncio's error handling.
``asyncio.create_subprocess_exec``/``_shell`` and
``asyncio.subprocess.Process`` run on it unchanged.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import logging
import signal
import subprocess
import warnings

from . import _core
from ._net import _await_core
from ._pipes import ReadPipeTransport, WritePipeTransport

logger = logging.getLogger("asyncio")

# Popen's keyword arguments evloop cannot honour, and why.
_UNSUPPORTED = {
    "preexec_fn": "no Python code can run between evloop's fork and exec",
    "executable": "evloop runs argv[0] itself",
    "user": "evloop does not change the child's user",
    "group": "evloop does not change the child's group",
    "extra_groups": "evloop does not change the child's groups",
    "pipesize": "evloop does not resize pipes",
}


class SubprocessTransport(asyncio.SubprocessTransport):
    """A child process and its pipes (asyncio's ``BaseSubprocessTransport``)
    over evloop-process's transport.

    ``get_pipe_transport(fd)`` gives evloop's pipe transports
    (``WritePipeTransport`` for 0, ``ReadPipeTransport`` for 1 and 2).
    ``get_extra_info('subprocess')`` is None: there is no
    ``subprocess.Popen`` object.
    """

    def __init__(self, loop, protocol, core):
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._core = core
        self._pid = core.pid()
        self._closed = False
        # connection_lost was delivered (asyncio's `_proc is None`).
        self._finished = False
        self._exit_waiters = []
        self._pipes = {}

    def __repr__(self):
        info = [f"evloop.{type(self).__name__}"]
        if self._closed:
            info.append("closed")
        info.append(f"pid={self._pid}")
        returncode = self._core.returncode()
        info.append("running" if returncode is None else f"returncode={returncode}")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn=warnings.warn):
        if not self._closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()

    def get_pid(self):
        """The child's pid."""
        return self._pid

    def get_returncode(self):
        """The exit code, -signum if a signal ended the child, None while
        it runs."""
        return self._core.returncode()

    def get_pipe_transport(self, fd):
        """The transport of the child's fd 0, 1 or 2; None if that stream
        is not a pipe."""
        try:
            return self._pipes[fd]
        except KeyError:
            pass
        core = self._core.pipe(fd) if fd in (0, 1, 2) else None
        if core is None:
            return None
        cls = WritePipeTransport if fd == 0 else ReadPipeTransport
        transport = self._pipes[fd] = cls(core, None, self._loop)
        return transport

    def get_protocol(self):
        """The protocol (None once connection_lost was delivered)."""
        return self._protocol

    def set_protocol(self, protocol):
        """Send the following events to protocol."""
        self._protocol = protocol

    def is_closing(self):
        """True once close() was called."""
        return self._closed

    def close(self):
        """Close the pipes and kill (SIGKILL) the child if it still runs; the
        protocol still gets the pipes' losses, process_exited and
        connection_lost."""
        if self._closed:
            return
        self._closed = True
        if self._core.returncode() is None and self._loop.get_debug():
            logger.warning("Close running child process: kill %r", self)
        self._core.close()

    def send_signal(self, signal):
        """Send signal to the child: ProcessLookupError once connection_lost
        was delivered, nothing once it exited (as asyncio)."""
        if self._finished:
            raise ProcessLookupError()
        if self._core.returncode() is not None:
            return
        try:
            self._core.send_signal(signal)
        except ValueError:
            # Not a signal number: os.kill's error, which Popen raises.
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL)) from None

    def terminate(self):
        """send_signal(SIGTERM)."""
        self.send_signal(signal.SIGTERM)

    def kill(self):
        """send_signal(SIGKILL)."""
        self.send_signal(signal.SIGKILL)

    async def _wait(self):
        """The return code, once the child exited and (if it was not known
        yet) connection_lost was delivered: asyncio.subprocess.Process.wait
        awaits this."""
        returncode = self._core.returncode()
        if returncode is not None:
            return returncode
        waiter = self._loop.create_future()
        self._exit_waiters.append(waiter)
        return await waiter

    # -- events from evloop (process.rs), in asyncio's order ---------------

    def _call(self, method, *args):
        """protocol.<method>(*args); an exception goes to the exception
        handler, as from the handle asyncio schedules it in."""
        protocol = self._protocol
        if protocol is None:
            return
        try:
            getattr(protocol, method)(*args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": f"Exception in callback {type(protocol).__name__}.{method}()",
                    "exception": exc,
                    "transport": self,
                    "protocol": protocol,
                }
            )

    def _connection_made(self):
        self._call("connection_made", self)

    def _pipe_data_received(self, fd, data):
        self._call("pipe_data_received", fd, data)

    def _pipe_connection_lost(self, fd, exc):
        self._call("pipe_connection_lost", fd, exc)

    def _process_exited(self):
        self._call("process_exited")

    def _pause_writing(self):
        self._call("pause_writing")

    def _resume_writing(self):
        self._call("resume_writing")

    def _connection_lost(self, exc):
        try:
            self._call("connection_lost", exc)
        finally:
            self._finished = True
            returncode = self._core.returncode()
            for waiter in self._exit_waiters:
                if not waiter.cancelled():
                    waiter.set_result(returncode)
            self._exit_waiters = None
            self._protocol = None


def _check_text_mode(universal_newlines, bufsize, text, encoding, errors):
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


def _stdio(value, name):
    """A standard stream argument as process.rs takes it: None (inherit),
    PIPE, STDOUT, DEVNULL, or an open fd (the caller's; evloop duplicates
    it)."""
    if value is None or value in (subprocess.PIPE, subprocess.DEVNULL):
        return value
    if value == subprocess.STDOUT:
        if name != "stderr":
            raise ValueError(f"{name}=STDOUT: only stderr can go to stdout")
        return value
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name}: invalid file descriptor {value}")
        return value
    return value.fileno()


def _env(env):
    """env= as (name, value) bytes pairs, with Popen's checks."""
    pairs = []
    for key, value in env.items():
        key, value = os.fsencode(key), os.fsencode(value)
        if b"=" in key or not key:
            raise ValueError("illegal environment variable name")
        if b"\0" in key or b"\0" in value:
            raise ValueError("embedded null byte")
        pairs.append((key, value))
    return pairs


def _inheritable_fds():
    """The fds above 2 a child would inherit with close_fds=False."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # listdir's own fd, closed by now
            pass
    return fds


def _spawn_args(argv, stdin, stdout, stderr, kwargs):
    """The dict process.rs's `Spawn` reads, from Popen's arguments."""
    kwargs = dict(kwargs)
    for name, why in _UNSUPPORTED.items():
        value = kwargs.pop(name, None)
        if value is not None and not (name == "pipesize" and value == -1):
            raise ValueError(f"{name}: not supported by evloop's subprocesses ({why})")
    if kwargs.pop("startupinfo", None) is not None:
        raise ValueError("startupinfo is only supported on Windows platforms")
    if kwargs.pop("creationflags", 0) != 0:
        raise ValueError("creationflags is only supported on Windows platforms")
    if not kwargs.pop("restore_signals", True):
        raise ValueError(
            "restore_signals=False: not supported by evloop's subprocesses "
            "(the child always starts with the default SIGPIPE)"
        )
    close_fds = kwargs.pop("close_fds", True)
    pass_fds = [int(fd) for fd in kwargs.pop("pass_fds", ())]
    if not close_fds:
        pass_fds.extend(fd for fd in _inheritable_fds() if fd not in pass_fds)
    cwd = kwargs.pop("cwd", None)
    env = kwargs.pop("env", None)
    umask = kwargs.pop("umask", -1)
    spawn = {
        "argv": argv,
        "stdin": _stdio(stdin, "stdin"),
        "stdout": _stdio(stdout, "stdout"),
        "stderr": _stdio(stderr, "stderr"),
        "cwd": None if cwd is None else os.fsencode(cwd),
        "env": None if env is None else _env(env),
        "start_new_session": bool(kwargs.pop("start_new_session", False)),
        "process_group": kwargs.pop("process_group", None),
        "umask": None if umask < 0 else umask,
        "pass_fds": pass_fds,
    }
    if kwargs:
        name = next(iter(kwargs))
        raise TypeError(f"subprocess_exec() got an unexpected keyword argument {name!r}")
    return spawn


class ProcessMixin:
    """The subprocess methods of evloop.Loop."""

    async def subprocess_exec(
        self,
        protocol_factory,
        program,
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=False,
        shell=False,
        bufsize=0,
        encoding=None,
        errors=None,
        text=None,
        **kwargs,
    ):
        """Run program with args in a child process; returns (transport,
        protocol). Takes Popen's keyword arguments where evloop can honour
        them (cwd, env, start_new_session, process_group, pass_fds,
        close_fds, umask); ValueError for the others."""
        _check_text_mode(universal_newlines, bufsize, text, encoding, errors)
        if shell:
            raise ValueError("shell must be False")
        argv = [os.fsencode(arg) for arg in (program, *args)]
        what = f"execute program {program!r}"
        return await self._subprocess(protocol_factory, what, argv, stdin, stdout, stderr, kwargs)

    async def subprocess_shell(
        self,
        protocol_factory,
        cmd,
        *,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=False,
        shell=True,
        bufsize=0,
        encoding=None,
        errors=None,
        text=None,
        **kwargs,
    ):
        """Run cmd with /bin/sh -c in a child process; returns (transport,
        protocol). Keyword arguments as subprocess_exec."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        _check_text_mode(universal_newlines, bufsize, text, encoding, errors)
        if not shell:
            raise ValueError("shell must be True")
        argv = [b"/bin/sh", b"-c", os.fsencode(cmd)]
        what = f"run shell command {cmd!r}"
        return await self._subprocess(protocol_factory, what, argv, stdin, stdout, stderr, kwargs)

    async def _subprocess(self, protocol_factory, what, argv, stdin, stdout, stderr, kwargs):
        spawn = _spawn_args(argv, stdin, stdout, stderr, kwargs)
        protocol = protocol_factory()
        if self.get_debug():
            # As asyncio: the program or command, never its arguments.
            logger.debug(_describe(what, stdin, stdout, stderr))
        wrap = functools.partial(SubprocessTransport, self, protocol)
        transport = await _await_core(self, _core.subprocess_exec, self, wrap, spawn)
        if self.get_debug():
            logger.info("%s: %r", what, transport)
        return transport, protocol


def _describe(what, stdin, stdout, stderr):
    """What debug mode logs of a spawn: asyncio's format."""
    shown = {subprocess.PIPE: "<pipe>", subprocess.STDOUT: "<stdout>"}
    parts = [what]
    for name, value in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
        if value is not None:
            parts.append(f"{name}={shown.get(value, repr(value))}")
    return " ".join(parts)
