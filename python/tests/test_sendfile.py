"""Tests of loop.sendfile and loop.sock_sendfile on evloop.Loop: evloop's
sendfile(2) for regular files, asyncio's read-and-write fallback for other
file objects and transports, asyncio's checks and errors, the file position
afterwards, and no fd left open."""

import asyncio
import io
import os
import socket
import tempfile
import threading
import unittest

from asyncio import constants

import evloop

DATA = bytes(range(256)) * 1024 + b"tail"  # 256 KiB and a bit


def open_fds():
    return set(os.listdir("/proc/self/fd"))


class Collector(asyncio.Protocol):
    """A server protocol keeping what it receives until the peer closes."""

    def __init__(self, loop):
        self.data = bytearray()
        self.done = loop.create_future()

    def data_received(self, data):
        self.data.extend(data)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(bytes(self.data))


class ClosingCollector(Collector):
    """Closes the connection once it has `close_after` bytes."""

    def __init__(self, loop, close_after):
        super().__init__(loop)
        self.close_after = close_after
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        super().data_received(data)
        if len(self.data) >= self.close_after:
            self.transport.close()


class Client(asyncio.Protocol):
    def __init__(self):
        self.paused = 0
        self.resumed = 0

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1


class FallbackOnly(asyncio.Transport):
    """A transport evloop did not make (as a TLS one from elsewhere would
    be): it only allows sendfile's fallback; it delegates to a real one."""

    _sendfile_compatible = constants._SendfileMode.FALLBACK

    def __init__(self, inner):
        super().__init__()
        self._inner = inner

    def __getattribute__(self, name):
        if name in ("_inner", "_sendfile_compatible", "__class__", "__dict__"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "_inner"), name)


class SendfileTestCase(unittest.TestCase):
    def setUp(self):
        # Cleanups run last first: this one after everything is closed.
        self.addCleanup(self.assert_no_fd_left, open_fds())
        self.loop = evloop.new_event_loop()
        self.addCleanup(self.loop.close)
        handle, self.path = tempfile.mkstemp()
        self.addCleanup(os.unlink, self.path)
        with os.fdopen(handle, "wb") as f:
            f.write(DATA)
        self.file = open(self.path, "rb")
        self.addCleanup(lambda: self.file.close())

    def assert_no_fd_left(self, before):
        self.assertEqual(open_fds(), before)

    def write_big_file(self):
        """Makes the file 16 MiB: more than socket buffers hold."""
        big = DATA * 64
        with open(self.path, "wb") as f:
            f.write(big)
        return big

    def run_loop(self, coro):
        return self.loop.run_until_complete(coro)

    def connect(self, family=socket.AF_INET, collector=None):
        """A client transport and the server protocol collecting its bytes."""
        collector = collector or Collector(self.loop)

        async def main():
            if family == socket.AF_UNIX:
                path = os.path.join(tempfile.mkdtemp(), "sock")
                server = await self.loop.create_unix_server(lambda: collector, path)
                transport, client = await self.loop.create_unix_connection(Client, path)
            else:
                server = await self.loop.create_server(lambda: collector, "127.0.0.1", 0)
                port = server.sockets[0].getsockname()[1]
                transport, client = await self.loop.create_connection(Client, "127.0.0.1", port)
            return server, transport, client

        server, transport, client = self.run_loop(main())
        self.addCleanup(server.close)
        self.addCleanup(transport.close)
        return transport, client, collector

    def finish(self, transport, collector):
        """Closes the client; returns the bytes the server received."""
        transport.close()
        return self.run_loop(asyncio.wait_for(collector.done, 10))


