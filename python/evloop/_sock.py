"""asyncio's low-level socket coroutines (``loop.sock_recv`` and friends)
for evloop.Loop, over evloop's sock_* futures.

Each call hands evloop a duplicate of the socket's fd (``os.dup``), so the
socket may be closed while a call is pending without evloop touching a
reused fd; cancelling the awaiting task drops evloop's future (its wait on
the fd ends). ``sock_recv_into``/``sock_recvfrom_into`` receive through
``sock_recv``/``sock_recvfrom`` and copy into the buffer.
"""

from __future__ import annotations

import ipaddress
import os
import socket

from . import _core
from ._net import _await_core


def _check(sock):
    """asyncio's checks: a socket object, not an SSLSocket, non-blocking."""
    try:
        import ssl
    except ImportError:  # pragma: no cover - Python without ssl
        ssl = None
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")
    if sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    fd = sock.fileno()
    if fd < 0:
        raise OSError(9, "Bad file descriptor")
    return os.dup(fd)


def _is_numeric(host):
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class SockMixin:
    """The ``sock_*`` coroutines of evloop.Loop."""

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from sock (b'' when the peer closed)."""
        return await _await_core(self, _core.sock_recv, self, _check(sock), int(n))

    async def sock_recv_into(self, sock, buf):
        """Receive into buf; return the number of bytes received."""
        view = memoryview(buf).cast("B")
        data = await _await_core(self, _core.sock_recv, self, _check(sock), view.nbytes)
        view[: len(data)] = data
        return len(data)

    async def sock_recvfrom(self, sock, bufsize):
        """Receive one datagram of up to bufsize bytes: (data, address)."""
        return await _await_core(self, _core.sock_recvfrom, self, _check(sock), int(bufsize))

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive one datagram into buf: (nbytes, address)."""
        view = memoryview(buf).cast("B")
        if not nbytes:
            nbytes = view.nbytes
        elif nbytes > view.nbytes:
            raise ValueError("nbytes is greater than the length of the buffer")
        data, addr = await _await_core(self, _core.sock_recvfrom, self, _check(sock), nbytes)
        view[: len(data)] = data
        return len(data), addr

    async def sock_sendall(self, sock, data):
        """Send all of data."""
        return await _await_core(self, _core.sock_sendall, self, _check(sock), data)

    async def sock_sendto(self, sock, data, address):
        """Send one datagram to address; return the number of bytes sent."""
        fd = _check(sock)
        try:
            address = await self._numeric(sock, address)
        except BaseException:
            os.close(fd)
            raise
        return await _await_core(self, _core.sock_sendto, self, fd, data, address)

    async def sock_connect(self, sock, address):
        """Connect sock to address (a host name is resolved first)."""
        return await _await_core(self, _core.sock_connect, self, _check(sock), address)

    async def sock_accept(self, sock):
        """Accept a connection: (conn, address), conn non-blocking."""
        conn, address = await _await_core(self, _core.sock_accept, self, _check(sock))
        conn.setblocking(False)
        if address is None:
            try:
                address = conn.getpeername()
            except OSError:
                address = ""
        return conn, address

    async def _numeric(self, sock, address):
        """address with its host resolved, for an internet socket."""
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return address
        host, port = address[0], address[1]
        if _is_numeric(host):
            return address
        infos = await self.getaddrinfo(host, port, family=sock.family, type=sock.type)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos[0][4]
