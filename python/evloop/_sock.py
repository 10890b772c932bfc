"""asyncio's low-level socket coroutines (``loop.sock_recv`` and friends)
for evloop.Loop, over evloop's sock_* futures.

Each call first tries its syscall in Python, as asyncio does; if it would
block, evloop's future waits, owning a duplicate of the socket's fd
(``os.dup``), so the socket may be closed while a call is pending without
evloop touching a reused fd; cancelling the awaiting task drops evloop's
future (its wait on the fd ends). ``sock_recv_into``/``sock_recvfrom_into``
then receive through ``sock_recv``/``sock_recvfrom`` and copy into the
buffer. ``sock_connect`` to a resolved address is asyncio's algorithm on
evloop's reactor (see its docstring).
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


def _dup(sock):
    """The duplicate fd evloop's call owns."""
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


def _wake(future):
    if not future.done():
        future.set_result(None)


class SockMixin:
    """The ``sock_*`` coroutines of evloop.Loop.

    Each first tries its syscall at once, as asyncio does (so a call whose
    data is ready completes without a loop iteration, and a connect is
    under way when the caller next runs); only if it would block does
    evloop's future wait for the socket.
    """

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from sock (b'' when the peer closed)."""
        _check(sock)
        try:
            return sock.recv(n)
        except (BlockingIOError, InterruptedError):
            pass
        return await _await_core(self, _core.sock_recv, self, _dup(sock), int(n))

    async def sock_recv_into(self, sock, buf):
        """Receive into buf; return the number of bytes received."""
        _check(sock)
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            pass
        view = memoryview(buf).cast("B")
        data = await _await_core(self, _core.sock_recv, self, _dup(sock), view.nbytes)
        view[: len(data)] = data
        return len(data)

    async def sock_recvfrom(self, sock, bufsize):
        """Receive one datagram of up to bufsize bytes: (data, address)."""
        _check(sock)
        try:
            return sock.recvfrom(bufsize)
        except (BlockingIOError, InterruptedError):
            pass
        return await _await_core(self, _core.sock_recvfrom, self, _dup(sock), int(bufsize))

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive one datagram into buf: (nbytes, address)."""
        _check(sock)
        view = memoryview(buf).cast("B")
        if not nbytes:
            nbytes = view.nbytes
        elif nbytes > view.nbytes:
            raise ValueError("nbytes is greater than the length of the buffer")
        try:
            return sock.recvfrom_into(buf, nbytes)
        except (BlockingIOError, InterruptedError):
            pass
        data, addr = await _await_core(self, _core.sock_recvfrom, self, _dup(sock), nbytes)
        view[: len(data)] = data
        return len(data), addr

    async def sock_sendall(self, sock, data):
        """Send all of data."""
        _check(sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        view = memoryview(data).cast("B")
        if n == view.nbytes:
            return None
        return await _await_core(self, _core.sock_sendall, self, _dup(sock), view[n:])

    async def sock_sendto(self, sock, data, address):
        """Send one datagram to address; return the number of bytes sent."""
        _check(sock)
        address = await self._numeric(sock, address)
        try:
            return sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass
        return await _await_core(self, _core.sock_sendto, self, _dup(sock), data, address)

    async def sock_connect(self, sock, address):
        """Connect sock to address. A host name goes to evloop's
        sock_connect (resolved by evloop's resolver); a resolved address is
        connected at once and waited for on evloop's reactor, as asyncio
        does, so the connect is under way before this call first yields."""
        _check(sock)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_numeric(address[0]):
            return await _await_core(self, _core.sock_connect, self, _dup(sock), address)
        try:
            sock.connect(address)
            return None
        except (BlockingIOError, InterruptedError):
            pass
        future = self.create_future()
        fd = sock.fileno()
        handle = self.add_writer(fd, _wake, future)
        try:
            await future
        finally:
            # Unless a later call on this socket replaced (cancelled) our
            # writer: that one is not ours to remove (asyncio's rule).
            if not handle.cancelled():
                self.remove_writer(fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            raise OSError(err, f"Connect call failed {address}")
        return None

    async def sock_accept(self, sock):
        """Accept a connection: (conn, address), conn non-blocking."""
        _check(sock)
        try:
            conn, address = sock.accept()
        except (BlockingIOError, InterruptedError):
            conn, address = await _await_core(self, _core.sock_accept, self, _dup(sock))
            if address is None:
                try:
                    address = conn.getpeername()
                except OSError:
                    address = ""
        conn.setblocking(False)
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
