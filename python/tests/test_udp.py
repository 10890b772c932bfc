"""Tests of loop.create_datagram_endpoint (issue 13, third slice): UDP and
unix datagram endpoints over evloop's datagram transport."""

import asyncio
import gc
import os
import socket
import tempfile
import unittest
import weakref

import evloop


class Collect(asyncio.DatagramProtocol):
    """Records every callback; echoes when asked to."""

    def __init__(self, echo=False):
        self.echo = echo
        self.transport = None
        self.received = []
        self.errors = []
        self.lost = None
        self.got = asyncio.Event()
        self.closed = asyncio.Event()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.received.append((data, addr))
        if self.echo:
            self.transport.sendto(data.upper(), addr)
        self.got.set()

    def error_received(self, exc):
        self.errors.append(exc)
        self.got.set()

    def connection_lost(self, exc):
        self.lost = exc
        self.closed.set()


class UdpTestCase(unittest.TestCase):
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


class TestUdp(UdpTestCase):
    def test_echo_between_two_endpoints(self):
        async def main():
            server_t, server_p = await self.loop.create_datagram_endpoint(
                lambda: Collect(echo=True), local_addr=("127.0.0.1", 0)
            )
            addr = server_t.get_extra_info("sockname")
            # The port as a string, as getnameinfo(NI_NUMERICSERV) gives it.
            client_t, client_p = await self.loop.create_datagram_endpoint(
                Collect, remote_addr=(addr[0], str(addr[1]))
            )
            self.assertIsInstance(client_t, asyncio.DatagramTransport)
            self.assertIs(client_t.get_protocol(), client_p)
            self.assertEqual(client_t.get_extra_info("peername"), addr)
            client_t.sendto(b"hello")
            await client_p.got.wait()
            self.assertEqual(client_p.received, [(b"HELLO", addr)])
            self.assertEqual(server_p.received[0][0], b"hello")
            self.assertEqual(server_p.received[0][1], client_t.get_extra_info("sockname"))
            client_t.close()
            server_t.close()
            await client_p.closed.wait()
            await server_p.closed.wait()
            self.assertIsNone(client_p.lost)
            self.assertTrue(client_t.is_closing())

        self.run_async(main())

    def test_sendto_addresses_and_bytes_like(self):
        async def main():
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            receiver.settimeout(5)
            self.addCleanup(receiver.close)
            transport, _ = await self.loop.create_datagram_endpoint(
                Collect, local_addr=("127.0.0.1", 0)
            )
            target = receiver.getsockname()
            transport.sendto(b"one", target)
            transport.sendto(bytearray(b"two"), target)
            transport.sendto(memoryview(b"three"), target)
            got = [await self.loop.run_in_executor(None, receiver.recv, 100) for _ in range(3)]
            self.assertEqual(got, [b"one", b"two", b"three"])
            with self.assertRaises(TypeError):
                transport.sendto("text", target)
            self.assertEqual(transport.get_write_buffer_size(), 0)
            transport.abort()

        self.run_async(main())

    def test_receives_from_a_plain_socket(self):
        async def main():
            transport, protocol = await self.loop.create_datagram_endpoint(
                Collect, local_addr=("127.0.0.1", 0)
            )
            addr = transport.get_extra_info("sockname")
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(sender.close)
            sender.sendto(b"x" * 1000, addr)
            await protocol.got.wait()
            port = sender.getsockname()[1]
            self.assertEqual(protocol.received, [(b"x" * 1000, ("127.0.0.1", port))])
            sock = transport.get_extra_info("socket")
            self.assertEqual(sock.getsockname(), addr)
            self.assertEqual(sock.type, socket.SOCK_DGRAM)
            transport.close()
            await protocol.closed.wait()

        self.run_async(main())

    def test_error_received_for_a_refused_peer(self):
        async def main():
            # A port nobody listens on: the ICMP error reaches error_received.
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", 0))
            dead = probe.getsockname()
            probe.close()
            transport, protocol = await self.loop.create_datagram_endpoint(
                Collect, remote_addr=dead
            )
            transport.sendto(b"anyone?")
            await protocol.got.wait()
            self.assertIsInstance(protocol.errors[0], ConnectionRefusedError)
            self.assertFalse(transport.is_closing())
            transport.close()

        self.run_async(main())

    def test_protocol_exception_goes_to_the_handler(self):
        caught = []
        self.loop.set_exception_handler(lambda lp, ctx: caught.append(ctx))

        class Boom(Collect):
            def datagram_received(self, data, addr):
                super().datagram_received(data, addr)
                raise ZeroDivisionError("boom")

        async def main():
            transport, protocol = await self.loop.create_datagram_endpoint(
                Boom, local_addr=("127.0.0.1", 0)
            )
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(sender.close)
            sender.sendto(b"1", transport.get_extra_info("sockname"))
            await protocol.got.wait()
            await asyncio.sleep(0)
            self.assertEqual(len(caught), 1)
            self.assertIsInstance(caught[0]["exception"], ZeroDivisionError)
            self.assertIs(caught[0]["protocol"], protocol)
            # As in asyncio, the endpoint stays open.
            self.assertFalse(transport.is_closing())
            transport.close()

        self.run_async(main())

    def test_sock_argument(self):
        async def main():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            addr = sock.getsockname()
            transport, protocol = await self.loop.create_datagram_endpoint(Collect, sock=sock)
            self.assertEqual(transport.get_extra_info("sockname"), addr)
            self.assertIs(transport.get_extra_info("socket")._sock, sock)
            transport.close()
            await protocol.closed.wait()
            self.assertEqual(sock.fileno(), -1)

        self.run_async(main())

    def test_argument_errors(self):
        async def main():
            with self.assertRaisesRegex(ValueError, "unexpected address family"):
                await self.loop.create_datagram_endpoint(Collect)
            with self.assertRaisesRegex(ValueError, "reuse_address"):
                await self.loop.create_datagram_endpoint(
                    Collect, local_addr=("127.0.0.1", 0), reuse_address=True
                )
            stream = socket.socket()
            self.addCleanup(stream.close)
            with self.assertRaisesRegex(ValueError, "datagram socket was expected"):
                await self.loop.create_datagram_endpoint(Collect, sock=stream)
            dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(dgram.close)
            with self.assertRaisesRegex(ValueError, "socket modifier keyword"):
                await self.loop.create_datagram_endpoint(
                    Collect, sock=dgram, local_addr=("127.0.0.1", 0)
                )

            def failing():
                raise RuntimeError("factory")

            with self.assertRaisesRegex(RuntimeError, "factory"):
                await self.loop.create_datagram_endpoint(failing, local_addr=("127.0.0.1", 0))

        self.run_async(main())

    def test_family_without_address(self):
        async def main():
            transport, protocol = await self.loop.create_datagram_endpoint(
                Collect, family=socket.AF_INET
            )
            self.assertIsNone(transport.get_extra_info("peername"))
            transport.close()
            await protocol.closed.wait()

        self.run_async(main())

    def test_closed_endpoints_are_freed(self):
        refs = []

        async def once():
            transport, protocol = await self.loop.create_datagram_endpoint(
                Collect, local_addr=("127.0.0.1", 0)
            )
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender.sendto(b"x", transport.get_extra_info("sockname"))
            sender.close()
            await protocol.got.wait()
            transport.close()
            await protocol.closed.wait()
            self.assertIsNone(transport.get_protocol())
            refs.extend([weakref.ref(transport), weakref.ref(protocol)])

        async def main():
            for _ in range(100):
                await once()

        self.run_async(main())
        gc.collect()
        self.assertEqual([r for r in refs if r() is not None], [])

    def test_write_buffer_limits(self):
        async def main():
            transport, _ = await self.loop.create_datagram_endpoint(
                Collect, local_addr=("127.0.0.1", 0)
            )
            transport.set_write_buffer_limits(high=100, low=10)
            self.assertEqual(transport.get_write_buffer_limits(), (10, 100))
            with self.assertRaises(ValueError):
                transport.set_write_buffer_limits(high=1, low=10)
            transport.close()

        self.run_async(main())


class TestUnixDatagram(UdpTestCase):
    def test_unix_paths(self):
        async def main():
            with tempfile.TemporaryDirectory() as tmp:
                a = os.path.join(tmp, "a")
                b = os.path.join(tmp, "b")
                ta, pa = await self.loop.create_datagram_endpoint(
                    lambda: Collect(echo=True), local_addr=a, family=socket.AF_UNIX
                )
                tb, pb = await self.loop.create_datagram_endpoint(
                    Collect, local_addr=b, remote_addr=a, family=socket.AF_UNIX
                )
                tb.sendto(b"ping")
                await pb.got.wait()
                self.assertEqual(pb.received, [(b"PING", a)])
                ta.close()
                tb.close()
                await pa.closed.wait()
                await pb.closed.wait()

        self.run_async(main())


if __name__ == "__main__":
    unittest.main()
