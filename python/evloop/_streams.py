"""Native asyncio streams: asyncio's stream API with evloop's classes.

``open_connection``, ``start_server``, ``open_unix_connection`` and
``start_unix_server`` are asyncio's functions with ``StreamReader``,
``StreamWriter`` and ``StreamReaderProtocol`` whose hot paths are Rust
(``_core._StreamReader``, ``_StreamWriter``, ``_StreamProtocol``, in
python/src/streams/): a read whose data is buffered completes without a
future or a task step, ``data_received`` feeds the reader without a Python
frame, ``write`` goes to the transport, a drain with nothing to wait for
completes at once. The semantics are CPython 3.11's ``asyncio.streams``
(reader limits and errors, flow control, EOF, ``connection_lost``,
cancellation); each class is also an instance of asyncio's, so
``isinstance(reader, asyncio.StreamReader)`` holds.

This module owns the Python-level parts: the constructors' argument
handling, ``connection_made`` and its ``client_connected_cb`` task,
``wait_closed``, ``start_tls``, reprs, the unclosed-writer warning, and
``use_native_streams()``, which makes ``asyncio.open_connection`` & co.
pick these when the running loop is an evloop loop. It does not own the
transports and servers (``_net``) nor the loop.
"""

from __future__ import annotations

import asyncio
import collections.abc
import functools
import sys
import warnings

from asyncio import coroutines, events

from . import _core

__all__ = (
    "StreamReader",
    "StreamWriter",
    "StreamReaderProtocol",
    "open_connection",
    "start_server",
    "open_unix_connection",
    "start_unix_server",
    "use_native_streams",
)

_DEFAULT_LIMIT = 2**16  # 64 KiB, asyncio's

# The read and drain awaitables are coroutines to asyncio (create_task,
# ensure_future, wait_for accept them): they have __await__, send, throw
# and close; registering says so without relying on the ABC's hook.
collections.abc.Coroutine.register(_core._ReadOp)
collections.abc.Coroutine.register(_core._DrainOp)
collections.abc.Coroutine.register(_core._Done)


class StreamReader(_core._StreamReader, asyncio.StreamReader):
    """asyncio's ``StreamReader`` over a Rust buffer.

    ``read()``, ``readline()``, ``readuntil()``, ``readexactly()`` and
    ``__anext__()`` return awaitables that complete at once when the data
    is buffered. ``_buffer`` is a copy of the buffer (read-only).
    """

    _source_traceback = None

    def __init__(self, limit=_DEFAULT_LIMIT, loop=None):
        # _core._StreamReader.__new__ did the work; asyncio's __init__
        # (next in the MRO) must not run.
        pass


class StreamWriter(_core._StreamWriter, asyncio.StreamWriter):
    """asyncio's ``StreamWriter``: ``write`` and ``drain`` are Rust."""

    def __init__(self, transport, protocol, reader, loop):
        # As StreamReader.__init__: the native __new__ did the work.
        pass

    def __repr__(self):
        info = [self.__class__.__name__, f"transport={self._transport!r}"]
        if self._reader is not None:
            info.append(f"reader={self._reader!r}")
        return "<{}>".format(" ".join(info))

    async def wait_closed(self):
        """Waits until the connection is lost (raises its error if any)."""
        await self._protocol._get_close_waiter(self)

    async def start_tls(self, sslcontext, *, server_hostname=None, ssl_handshake_timeout=None):
        """Upgrades the connection to TLS (``loop.start_tls``); the reader
        and writer go on over the new transport."""
        protocol = self._protocol
        server_side = protocol._client_connected_cb is not None
        await self.drain()
        new_transport = await self._loop.start_tls(
            self._transport,
            protocol,
            sslcontext,
            server_side=server_side,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
        )
        self._transport = new_transport
        protocol._replace_writer(self)

    if hasattr(asyncio.StreamWriter, "__del__"):
        # The interpreter's asyncio warns of an unclosed writer (3.11.5+,
        # 3.12.1+): so do these.
        def __del__(self, _warn=warnings.warn):
            if not self._transport.is_closing():
                if self._loop.is_closed():
                    _warn("loop is closed", ResourceWarning)
                else:
                    self.close()
                    _warn(f"unclosed {self!r}", ResourceWarning)


# From 3.12 a cancelled client_connected_cb task closes the transport
# (3.11's callback asks the cancelled task for its exception, which raises).
_CLOSE_ON_CANCEL = sys.version_info >= (3, 12)


