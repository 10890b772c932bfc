"""Pipe transports for evloop.Loop: ``connect_read_pipe`` and
``connect_write_pipe`` over evloop's pipe transports.

As in asyncio, the transport owns the pipe object it was given: it closes
it after ``connection_lost`` (or, unclosed, when garbage collected, with a
``ResourceWarning``). evloop itself works on a duplicate of the pipe's fd,
which it closes once; the duplicate shares the pipe's file description, so
the pipe is non-blocking from the connect on, as asyncio makes it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import stat
import warnings

from . import _core
from ._net import _await_core


class _PipeTransport:
    """What the read and write pipe transports share; delegates to
    ``self._core`` (``_core._StreamTransport``)."""

    _KIND = "PipeTransport"

    def __init__(self, core, pipe, loop):
        super().__init__(extra={"pipe": pipe})
        self._core = core
        self._loop = loop
        self._pipe = pipe
        # The fd asyncio shows: the pipe's own, else (a subprocess pipe)
        # evloop's.
        self._fileno = pipe.fileno() if pipe is not None else core.fileno()
        self._lost = False

    def __repr__(self):
        if self._lost:
            state = "closed"
        elif self._loop.is_closed():
            # Never closed, only let go of by the closed loop (asyncio says
            # "open" then too).
            state = "open"
        elif self._core.is_closing():
            state = "closing"
        else:
            state = "open"
        return f"<evloop.{self._KIND} fd={self._fileno} {state}>"

    def __del__(self, _warn=warnings.warn):
        if self._pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()

    def close(self):
        """Close (a write pipe flushes first); connection_lost(None) follows."""
        self._core.close()

    def is_closing(self):
        """True once closing or closed."""
        return self._core.is_closing()

    def get_protocol(self):
        """The protocol (None once the connection is lost)."""
        return self._core.get_protocol()

    def set_protocol(self, protocol):
        """Send the following events to protocol."""
        self._core.set_protocol(protocol)

    def _forget_socket(self):
        # Called by the Rust side after connection_lost: asyncio's
        # _call_connection_lost closes the pipe object then.
        self._lost = True
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()


class ReadPipeTransport(_PipeTransport, asyncio.ReadTransport):
    """The read end of a pipe, socket or character device (asyncio's
    ``_UnixReadPipeTransport``): evloop's pipe transport under asyncio's
    API. ``get_extra_info('pipe')`` is the pipe object."""

    _KIND = "ReadPipeTransport"

    def pause_reading(self):
        """Stop calling data_received until resume_reading()."""
        self._core.pause_reading()

    def resume_reading(self):
        """Read again."""
        self._core.resume_reading()

    def is_reading(self):
        """True while reading (not paused, not closing)."""
        return self._core.is_reading()


class WritePipeTransport(_PipeTransport, asyncio.WriteTransport):
    """The write end of a pipe, socket or character device (asyncio's
    ``_UnixWritePipeTransport``). For a pipe or socket the transport sees
    the reader go away: ``connection_lost(None)``, or ``BrokenPipeError``
    when data was still buffered."""

    _KIND = "WritePipeTransport"

    def write(self, data):
        """Write bytes, bytearray or memoryview data (buffered if the pipe
        is full)."""
        self._core.write(data)

    def writelines(self, list_of_data):
        """Write each buffer of an iterable."""
        self._core.writelines(list_of_data)

    def write_eof(self):
        """Close once the buffer is flushed (a pipe has no half-close)."""
        self._core.write_eof()

    def can_write_eof(self):
        """True."""
        return True

    def abort(self):
        """Close now, dropping the buffer."""
        self._core.abort()

    def get_write_buffer_size(self):
        """Bytes waiting to be written."""
        return self._core.get_write_buffer_size()

    def get_write_buffer_limits(self):
        """(low, high) water marks."""
        return self._core.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        """Set the water marks (asyncio's defaults for None)."""
        self._core.set_write_buffer_limits(high, low)


def _pipe_fd(pipe, message):
    """The pipe's fd, if it is a FIFO, a socket or a character device."""
    fd = pipe.fileno()
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        raise ValueError(message)
    return fd


class PipeMixin:
    """The pipe methods of evloop.Loop."""

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Read from pipe (a pipe, socket or character device object with
        fileno()) into a protocol; returns (transport, protocol)."""
        protocol = protocol_factory()  # first, as asyncio: a raise leaves the pipe alone
        fd = _pipe_fd(pipe, "Pipe transport is for pipes/sockets only.")
        wrap = functools.partial(_wrap, ReadPipeTransport, pipe, self)
        factory = functools.partial(_same, protocol)
        return await _await_core(self, _core.connect_read_pipe, self, factory, wrap, fd)

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Write to pipe (a pipe, socket or character device object with
        fileno()) through a transport; returns (transport, protocol)."""
        protocol = protocol_factory()
        fd = _pipe_fd(pipe, "Pipe transport is only for pipes, sockets and character devices")
        wrap = functools.partial(_wrap, WritePipeTransport, pipe, self)
        factory = functools.partial(_same, protocol)
        return await _await_core(self, _core.connect_write_pipe, self, factory, wrap, fd)


def _wrap(cls, pipe, loop, core):
    return cls(core, pipe, loop)


def _same(protocol):
    return protocol
