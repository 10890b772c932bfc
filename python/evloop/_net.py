"""Stream transports and servers for evloop.Loop, over evloop's transports.

``StreamTransport`` is an ``asyncio.Transport`` delegating to evloop's
stream transport (``_core._StreamTransport``); ``Server`` is an
``asyncio.AbstractServer`` delegating to evloop's server (``_core._Server``).
The ``Loop`` methods at the bottom translate asyncio's arguments and await
the Rust side through an asyncio future.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import threading

from asyncio import constants, trsock

from . import _core, _tls
from ._transport import CoreTransportMixin


class StreamTransport(CoreTransportMixin, asyncio.Transport):
    """A TCP or unix stream connection: evloop's transport under asyncio's API.

    ``get_extra_info('socket')`` is an ``asyncio.trsock.TransportSocket``
    over a *duplicate* of the connection's fd (so its ``fileno()`` differs
    from the transport's); it is closed when the connection is lost.
    """

    # ``write`` and ``is_closing`` (what asyncio streams call per message)
    # are the Rust methods themselves, bound once per transport: no Python
    # frame between the caller and evloop.
    __slots__ = ("_core", "_sock", "write", "is_closing", "__weakref__")
    _KIND = "StreamTransport"
    # loop.sendfile tries evloop's sendfile(2) first (evloop/_sendfile.py).
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE
    # loop.start_tls may upgrade it.
    _start_tls_compatible = True

    @property
    def _protocol_paused(self):
        # Between pause_writing and resume_writing (sendfile's fallback).
        return self._core.protocol_paused()

    def __init__(self, core):
        super().__init__()
        self._core = core
        self._sock = None
        self.write = core.write
        self.is_closing = core.is_closing

    def writelines(self, list_of_data):
        self._core.writelines(list_of_data)

    def write_eof(self):
        self._core.write_eof()

    def can_write_eof(self):
        return self._core.can_write_eof()

    def pause_reading(self):
        self._core.pause_reading()

    def resume_reading(self):
        self._core.resume_reading()

    def is_reading(self):
        return self._core.is_reading()


class SSLTransport(_tls.TLSTransportMixin, StreamTransport):
    """A TLS stream connection (evloop-tls over rustls): a StreamTransport
    with asyncio's TLS ``get_extra_info`` keys (``sslcontext``,
    ``ssl_object``, ``peercert``, ``cipher``, ``compression``)."""

    __slots__ = ("_sslcontext", "_server_hostname", "_ssl_object")
    _KIND = "SSLTransport"

    def __init__(self, sslcontext, server_hostname, core):
        super().__init__(core)
        self._init_tls(sslcontext, server_hostname)


class Server(asyncio.AbstractServer):
    """A listening server: evloop's server under asyncio's API.

    ``sockets`` are ``TransportSocket`` objects over duplicates of the
    listening fds, closed when the server is closed.
    """

    def __init__(self, loop, core, sock=None):
        self._loop = loop
        self._core = core
        # The caller's sock= object, else duplicates made on demand.
        self._sockets = None if sock is None else (trsock.TransportSocket(sock),)
        # is_serving() from another thread (asyncio's is an attribute read;
        # CPython's test_server asks from its client thread) reads this
        # copy: the core belongs to the loop's thread.
        self._owner = threading.get_ident()
        self._serving = core.is_serving()
        self._closed = False

    def __repr__(self):
        return f"<evloop.Server sockets={self.sockets!r}>"

    def close(self):
        self._core.close()
        self._serving = False
        self._closed = True
        sockets, self._sockets = self._sockets, None
        for sock in sockets or ():
            sock._sock.close()

    def close_clients(self):
        self._core.close_clients()

    def abort_clients(self):
        self._core.abort_clients()

    def get_loop(self):
        return self._loop

    def is_serving(self):
        if threading.get_ident() != self._owner:
            return self._serving
        return self._core.is_serving()

    async def start_serving(self):
        self._core.start_serving()
        self._serving = self._core.is_serving()
        # asyncio yields once so accepting can begin.
        await asyncio.sleep(0)

    async def serve_forever(self):
        # serve_forever starts serving an open server.
        self._serving = not self._closed
        try:
            await _await_core(self._loop, self._core.serve_forever)
        except asyncio.CancelledError:
            # As asyncio: a cancelled serve_forever closes the server.
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise

    async def wait_closed(self):
        await _await_core(self._loop, self._core.wait_closed)

    @property
    def sockets(self):
        fds = self._core.fds()
        if not fds:
            return ()
        if self._sockets is None:
            self._sockets = tuple(
                trsock.TransportSocket(socket.socket(fileno=os.dup(fd))) for fd in fds
            )
        return self._sockets


async def _await_core(loop, start, *args, **kwargs):
    """Starts a Rust call that completes an asyncio future, and awaits it;
    cancelling the awaiting task drops the Rust future."""
    future = loop.create_future()
    pending = start(future, *args, **kwargs)
    try:
        return await future
    except asyncio.CancelledError:
        pending.cancel()
        raise


def _client_tls(ssl, server_hostname, host, handshake, shutdown):
    """A client call's TLS arguments for _core, and its transport class."""
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    timeouts = _tls.check_timeouts(bool(ssl), handshake, shutdown)
    if not ssl:
        return {}, StreamTransport
    if server_hostname is None:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    context = _tls.client_context(ssl, server_hostname)
    name, sni = _tls.client_name(context, server_hostname)
    tls = _tls.tls_config(context, False, sni)
    wrap = functools.partial(SSLTransport, context, server_hostname)
    return {"tls": tls, "server_hostname": name, "timeouts": timeouts}, wrap


