"""``loop.sendfile`` and ``loop.sock_sendfile`` for evloop.Loop.

Laid out as asyncio's (``sendfile`` tries ``_sendfile_native``, then, if
that raises ``SendfileNotAvailableError`` and ``fallback`` is true,
``_sendfile_fallback``), with asyncio's argument checks and errors:

- the native paths are evloop's ``sendfile``/``sock_sendfile`` (zero-copy
  ``sendfile(2)``, waiting for the socket on evloop's reactor), for a
  regular file with a ``fileno()`` on one of evloop's stream transports or a
  non-blocking stream socket;
- the fallbacks are asyncio's algorithm: the file read with ``readinto`` in
  the default executor, written with ``transport.write`` (waiting for the
  transport's buffer to drain) or ``sock_sendall``. They take any file
  object and any transport with asyncio's flow control (TLS transports are
  sent this way, as asyncio does).

Afterwards the file position is ``offset`` plus the bytes sent, also after
an error part-way.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import stat

from asyncio import constants

from . import _core
from ._net import StreamTransport, _await_core
from ._sock import _check as _check_sock

# asyncio's chunk for the fallback through a transport.
_TRANSPORT_CHUNK = 16 * 1024


# The largest offset and count evloop takes (a file offset is an off_t).
_MAX_OFFSET = 2**63 - 1


def _file_fd(file, offset, count):
    """The fd of a regular file for ``sendfile(2)``, else
    SendfileNotAvailableError (the fallback reads any file object)."""
    try:
        fileno = file.fileno()
        mode = os.fstat(fileno).st_mode
    except (AttributeError, io.UnsupportedOperation, OSError) as exc:
        raise asyncio.SendfileNotAvailableError("not a regular file") from exc
    if not stat.S_ISREG(mode):
        raise asyncio.SendfileNotAvailableError("not a regular file")
    if offset > _MAX_OFFSET or (count is not None and count > _MAX_OFFSET):
        raise asyncio.SendfileNotAvailableError("offset or count too large for sendfile(2)")
    return fileno


def _dup_both(sock_fd, file_fd):
    """Duplicates of both fds for evloop's call, or neither."""
    sock_dup = os.dup(sock_fd)
    try:
        return sock_dup, os.dup(file_fd)
    except BaseException:
        os.close(sock_dup)
        raise


def _check_params(file, offset, count):
    """asyncio's ``_check_sendfile_params`` for the file and the range."""
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")


def _empty(fileno, count):
    """True for an empty regular file and no count: nothing to send
    (asyncio returns 0 without touching the file)."""
    return not count and os.fstat(fileno).st_size == 0


def _seekable(file):
    """Whether the fallback can leave the file's position (asyncio's
    ``hasattr(file, 'seek')``, which fails after the fact on a pipe)."""
    seekable = getattr(file, "seekable", None)
    if seekable is not None:
        return seekable()
    return hasattr(file, "seek")