class TestTransportSendfile(SendfileTestCase):
    def test_whole_file_then_more_writes(self):
        transport, _, collector = self.connect()
        transport.write(b"head:")
        sent = self.run_loop(self.loop.sendfile(transport, self.file))
        transport.write(b":end")
        self.assertEqual(sent, len(DATA))
        self.assertEqual(self.file.tell(), len(DATA))
        self.assertEqual(self.finish(transport, collector), b"head:" + DATA + b":end")

    def test_offset_and_count(self):
        transport, _, collector = self.connect()
        sent = self.run_loop(self.loop.sendfile(transport, self.file, 1000, 2345))
        self.assertEqual(sent, 2345)
        self.assertEqual(self.file.tell(), 3345)
        self.assertEqual(self.finish(transport, collector), DATA[1000:3345])

    def test_unix_stream(self):
        transport, _, collector = self.connect(socket.AF_UNIX)
        sent = self.run_loop(self.loop.sendfile(transport, self.file, 10))
        self.assertEqual(sent, len(DATA) - 10)
        self.assertEqual(self.finish(transport, collector), DATA[10:])

    def test_empty_file_sends_nothing(self):
        transport, _, collector = self.connect()
        with tempfile.TemporaryFile() as empty:
            self.assertEqual(self.run_loop(self.loop.sendfile(transport, empty)), 0)
        self.assertEqual(self.finish(transport, collector), b"")

    def test_write_during_native_sendfile_raises(self):
        big = self.write_big_file()
        transport, _, collector = self.connect()
        transport.set_write_buffer_limits(high=4096)
        started = self.loop.create_future()

        async def send():
            started.set_result(None)
            return await self.loop.sendfile(transport, self.file)

        task = self.loop.create_task(send())
        self.run_loop(started)
        with self.assertRaisesRegex(RuntimeError, "sendfile is in progress"):
            transport.write(b"data")
        self.assertEqual(self.run_loop(task), len(big))
        transport.write(b"!")  # allowed again
        self.assertEqual(self.finish(transport, collector), big + b"!")

    def test_non_regular_file_uses_the_fallback(self):
        transport, client, collector = self.connect()
        source = io.BytesIO(DATA)
        sent = self.run_loop(self.loop.sendfile(transport, source, 5, 100_000))
        self.assertEqual(sent, 100_000)
        self.assertEqual(source.tell(), 100_005)
        # The transport's protocol is the caller's again, reading again.
        self.assertIs(transport.get_protocol(), client)
        self.assertTrue(transport.is_reading())
        self.assertEqual(self.finish(transport, collector), DATA[5:100_005])

    def test_pipe_uses_the_fallback(self):
        transport, _, collector = self.connect()
        read_fd, write_fd = os.pipe()
        writer = threading.Thread(target=lambda: (os.write(write_fd, DATA[:50_000]), os.close(write_fd)))
        writer.start()
        with open(read_fd, "rb", buffering=0) as pipe:
            sent = self.run_loop(self.loop.sendfile(transport, pipe))
        writer.join()
        self.assertEqual(sent, 50_000)
        self.assertEqual(self.finish(transport, collector), DATA[:50_000])

    def test_no_fallback_for_a_non_regular_file(self):
        transport, _, collector = self.connect()
        source = io.BytesIO(DATA)
        with self.assertRaises(asyncio.SendfileNotAvailableError):
            self.run_loop(self.loop.sendfile(transport, source, fallback=False))
        self.assertEqual(source.tell(), 0)
        self.assertEqual(self.finish(transport, collector), b"")

    def test_fallback_through_a_transport_evloop_did_not_make(self):
        transport, client, collector = self.connect()
        transport.set_write_buffer_limits(high=8192)
        wrapped = FallbackOnly(transport)
        sent = self.run_loop(self.loop.sendfile(wrapped, self.file, 0, 200_000))
        self.assertEqual(sent, 200_000)
        self.assertEqual(self.file.tell(), 200_000)
        self.assertIs(transport.get_protocol(), client)
        # The caller's protocol saw no pause it was not told the end of.
        self.assertEqual(client.paused, client.resumed)
        with self.assertRaisesRegex(RuntimeError, "fallback is disabled"):
            self.run_loop(self.loop.sendfile(wrapped, self.file, fallback=False))
        self.assertEqual(self.finish(transport, collector), DATA[:200_000])

    def test_closing_transport(self):
        transport, _, collector = self.connect()
        transport.close()
        with self.assertRaisesRegex(RuntimeError, "Transport is closing"):
            self.run_loop(self.loop.sendfile(transport, self.file))
        self.assertEqual(self.file.tell(), 0)

    def test_datagram_transport_is_not_supported(self):
        transport, _ = self.run_loop(
            self.loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        )
        try:
            with self.assertRaisesRegex(RuntimeError, "sendfile is not supported for transport"):
                self.run_loop(self.loop.sendfile(transport, self.file))
        finally:
            transport.close()
        self.assertEqual(self.file.tell(), 0)

    def test_argument_errors(self):
        transport, _, collector = self.connect()
        with open(self.path) as text:
            with self.assertRaisesRegex(ValueError, "binary mode"):
                self.run_loop(self.loop.sendfile(transport, text))
        for offset, count, error in (
            (0, 0, ValueError),
            (0, -1, ValueError),
            (0, 1.5, TypeError),
            (-1, None, ValueError),
            ("0", None, TypeError),
        ):
            with self.assertRaises(error, msg=(offset, count)):
                self.run_loop(self.loop.sendfile(transport, self.file, offset, count))
        self.assertEqual(self.file.tell(), 0)
        self.assertEqual(self.finish(transport, collector), b"")

    def test_peer_closing_midway_is_a_connection_error(self):
        big = self.write_big_file()
        transport, _, collector = self.connect(collector=ClosingCollector(self.loop, 100_000))
        with self.assertRaises(ConnectionError):
            self.run_loop(self.loop.sendfile(transport, self.file))
        self.assertTrue(100_000 <= self.file.tell() < len(big), self.file.tell())
        self.assertTrue(transport.is_closing())


