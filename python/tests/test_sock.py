"""Tests of loop.sock_* (issue 13, third slice): asyncio's low-level socket
coroutines over evloop's sock_* futures."""

import asyncio
import gc
import os
import socket
import tempfile
import unittest

import evloop


class SockTestCase(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()

    def tearDown(self):
        self.loop.close()
        # A closed loop left in a garbage cycle must be collected here: the
        # GC may otherwise run in an executor thread (getaddrinfo), and the
        # core is not Send (pyo3 then leaks it and reports a RuntimeError).
        gc.collect()

    def run_async(self, coro, timeout=10):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def pair(self, family=socket.AF_UNIX, type=socket.SOCK_STREAM):
        a, b = socket.socketpair(family, type)
        for s in (a, b):
            s.setblocking(False)
            self.addCleanup(s.close)
        return a, b

    def udp(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        return s


class TestStreams(SockTestCase):
    def test_recv_waits_for_data(self):
        a, b = self.pair()

        async def main():
            reader = asyncio.ensure_future(self.loop.sock_recv(b, 100))
            await asyncio.sleep(0.05)
            self.assertFalse(reader.done())
            await self.loop.sock_sendall(a, b"hello")
            self.assertEqual(await reader, b"hello")
            a.close()
            self.assertEqual(await self.loop.sock_recv(b, 100), b"")

        self.run_async(main())

    def test_sendall_a_large_buffer_with_bytes_likes(self):
        a, b = self.pair()
        payload = os.urandom(4 * 1024 * 1024)

        async def read_all(n):
            got = bytearray()
            while len(got) < n:
                chunk = await self.loop.sock_recv(b, 65536)
                self.assertTrue(chunk)
                got += chunk
            return bytes(got)

        async def main():
            reader = asyncio.ensure_future(read_all(len(payload) + 6))
            await self.loop.sock_sendall(a, payload)
            await self.loop.sock_sendall(a, bytearray(b"abc"))
            await self.loop.sock_sendall(a, memoryview(b"xdefx")[1:4])
            self.assertEqual(await reader, payload + b"abcdef")

        self.run_async(main())

    def test_recv_into(self):
        a, b = self.pair()

        async def main():
            buf = bytearray(10)
            await self.loop.sock_sendall(a, b"12345")
            n = await self.loop.sock_recv_into(b, buf)
            self.assertEqual((n, bytes(buf[:n])), (5, b"12345"))
            view = memoryview(bytearray(3))
            await self.loop.sock_sendall(a, b"abcdef")
            self.assertEqual(await self.loop.sock_recv_into(b, view), 3)
            self.assertEqual(view.tobytes(), b"abc")

        self.run_async(main())

    def test_connect_and_accept_tcp(self):
        listener = socket.socket()
        listener.setblocking(False)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        self.addCleanup(listener.close)
        client = socket.socket()
        client.setblocking(False)
        self.addCleanup(client.close)

        async def main():
            accepting = asyncio.ensure_future(self.loop.sock_accept(listener))
            await self.loop.sock_connect(client, listener.getsockname())
            conn, addr = await accepting
            self.addCleanup(conn.close)
            self.assertEqual(addr, client.getsockname())
            self.assertEqual(conn.gettimeout(), 0)
            await self.loop.sock_sendall(conn, b"welcome")
            self.assertEqual(await self.loop.sock_recv(client, 100), b"welcome")

        self.run_async(main())

    def test_connect_resolves_a_host_name(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        self.addCleanup(listener.close)
        client = socket.socket()
        client.setblocking(False)
        self.addCleanup(client.close)

        async def main():
            await self.loop.sock_connect(client, ("localhost", listener.getsockname()[1]))
            self.assertEqual(client.getpeername()[1], listener.getsockname()[1])

        self.run_async(main())

    def test_connect_refused(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()
        probe.close()
        client = socket.socket()
        client.setblocking(False)
        self.addCleanup(client.close)
        with self.assertRaises(ConnectionRefusedError):
            self.run_async(self.loop.sock_connect(client, dead))

    def test_connect_is_under_way_after_one_iteration(self):
        # As asyncio: the connect syscall happens when the task first runs,
        # so a blocking accept() in the same iteration finds it.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(5)
        self.addCleanup(listener.close)
        client = socket.socket()
        client.setblocking(False)
        self.addCleanup(client.close)

        async def main():
            task = asyncio.ensure_future(self.loop.sock_connect(client, listener.getsockname()))
            await asyncio.sleep(0)
            conn, _ = listener.accept()
            conn.close()
            await task

        self.run_async(main())

    def test_cancelled_connect_leaves_the_next_one_waiting(self):
        # A cancelled sock_connect must not remove the writer a later call
        # on the same socket installed.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        addr = listener.getsockname()
        client = socket.socket()
        client.setblocking(False)
        self.addCleanup(client.close)

        async def main():
            first = asyncio.ensure_future(self.loop.sock_connect(client, addr))
            await asyncio.sleep(0)
            first.cancel()
            listener.listen()
            for _ in range(10):
                try:
                    await self.loop.sock_connect(client, addr)
                    return
                except OSError:
                    continue
            self.fail("never connected")

        self.run_async(main())

    def test_ready_data_needs_no_iteration(self):
        a, b = self.pair()
        a.send(b"ready")

        async def main():
            # Already readable: sock_recv completes without yielding.
            coro = self.loop.sock_recv(b, 100)
            with self.assertRaises(StopIteration) as done:
                coro.send(None)
            self.assertEqual(done.exception.value, b"ready")

        self.run_async(main())

    def test_unix_connect_and_accept(self):
        async def main():
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "sock")
                listener = socket.socket(socket.AF_UNIX)
                listener.setblocking(False)
                listener.bind(path)
                listener.listen()
                self.addCleanup(listener.close)
                client = socket.socket(socket.AF_UNIX)
                client.setblocking(False)
                self.addCleanup(client.close)
                accepting = asyncio.ensure_future(self.loop.sock_accept(listener))
                await self.loop.sock_connect(client, path)
                conn, _ = await accepting
                self.addCleanup(conn.close)
                await self.loop.sock_sendall(client, b"unix")
                self.assertEqual(await self.loop.sock_recv(conn, 10), b"unix")

        self.run_async(main())

    def test_cancelled_recv_lets_the_next_one_read(self):
        a, b = self.pair()

        async def main():
            first = asyncio.ensure_future(self.loop.sock_recv(b, 100))
            await asyncio.sleep(0.01)
            first.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await first
            await self.loop.sock_sendall(a, b"after")
            self.assertEqual(await self.loop.sock_recv(b, 100), b"after")

        self.run_async(main())

    def test_socket_closed_while_recv_pends(self):
        a, b = self.pair()

        async def main():
            reader = asyncio.ensure_future(self.loop.sock_recv(b, 100))
            await asyncio.sleep(0.01)
            # evloop works on a duplicate: the peer closing ends the wait.
            b.close()
            a.close()
            self.assertEqual(await reader, b"")

        self.run_async(main())


class TestDatagrams(SockTestCase):
    def test_sendto_and_recvfrom(self):
        a, b = self.udp(), self.udp()

        async def main():
            n = await self.loop.sock_sendto(a, b"datagram", b.getsockname())
            self.assertEqual(n, 8)
            data, addr = await self.loop.sock_recvfrom(b, 100)
            self.assertEqual((data, addr), (b"datagram", a.getsockname()))

        self.run_async(main())

    def test_recvfrom_into_and_nbytes(self):
        a, b = self.udp(), self.udp()

        async def main():
            buf = bytearray(16)
            await self.loop.sock_sendto(a, b"0123456789", b.getsockname())
            n, addr = await self.loop.sock_recvfrom_into(b, buf, 4)
            self.assertEqual((n, bytes(buf[:n]), addr), (4, b"0123", a.getsockname()))
            with self.assertRaisesRegex(ValueError, "nbytes is greater"):
                await self.loop.sock_recvfrom_into(b, buf, 100)

        self.run_async(main())

    def test_recvfrom_waits(self):
        a, b = self.udp(), self.udp()

        async def main():
            reader = asyncio.ensure_future(self.loop.sock_recvfrom(b, 100))
            await asyncio.sleep(0.05)
            self.assertFalse(reader.done())
            await self.loop.sock_sendto(a, b"late", b.getsockname())
            self.assertEqual((await reader)[0], b"late")

        self.run_async(main())

    def test_sendto_a_host_name(self):
        a, b = self.udp(), self.udp()

        async def main():
            await self.loop.sock_sendto(a, b"named", ("localhost", b.getsockname()[1]))
            self.assertEqual((await self.loop.sock_recvfrom(b, 100))[0], b"named")

        self.run_async(main())


class TestChecks(SockTestCase):
    def test_blocking_socket_is_refused(self):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        for call in (
            lambda: self.loop.sock_recv(a, 1),
            lambda: self.loop.sock_recv_into(a, bytearray(1)),
            lambda: self.loop.sock_sendall(a, b"x"),
            lambda: self.loop.sock_connect(a, "x"),
            lambda: self.loop.sock_accept(a),
            lambda: self.loop.sock_recvfrom(a, 1),
            lambda: self.loop.sock_recvfrom_into(a, bytearray(1)),
            lambda: self.loop.sock_sendto(a, b"x", "x"),
        ):
            with self.assertRaisesRegex(ValueError, "the socket must be non-blocking"):
                self.run_async(call())

    def test_sendall_wants_bytes(self):
        a, _ = self.pair()
        with self.assertRaises(TypeError):
            self.run_async(self.loop.sock_sendall(a, "text"))

    def test_closed_socket(self):
        a, _ = self.pair()
        a.close()
        with self.assertRaises(OSError):
            self.run_async(self.loop.sock_recv(a, 1))

    def test_no_fd_leaks(self):
        a, b = self.pair()

        def fd_count():
            return len(os.listdir("/proc/self/fd"))

        async def main():
            for _ in range(50):
                await self.loop.sock_sendall(a, b"x")
                await self.loop.sock_recv(b, 1)
            with self.assertRaises(TypeError):
                await self.loop.sock_sendall(a, 1)

        self.run_async(main())
        before = fd_count()
        self.run_async(main())
        self.assertEqual(fd_count(), before)


if __name__ == "__main__":
    unittest.main()