class _FallbackGate(asyncio.Protocol):
    """The transport's protocol while the fallback writes: it turns
    ``pause_writing``/``resume_writing`` into ``drain()``, and hands the rest
    to the protocol it stands in for, which ``restore()`` puts back."""

    def __init__(self, loop, transport):
        self._loop = loop
        self._transport = transport
        self._protocol = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        self._was_paused = self._paused_now()
        transport.pause_reading()
        transport.set_protocol(self)
        self._ready = loop.create_future() if self._was_paused else None

    def _paused_now(self):
        paused = getattr(self._transport, "_protocol_paused", None)
        if paused is None:
            # A transport that does not say: above the high-water mark it
            # has paused (or is about to pause) its protocol.
            _, high = self._transport.get_write_buffer_limits()
            paused = self._transport.get_write_buffer_size() > high
        return paused

    async def drain(self):
        """Wait until the transport takes more data."""
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        if self._ready is None and self._paused_now():
            self._ready = self._loop.create_future()
        if self._ready is not None:
            await self._ready

    def pause_writing(self):
        """The transport is full: drain() waits from now on."""
        if self._ready is None:
            self._ready = self._loop.create_future()

    def resume_writing(self):
        """The transport drained: wake drain()."""
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.set_result(None)

    def data_received(self, data):
        """Not expected (reading is paused): the real protocol's."""
        self._protocol.data_received(data)

    def eof_received(self):
        """Not expected (reading is paused): the real protocol's."""
        return self._protocol.eof_received()

    def connection_lost(self, exc):
        """Fail drain() and tell the real protocol."""
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.set_exception(exc or ConnectionError("Connection is closed by peer"))
        self._protocol.connection_lost(exc)

    def restore(self):
        """Give the transport its protocol back, reading as before."""
        if self._transport.get_protocol() is self:
            self._transport.set_protocol(self._protocol)
        if self._resume_reading and not self._transport.is_closing():
            self._transport.resume_reading()
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.cancel()
        if self._was_paused and not self._paused_now():
            # The transport resumed while we stood in for the protocol.
            self._protocol.resume_writing()


class SendfileMixin:
    """``sendfile`` and ``sock_sendfile`` of evloop.Loop."""

    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        """Send a file over a transport; return the number of bytes sent.

        evloop's zero-copy ``sendfile(2)`` for a regular file on a TCP or
        unix stream transport; otherwise (``fallback=True``) the file is
        read and written in chunks. The file position ends at ``offset`` +
        bytes sent. ``SendfileNotAvailableError`` without fallback.
        """
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        mode = getattr(transport, "_sendfile_compatible", constants._SendfileMode.UNSUPPORTED)
        if mode is constants._SendfileMode.UNSUPPORTED:
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        if mode is constants._SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except asyncio.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(
                f"fallback is disabled and native sendfile is not "
                f"supported for transport {transport!r}"
            )
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, transp, file, offset, count):
        if not isinstance(transp, StreamTransport):
            raise asyncio.SendfileNotAvailableError("sendfile syscall is not supported")
        _check_params(file, offset, count)
        fileno = _file_fd(file, offset, count)
        if _empty(fileno, count):
            return 0
        return await _await_core(
            self, _core.sendfile, self, transp._core, os.dup(fileno), offset, count
        )

    async def _sendfile_fallback(self, transp, file, offset, count):
        if offset:
            file.seek(offset)
        blocksize = min(count, _TRANSPORT_CHUNK) if count else _TRANSPORT_CHUNK
        buf = bytearray(blocksize)
        total_sent = 0
        gate = _FallbackGate(self, transp)
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total_sent
                await gate.drain()
                transp.write(view[:read])
                total_sent += read
        finally:
            if total_sent > 0 and _seekable(file):
                file.seek(offset + total_sent)
            gate.restore()

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        """Send a file over a non-blocking stream socket; return the number
        of bytes sent (``sendfile(2)`` through evloop, else, with
        ``fallback``, chunks read in the executor and sent with
        ``sock_sendall``). The file position ends at ``offset`` + bytes
        sent."""
        _check_sock(sock)
        if sock.type != socket.SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        _check_params(file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except asyncio.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        fileno = _file_fd(file, offset, count)
        if _empty(fileno, count):
            return 0
        fd = sock.fileno()
        if fd < 0:
            raise OSError(9, "Bad file descriptor")
        sock_dup, file_dup = _dup_both(fd, fileno)
        return await _await_core(
            self, _core.sock_sendfile, self, sock_dup, file_dup, offset, count
        )

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        if offset:
            file.seek(offset)
        chunk = constants.SENDFILE_FALLBACK_READBUFFER_SIZE
        blocksize = min(count, chunk) if count else chunk
        buf = bytearray(blocksize)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break
                await self.sock_sendall(sock, view[:read])
                total_sent += read
            return total_sent
        finally:
            if total_sent > 0 and _seekable(file):
                file.seek(offset + total_sent)
