"""Datagram endpoints for evloop.Loop, over evloop's datagram transport.

``DatagramTransport`` is an ``asyncio.DatagramTransport`` delegating to
evloop's (``_core._DatagramTransport``); ``create_datagram_endpoint``
translates asyncio's arguments and awaits the Rust side.
"""

from __future__ import annotations

import asyncio
import os
import socket


from . import _core
from ._net import _await_core
from ._transport import CoreTransportMixin


class DatagramTransport(CoreTransportMixin, asyncio.Transport, asyncio.DatagramTransport):
    """A UDP or unix datagram endpoint: evloop's transport under asyncio's API.

    Also an ``asyncio.Transport``, as asyncio's own datagram transport is
    (its stream methods are that class's, which raise NotImplementedError).

    ``sendto`` takes a numeric host (evloop never resolves a name on the
    loop thread); ``get_extra_info('socket')`` is a ``TransportSocket`` over
    a duplicate of the fd, as for ``StreamTransport``.
    """

    __slots__ = ("_core", "_sock", "__weakref__")
    _KIND = "DatagramTransport"

    def __init__(self, core):
        super().__init__()
        self._core = core
        self._sock = None

    def sendto(self, data, addr=None):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        self._core.sendto(data, addr)


def _host_port(addr):
    """A (host, port) pair for evloop: None as host is the wildcard."""
    if addr is None:
        return None
    host, port = addr[0], addr[1]
    if isinstance(port, str):
        # A numeric string (getnameinfo's NI_NUMERICSERV) or a service name,
        # as getaddrinfo takes them.
        port = int(port) if port.isdigit() else socket.getservbyname(port, "udp")
    return ("" if host is None else host, port)


class DatagramMixin:
    """``create_datagram_endpoint`` for evloop.Loop."""

    async def create_datagram_endpoint(
        self,
        protocol_factory,
        local_addr=None,
        remote_addr=None,
        *,
        family=0,
        proto=0,
        flags=0,
        reuse_address=None,
        reuse_port=None,
        allow_broadcast=None,
        sock=None,
    ):
        """Open a datagram endpoint; returns (transport, protocol)."""
        if reuse_address:
            # asyncio's refusal (bpo-37228), word for word.
            raise ValueError(
                "Passing `reuse_address=True` is no longer supported, as the usage "
                "of SO_REUSEPORT in UDP poses a significant security concern."
            )
        if sock is not None:
            if sock.type != socket.SOCK_DGRAM:
                raise ValueError(f"A datagram socket was expected, got {sock!r}")
            if (local_addr or remote_addr or family or proto or flags
                    or reuse_port or allow_broadcast):
                opts = dict(
                    local_addr=local_addr,
                    remote_addr=remote_addr,
                    family=family,
                    proto=proto,
                    flags=flags,
                    reuse_address=reuse_address,
                    reuse_port=reuse_port,
                    allow_broadcast=allow_broadcast,
                )
                problems = ", ".join(f"{k}={v}" for k, v in opts.items() if v)
                raise ValueError(
                    f"socket modifier keyword arguments can not be used "
                    f"when sock is specified. ({problems})"
                )
            transport, protocol = await _await_core(
                self,
                _core.create_datagram_endpoint,
                self,
                protocol_factory,
                DatagramTransport,
                fd=os.dup(sock.fileno()),
            )
            transport._adopt(sock)
            return transport, protocol
        if family == socket.AF_UNIX:
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, (str, bytes, os.PathLike)):
                    raise TypeError(f"string is expected, got {addr!r}")
            return await _await_core(
                self,
                _core.create_unix_datagram_endpoint,
                self,
                protocol_factory,
                DatagramTransport,
                local_path=local_addr,
                remote_path=remote_addr,
            )
        if local_addr is None and remote_addr is None and family == 0:
            raise ValueError("unexpected address family")
        return await _await_core(
            self,
            _core.create_datagram_endpoint,
            self,
            protocol_factory,
            DatagramTransport,
            local_addr=_host_port(local_addr),
            remote_addr=_host_port(remote_addr),
            family_raw=int(family),
            proto=int(proto),
            reuse_port=bool(reuse_port),
            allow_broadcast=bool(allow_broadcast),
        )
