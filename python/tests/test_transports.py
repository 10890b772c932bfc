"""Tests of evloop.Loop's stream transports (issue 13, second slice): TCP and
unix connections and servers over evloop's transports, Python protocols
called from them, asyncio streams on top."""

import asyncio
import errno
import gc
import os
import socket
import tempfile
import threading
import unittest
import weakref

import evloop

MIB = 1024 * 1024


class Echo(asyncio.Protocol):
    """Server side: writes back what it reads; closes on EOF."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Collect(asyncio.Protocol):
    """Client side: records events; `done` resolves on connection_lost."""

    def __init__(self, loop, expect=None):
        self.data = bytearray()
        self.events = []
        self.expect = expect
        self.got = loop.create_future()
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.data += data
        if self.expect is not None and len(self.data) >= self.expect and not self.got.done():
            self.got.set_result(bytes(self.data))

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        if not self.done.done():
            self.done.set_result(exc)


class TransportTestCase(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()
        self.errors = []
        self.loop.set_exception_handler(lambda loop, context: self.errors.append(context))

    def tearDown(self):
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def run_async(self, coro, timeout=10):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    async def echo_server(self, factory=Echo):
        server = await self.loop.create_server(factory, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]


class TestTcp(TransportTestCase):
    def test_echo_with_protocols_on_both_sides(self):
        async def main():
            server, port = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, expect=5), "127.0.0.1", port
            )
            self.assertIsInstance(transport, asyncio.Transport)
            self.assertIs(transport.get_protocol(), client)
            transport.write(b"hel")
            transport.write(bytearray(b"l"))
            transport.writelines([memoryview(b"o")])
            self.assertEqual(await client.got, b"hello")
            transport.close()
            self.assertTrue(transport.is_closing())
            self.assertIsNone(await client.done)
            self.assertEqual(client.events[0], "made")
            self.assertEqual(client.events[-1], ("lost", None))
            server.close()
            await server.wait_closed()

        self.run_async(main())
        self.assertEqual(self.errors, [])

    def test_create_connection_returns_before_the_first_data(self):
        # asyncio's order: the caller of create_connection resumes before
        # the protocol sees what the peer sent at once (CPython's
        # test_buffered_proto uses the transport from data callbacks).
        order = []

        class Greeted(asyncio.BufferedProtocol):
            def get_buffer(self, sizehint):
                return bytearray(64)

            def buffer_updated(self, nbytes):
                order.append("data")

        async def greet(reader, writer):
            writer.write(b"hello")
            await reader.read()
            writer.close()

        async def main():
            server = await asyncio.start_server(greet, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            for i in range(20):
                transport, _ = await self.loop.create_connection(Greeted, "127.0.0.1", port)
                order.append("returned")
                while order.count("data") <= i:
                    await asyncio.sleep(0.001)
                transport.close()
            server.close()
            await server.wait_closed()

        self.run_async(main())
        self.assertEqual(order, ["returned", "data"] * 20)
        self.assertEqual(self.errors, [])

    def test_one_mebibyte_is_echoed_byte_exact(self):
        payload = os.urandom(MIB)

        async def main():
            server, port = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, expect=MIB), "127.0.0.1", port
            )
            transport.write(payload)
            echoed = await client.got
            transport.close()
            await client.done
            server.close()
            await server.wait_closed()
            return echoed

        self.assertEqual(self.run_async(main()), payload)

    def test_write_rejects_str(self):
        async def main():
            server, port = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port
            )
            with self.assertRaisesRegex(TypeError, "bytes-like"):
                transport.write("text")
            transport.close()
            await client.done
            server.close()

        self.run_async(main())

    def test_write_eof_reaches_eof_received(self):
        class HalfClose(asyncio.Protocol):
            """Answers after the peer's EOF, then closes."""

            def __init__(self):
                self.data = b""

            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                self.data += data

            def eof_received(self):
                self.transport.write(b"got " + self.data)
                self.transport.close()
                return True

        async def main():
            server, port = await self.echo_server(HalfClose)
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port
            )
            self.assertTrue(transport.can_write_eof())
            transport.write(b"abc")
            transport.write_eof()
            await client.done
            server.close()
            return client

        client = self.run_async(main())
        self.assertEqual(bytes(client.data), b"got abc")
        self.assertEqual(client.events, ["made", "eof", ("lost", None)])

    def test_pause_and_resume_reading(self):
        async def main():
            server, port = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, expect=2), "127.0.0.1", port
            )
            self.assertTrue(transport.is_reading())
            transport.pause_reading()
            self.assertFalse(transport.is_reading())
            transport.write(b"hi")
            await asyncio.sleep(0.1)
            self.assertEqual(bytes(client.data), b"")
            transport.resume_reading()
            self.assertTrue(transport.is_reading())
            self.assertEqual(await client.got, b"hi")
            transport.close()
            await client.done
            server.close()

        self.run_async(main())

    def test_write_buffer_limits(self):
        async def main():
            server, port = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port
            )
            transport.set_write_buffer_limits(high=1000, low=100)
            self.assertEqual(transport.get_write_buffer_limits(), (100, 1000))
            transport.set_write_buffer_limits(high=400)
            self.assertEqual(transport.get_write_buffer_limits(), (100, 400))
            with self.assertRaises(ValueError):
                transport.set_write_buffer_limits(high=1, low=10)
            self.assertEqual(transport.get_write_buffer_size(), 0)
            transport.abort()
            await client.done
            server.close()

        self.run_async(main())

    def test_protocol_exception_goes_to_the_handler_and_closes(self):
        boom = ValueError("boom")

        class Raising(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                raise boom

        async def main():
            server, port = await self.echo_server()
            transport, protocol = await self.loop.create_connection(
                Raising, "127.0.0.1", port
            )
            transport.write(b"x")
            for _ in range(100):
                if self.errors:
                    break
                await asyncio.sleep(0.01)
            self.assertTrue(transport.is_closing())
            server.close()
            return transport, protocol

        transport, protocol = self.run_async(main())
        self.assertEqual(len(self.errors), 1)
        context = self.errors[0]
        self.assertIs(context["exception"], boom)
        self.assertIn("data_received", context["message"])
        self.assertIs(context["transport"], transport)
        self.assertIs(context["protocol"], protocol)

    def test_a_raise_in_each_protocol_method_is_reported(self):
        for method in ("connection_made", "data_received", "eof_received", "connection_lost"):
            with self.subTest(method=method):
                self.errors.clear()
                self.run_async(self.raise_in(method))
                self.assertEqual(len(self.errors), 1, self.errors)
                self.assertIsInstance(self.errors[0]["exception"], ZeroDivisionError)
                self.assertIn(method, self.errors[0]["message"])

    async def raise_in(self, method):
        lost = self.loop.create_future()

        class Raising(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                if method == "connection_made":
                    1 / 0

            def data_received(self, data):
                if method == "data_received":
                    1 / 0

            def eof_received(self):
                if method == "eof_received":
                    1 / 0

            def connection_lost(self, exc):
                lost.set_result(exc)
                if method == "connection_lost":
                    1 / 0

        class Peer(asyncio.Protocol):
            def connection_made(self, transport):
                transport.write(b"data")
                transport.write_eof()

        server, port = await self.echo_server(Peer)
        transport, _ = await self.loop.create_connection(Raising, "127.0.0.1", port)
        await lost
        await asyncio.sleep(0)
        self.assertTrue(transport.is_closing())
        server.close()
        await server.wait_closed()

    def test_transport_after_close(self):
        async def main():
            server, port = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port
            )
            transport.close()
            transport.close()
            await client.done
            transport.write(b"dropped")
            transport.abort()
            self.assertTrue(transport.is_closing())
            self.assertFalse(transport.is_reading())
            self.assertIsNone(transport.get_protocol())
            self.assertIsNone(transport.get_extra_info("socket"))
            self.assertEqual(transport.get_extra_info("peername"), ("127.0.0.1", port))
            server.close()
            await server.wait_closed()

        self.run_async(main())

    def test_closed_connections_are_freed(self):
        refs = []

        async def once(port):
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, expect=1), "127.0.0.1", port
            )
            transport.write(b"x")
            await client.got
            transport.close()
            await client.done
            refs.extend([weakref.ref(transport), weakref.ref(client)])

        async def main():
            server, port = await self.echo_server()
            for _ in range(200):
                await once(port)
            server.close()
            await server.wait_closed()

        self.run_async(main())
        gc.collect()
        self.assertEqual([r for r in refs if r() is not None], [])

    def test_keyboard_interrupt_in_a_protocol_leaves_run_forever(self):
        class Interrupting(asyncio.Protocol):
            def data_received(self, data):
                raise KeyboardInterrupt

        held = []

        async def main():
            server, port = await self.echo_server()
            transport, _ = await self.loop.create_connection(
                Interrupting, "127.0.0.1", port
            )
            held.extend([server, transport])
            transport.write(b"x")
            await asyncio.sleep(10)

        task = self.loop.create_task(main())
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_until_complete(task)
        self.assertEqual(self.errors, [])
        server, transport = held
        transport.close()
        server.close()
        task.cancel()
        self.loop.run_until_complete(
            asyncio.gather(task, server.wait_closed(), return_exceptions=True)
        )

    def test_protocol_factory_error_is_raised(self):
        def factory():
            raise KeyError("no protocol")

        async def main():
            server, port = await self.echo_server()
            with self.assertRaises(KeyError):
                await self.loop.create_connection(factory, "127.0.0.1", port)
            server.close()

        self.run_async(main())

    def test_connection_refused(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens on port now

        async def main():
            await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port)

        with self.assertRaises(ConnectionRefusedError):
            self.run_async(main())

    def test_address_in_use_keeps_its_errno(self):
        taken = socket.create_server(("127.0.0.1", 0))
        port = taken.getsockname()[1]

        async def main():
            await self.loop.create_server(Echo, "127.0.0.1", port, reuse_address=False)

        try:
            with self.assertRaises(OSError) as caught:
                self.run_async(main())
        finally:
            taken.close()
        self.assertEqual(caught.exception.errno, errno.EADDRINUSE)
        self.assertNotIn("os error", str(caught.exception))

    def test_connect_accepted_socket(self):
        async def main():
            listener = socket.create_server(("127.0.0.1", 0))
            client = socket.create_connection(listener.getsockname())
            accepted, _ = await self.loop.run_in_executor(None, listener.accept)
            listener.close()
            transport, _ = await self.loop.connect_accepted_socket(Echo, accepted)
            client.sendall(b"accepted")
            reply = await self.loop.run_in_executor(None, client.recv, 100)
            client.close()
            transport.close()
            return reply

        self.assertEqual(self.run_async(main()), b"accepted")

    def test_host_name_is_resolved(self):
        async def main():
            server, port = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, expect=2), "localhost", port, family=socket.AF_INET
            )
            transport.write(b"ok")
            self.assertEqual(await client.got, b"ok")
            transport.close()
            await client.done
            server.close()

        self.run_async(main())

    def test_get_extra_info(self):
        async def main():
            server, port = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port
            )
            peer = transport.get_extra_info("peername")
            own = transport.get_extra_info("sockname")
            sock = transport.get_extra_info("socket")
            self.assertEqual(peer, ("127.0.0.1", port))
            self.assertEqual(own[0], "127.0.0.1")
            self.assertEqual(sock.family, socket.AF_INET)
            self.assertEqual(sock.type, socket.SOCK_STREAM)
            self.assertEqual(sock.getsockname(), own)
            self.assertEqual(sock.getpeername(), peer)
            self.assertIsNone(transport.get_extra_info("sslcontext"))
            self.assertEqual(transport.get_extra_info("nothing", 42), 42)
            transport.close()
            await client.done
            self.assertIsNone(transport.get_extra_info("socket"))
            server.close()

        self.run_async(main())

    def test_cancelled_connect_raises_cancelled(self):
        async def main():
            server, port = await self.echo_server()
            task = asyncio.ensure_future(
                self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            )
            # Once the Rust connect has started, before it completes.
            await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            server.close()
            # The dropped connect closed its socket, so the server's
            # connection (if it was accepted) is lost and wait_closed ends.
            await server.wait_closed()

        self.run_async(main())
        self.assertEqual(self.errors, [])

    def test_buffered_protocol(self):
        class Buffered(asyncio.BufferedProtocol):
            def __init__(self, loop):
                self.buffer = bytearray(3)
                self.data = b""
                self.done = loop.create_future()

            def connection_made(self, transport):
                transport.write(b"abcdefgh")

            def get_buffer(self, sizehint):
                return self.buffer

            def buffer_updated(self, nbytes):
                self.data += bytes(self.buffer[:nbytes])
                if len(self.data) == 8:
                    self.done.set_result(self.data)

        async def main():
            server, port = await self.echo_server()
            transport, protocol = await self.loop.create_connection(
                lambda: Buffered(self.loop), "127.0.0.1", port
            )
            data = await protocol.done
            transport.close()
            server.close()
            return data

        self.assertEqual(self.run_async(main()), b"abcdefgh")