def _client_done(loop, transport, task):
    """The done callback of a client_connected_cb task: an exception goes
    to the loop's exception handler and closes the transport."""
    if _CLOSE_ON_CANCEL and task.cancelled():
        transport.close()
        return
    exc = task.exception()
    if exc is not None:
        loop.call_exception_handler(
            {
                "message": "Unhandled exception in client_connected_cb",
                "exception": exc,
                "transport": transport,
            }
        )
        transport.close()


class StreamReaderProtocol(_core._StreamProtocol, asyncio.StreamReaderProtocol):
    """asyncio's ``StreamReaderProtocol``: ``data_received``,
    ``eof_received``, ``connection_lost`` and flow control are Rust."""

    _source_traceback = None

    def __init__(self, stream_reader, client_connected_cb=None, loop=None):
        # As StreamReader.__init__: the native __new__ did the work.
        pass

    def connection_made(self, transport):
        self._transport = transport
        reader = self._stream_reader
        if reader is not None:
            reader.set_transport(transport)
        self._over_ssl = transport.get_extra_info("sslcontext") is not None
        callback = self._client_connected_cb
        if callback is None:
            return
        writer = StreamWriter(transport, self, reader, self._loop)
        self._stream_writer = writer
        res = callback(reader, writer)
        if coroutines.iscoroutine(res):
            task = self._loop.create_task(res)
            task.add_done_callback(functools.partial(_client_done, self._loop, transport))
            self._task = task

    def _replace_writer(self, writer):
        transport = writer.transport
        self._stream_writer = writer
        self._transport = transport
        self._over_ssl = transport.get_extra_info("sslcontext") is not None

    def __del__(self):
        # As asyncio's: an exception in _closed nobody awaited is not
        # reported as "never retrieved".
        closed = self._closed
        if closed.done() and not closed.cancelled():
            closed.exception()


async def open_connection(host=None, port=None, *, limit=_DEFAULT_LIMIT, **kwds):
    """``asyncio.open_connection`` with native streams: a (reader, writer)
    pair over ``loop.create_connection``."""
    loop = events.get_running_loop()
    reader = StreamReader(limit=limit, loop=loop)
    protocol = StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_connection(lambda: protocol, host, port, **kwds)
    writer = StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(client_connected_cb, host=None, port=None, *, limit=_DEFAULT_LIMIT, **kwds):
    """``asyncio.start_server`` with native streams: ``client_connected_cb
    (reader, writer)`` per connection (a coroutine function runs as a
    task)."""
    loop = events.get_running_loop()
    factory = functools.partial(_server_protocol, client_connected_cb, limit, loop)
    return await loop.create_server(factory, host, port, **kwds)


async def open_unix_connection(path=None, *, limit=_DEFAULT_LIMIT, **kwds):
    """``asyncio.open_unix_connection`` with native streams."""
    loop = events.get_running_loop()
    reader = StreamReader(limit=limit, loop=loop)
    protocol = StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_unix_connection(lambda: protocol, path, **kwds)
    writer = StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_unix_server(client_connected_cb, path=None, *, limit=_DEFAULT_LIMIT, **kwds):
    """``asyncio.start_unix_server`` with native streams."""
    loop = events.get_running_loop()
    factory = functools.partial(_server_protocol, client_connected_cb, limit, loop)
    return await loop.create_unix_server(factory, path, **kwds)


def _server_protocol(client_connected_cb, limit, loop):
    reader = StreamReader(limit=limit, loop=loop)
    return StreamReaderProtocol(reader, client_connected_cb, loop=loop)


# -- asyncio's functions, dispatching on the running loop ---------------

_NATIVE = {
    "open_connection": open_connection,
    "start_server": start_server,
    "open_unix_connection": open_unix_connection,
    "start_unix_server": start_unix_server,
}


def _dispatching(original, native):
    """``original`` (asyncio's), calling ``native`` instead when the
    running loop is an evloop loop (chosen when awaited, as asyncio's own
    functions take the running loop then)."""

    @functools.wraps(original)
    async def dispatch(*args, **kwargs):
        if isinstance(events.get_running_loop(), _core._CoreLoop):
            return await native(*args, **kwargs)
        return await original(*args, **kwargs)

    dispatch._evloop_original = original
    return dispatch


def use_native_streams():
    """Makes ``asyncio.open_connection``, ``start_server``,
    ``open_unix_connection`` and ``start_unix_server`` (and the same names
    in ``asyncio.streams``) use evloop's native streams when the running
    loop is an evloop loop, and asyncio's otherwise. Idempotent."""
    for name, native in _NATIVE.items():
        current = getattr(asyncio.streams, name, None)
        if current is None or hasattr(current, "_evloop_original"):
            continue
        wrapper = _dispatching(current, native)
        setattr(asyncio.streams, name, wrapper)
        if getattr(asyncio, name, None) is current:
            setattr(asyncio, name, wrapper)