def _server_tls(ssl, handshake, shutdown):
    """A server call's TLS arguments for _core, and its transport class."""
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    timeouts = _tls.check_timeouts(ssl is not None, handshake, shutdown)
    if ssl is None:
        return {}, StreamTransport
    tls = _tls.tls_config(ssl, True)
    return {"tls": tls, "timeouts": timeouts}, functools.partial(SSLTransport, ssl, None)


def _dup(sock, kind):
    """A duplicate of sock='s fd for evloop to own. The socket object stays
    open (callers keep using it, e.g. ``getsockname()``) and is closed with
    the transport or server, as asyncio closes it."""
    if sock is None:
        return None
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")
    if kind == "unix" and sock.family != socket.AF_UNIX:
        raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
    return os.dup(sock.fileno())


async def _local_addr(loop, local_addr, family):
    """local_addr with a numeric host (names resolved off the loop)."""
    host, port = local_addr[0], local_addr[1]
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned empty list")
    return infos[0][4][0], infos[0][4][1]


class NetworkMixin:
    """The stream methods of evloop.Loop."""

    async def create_connection(
        self,
        protocol_factory,
        host=None,
        port=None,
        *,
        ssl=None,
        family=0,
        proto=0,
        flags=0,
        sock=None,
        local_addr=None,
        server_hostname=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
        happy_eyeballs_delay=None,
        interleave=None,
        all_errors=False,
    ):
        """Connect to host:port (or wrap sock); returns (transport, protocol)."""
        tls, wrap = _client_tls(
            ssl, server_hostname, host, ssl_handshake_timeout, ssl_shutdown_timeout
        )
        if (host is not None or port is not None) and sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        if host is None and port is None and sock is None:
            raise ValueError("host and port was not specified and no sock specified")
        if local_addr is not None:
            local_addr = await _local_addr(self, local_addr, family)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1
        if isinstance(port, str):
            port = socket.getservbyname(port, "tcp")
        transport, protocol = await _await_core(
            self,
            _core.create_connection,
            self,
            protocol_factory,
            wrap,
            host,
            port,
            fd=_dup(sock, "tcp"),
            family_raw=int(family),
            local_addr=local_addr,
            happy_eyeballs_delay=happy_eyeballs_delay,
            interleave=interleave,
            **tls,
        )
        transport._adopt(sock)
        return transport, protocol

    async def create_server(
        self,
        protocol_factory,
        host=None,
        port=None,
        *,
        family=socket.AF_UNSPEC,
        flags=socket.AI_PASSIVE,
        sock=None,
        backlog=100,
        ssl=None,
        reuse_address=None,
        reuse_port=None,
        keep_alive=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
        start_serving=True,
    ):
        """Listen on host:port (or sock); returns an asyncio.AbstractServer."""
        tls, wrap = _server_tls(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        if (host is not None or port is not None) and sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        if isinstance(host, str):
            hosts = [] if host == "" else [host]
        elif host is None:
            hosts = []
        else:
            hosts = [h for h in host if h != ""]
        if isinstance(port, str):
            port = socket.getservbyname(port, "tcp")
        core = await _await_core(
            self,
            _core.create_server,
            self,
            protocol_factory,
            wrap,
            hosts,
            port or 0,
            fd=_dup(sock, "tcp"),
            family_raw=int(family),
            backlog=backlog,
            reuse_address=reuse_address,
            reuse_port=bool(reuse_port),
            # keep_alive is set on the listening sockets before they accept.
            start_serving=start_serving and not keep_alive,
            **tls,
        )
        server = Server(self, core, sock)
        if keep_alive:
            # As asyncio (3.13): accepted connections inherit SO_KEEPALIVE.
            for listener in server.sockets:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
            if start_serving:
                core.start_serving()
                server._serving = core.is_serving()
        if start_serving:
            # asyncio yields once so accepting can begin.
            await asyncio.sleep(0)
        return server

    async def create_unix_connection(
        self,
        protocol_factory,
        path=None,
        *,
        ssl=None,
        sock=None,
        server_hostname=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
    ):
        """Connect to the unix socket at path (or wrap sock)."""
        # asyncio: a unix connection has no host to default the name to.
        tls, wrap = _client_tls(
            ssl, server_hostname, None, ssl_handshake_timeout, ssl_shutdown_timeout
        )
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
        elif sock is None:
            raise ValueError("no path and sock were specified")
        transport, protocol = await _await_core(
            self,
            _core.create_unix_connection,
            self,
            protocol_factory,
            wrap,
            path,
            fd=_dup(sock, "unix"),
            **tls,
        )
        transport._adopt(sock)
        return transport, protocol

    async def create_unix_server(
        self,
        protocol_factory,
        path=None,
        *,
        sock=None,
        backlog=100,
        ssl=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
        start_serving=True,
        cleanup_socket=True,
    ):
        """Listen on the unix socket at path (or sock)."""
        tls, wrap = _server_tls(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
        elif sock is None:
            raise ValueError("path was not specified, and no sock specified")
        core = await _await_core(
            self,
            _core.create_unix_server,
            self,
            protocol_factory,
            wrap,
            path,
            fd=_dup(sock, "unix"),
            backlog=backlog,
            start_serving=start_serving,
            cleanup_socket=cleanup_socket,
            **tls,
        )
        server = Server(self, core, sock)
        if start_serving:
            await asyncio.sleep(0)
        return server

    async def connect_accepted_socket(
        self,
        protocol_factory,
        sock,
        *,
        ssl=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
    ):
        """Wrap an accepted stream socket in a transport (server-side TLS
        with ``ssl=``)."""
        tls, wrap = _server_tls(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        transport, protocol = await _await_core(
            self,
            _core.connect_accepted_socket,
            self,
            protocol_factory,
            wrap,
            _dup(sock, "tcp"),
            **tls,
        )
        transport._adopt(sock)
        return transport, protocol

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        """socket.getaddrinfo, run in the default executor."""
        return await self.run_in_executor(
            None, socket.getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr, flags=0):
        """socket.getnameinfo, run in the default executor."""
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)