class TestServer(TransportTestCase):
    def test_close_and_wait_closed(self):
        async def main():
            server, port = await self.echo_server()
            self.assertIsInstance(server, asyncio.AbstractServer)
            self.assertIs(server.get_loop(), self.loop)
            self.assertTrue(server.is_serving())
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port
            )
            server.close()
            self.assertFalse(server.is_serving())
            self.assertEqual(server.sockets, ())
            waiter = asyncio.ensure_future(server.wait_closed())
            await asyncio.sleep(0.05)
            # A connection accepted before close() keeps wait_closed waiting.
            self.assertFalse(waiter.done())
            transport.close()
            await asyncio.wait_for(waiter, 5)
            with self.assertRaises(ConnectionRefusedError):
                await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port)

        self.run_async(main())

    def test_start_serving_later_and_async_with(self):
        async def main():
            server = await self.loop.create_server(
                Echo, "127.0.0.1", 0, start_serving=False
            )
            self.assertFalse(server.is_serving())
            port = server.sockets[0].getsockname()[1]
            async with server:
                await server.start_serving()
                self.assertTrue(server.is_serving())
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"x\n")
                self.assertEqual(await reader.readline(), b"x\n")
                writer.close()
                await writer.wait_closed()
            self.assertFalse(server.is_serving())

        self.run_async(main())

    def test_is_serving_from_another_thread(self):
        # CPython's test_server polls is_serving() from its client thread.
        def ask(server):
            answers = []
            thread = threading.Thread(target=lambda: answers.append(server.is_serving()))
            thread.start()
            thread.join()
            return answers[0]

        async def main():
            server = await self.loop.create_server(
                Echo, "127.0.0.1", 0, start_serving=False
            )
            self.assertFalse(ask(server))
            await server.start_serving()
            self.assertTrue(ask(server))
            server.close()
            self.assertFalse(ask(server))
            await server.wait_closed()
            other, _ = await self.echo_server()
            task = asyncio.ensure_future(other.serve_forever())
            await asyncio.sleep(0)
            self.assertTrue(ask(other))
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            self.assertFalse(ask(other))

        self.run_async(main())

    def test_serve_forever_ends_when_cancelled(self):
        async def main():
            server, _ = await self.echo_server()
            task = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0.05)
            self.assertTrue(server.is_serving())
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            self.assertFalse(server.is_serving())

        self.run_async(main())

    def test_accept_from_a_plain_socket_peer_in_a_thread(self):
        payload = os.urandom(200_000)
        received = []

        def peer(port):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
                received.append(b"".join(chunks))

        async def main():
            server, port = await self.echo_server()
            thread = threading.Thread(target=peer, args=(port,))
            thread.start()
            await self.loop.run_in_executor(None, thread.join)
            server.close()
            await server.wait_closed()

        self.run_async(main())
        self.assertEqual(received, [payload])

    def test_connect_to_a_plain_socket_peer_in_a_thread(self):
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]

        def peer():
            conn, _ = listener.accept()
            with conn:
                data = conn.recv(100)
                conn.sendall(data.upper())
            listener.close()

        thread = threading.Thread(target=peer)
        thread.start()

        async def main():
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port
            )
            transport.write(b"shout")
            await client.done
            return client

        client = self.run_async(main())
        thread.join()
        self.assertEqual(bytes(client.data), b"SHOUT")
        self.assertEqual(client.events, ["made", "eof", ("lost", None)])

    def test_sock_argument(self):
        async def main():
            listener = socket.create_server(("127.0.0.1", 0))
            port = listener.getsockname()[1]
            server = await self.loop.create_server(Echo, sock=listener)
            # The caller's socket objects stay usable, as with asyncio.
            self.assertEqual(listener.getsockname()[1], port)
            self.assertEqual(server.sockets[0].fileno(), listener.fileno())
            client_sock = socket.create_connection(("127.0.0.1", port))
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, expect=3), sock=client_sock
            )
            self.assertEqual(transport.get_extra_info("socket").fileno(), client_sock.fileno())
            transport.write(b"via")
            self.assertEqual(await client.got, b"via")
            transport.close()
            await client.done
            # ... and are closed with the transport and the server.
            self.assertEqual(client_sock.fileno(), -1)
            server.close()
            self.assertEqual(listener.fileno(), -1)
            await server.wait_closed()

        self.run_async(main())


class TestStreams(TransportTestCase):
    def test_open_connection_and_start_server_echo(self):
        async def handle(reader, writer):
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            lines = []
            # 50 000 bytes: under StreamReader's 64 KiB line limit.
            for word in (b"one\n", b"two\n", b"x" * 50_000 + b"\n"):
                writer.write(word)
                await writer.drain()
                lines.append(await reader.readline())
            writer.write_eof()
            self.assertEqual(await reader.read(), b"")
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return lines

        lines = self.run_async(main())
        self.assertEqual(lines, [b"ONE\n", b"TWO\n", b"X" * 50_000 + b"\n"])
        self.assertEqual(self.errors, [])


class TestUnix(TransportTestCase):
    def test_unix_echo_with_streams(self):
        async def handle(reader, writer):
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        async def main(path):
            server = await asyncio.start_unix_server(handle, path)
            reader, writer = await asyncio.open_unix_connection(path)
            self.assertEqual(writer.get_extra_info("peername"), path)
            writer.write(b"over unix\n")
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return line

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "sock")
            self.assertEqual(self.run_async(main(path)), b"over unix\n")
            self.assertFalse(os.path.exists(path))


if __name__ == "__main__":
    unittest.main()