class TestSockSendfile(SendfileTestCase):
    def pair(self):
        """A connected non-blocking client socket and a thread reading the
        other end until EOF into a list."""
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
        listener.close()
        client.setblocking(False)
        received = []

        def read():
            chunks = []
            while chunk := peer.recv(65536):
                chunks.append(chunk)
            received.append(b"".join(chunks))
            peer.close()

        reader = threading.Thread(target=read)
        reader.start()
        self.addCleanup(client.close)
        return client, reader, received

    def received(self, client, reader, received):
        client.close()
        reader.join()
        return received[0]

    def test_whole_file_between_sendalls(self):
        client, reader, received = self.pair()
        self.run_loop(self.loop.sock_sendall(client, b"<"))
        sent = self.run_loop(self.loop.sock_sendfile(client, self.file))
        self.run_loop(self.loop.sock_sendall(client, b">"))
        self.assertEqual(sent, len(DATA))
        self.assertEqual(self.file.tell(), len(DATA))
        self.assertEqual(self.received(client, reader, received), b"<" + DATA + b">")

    def test_offset_and_count(self):
        client, reader, received = self.pair()
        sent = self.run_loop(self.loop.sock_sendfile(client, self.file, 7, 70_000))
        self.assertEqual(sent, 70_000)
        self.assertEqual(self.file.tell(), 70_007)
        self.assertEqual(self.received(client, reader, received), DATA[7:70_007])

    def test_fallback_for_a_file_object_without_fd(self):
        client, reader, received = self.pair()
        source = io.BytesIO(DATA)
        sent = self.run_loop(self.loop.sock_sendfile(client, source, 3))
        self.assertEqual(sent, len(DATA) - 3)
        self.assertEqual(source.tell(), len(DATA))
        self.assertEqual(self.received(client, reader, received), DATA[3:])

    def test_no_fallback(self):
        client, reader, received = self.pair()
        with self.assertRaises(asyncio.SendfileNotAvailableError):
            self.run_loop(self.loop.sock_sendfile(client, io.BytesIO(DATA), fallback=False))
        self.assertEqual(self.received(client, reader, received), b"")

    def test_socket_errors(self):
        blocking = socket.socket()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        try:
            with self.assertRaisesRegex(ValueError, "non-blocking"):
                self.run_loop(self.loop.sock_sendfile(blocking, self.file))
            with self.assertRaisesRegex(ValueError, "only SOCK_STREAM"):
                self.run_loop(self.loop.sock_sendfile(udp, self.file))
        finally:
            blocking.close()
            udp.close()

    def test_argument_errors(self):
        client, reader, received = self.pair()
        for offset, count, error in ((0, 0, ValueError), (-5, None, ValueError), (0, "1", TypeError)):
            with self.assertRaises(error, msg=(offset, count)):
                self.run_loop(self.loop.sock_sendfile(client, self.file, offset, count))
        self.assertEqual(self.file.tell(), 0)
        self.assertEqual(self.received(client, reader, received), b"")


if __name__ == "__main__":
    unittest.main()
