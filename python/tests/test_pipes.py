"""Tests of loop.connect_read_pipe/connect_write_pipe (issue 13): evloop's
pipe transports under asyncio's Unix semantics."""

import asyncio
import gc
import io
import os
import socket
import tempfile
import unittest
import warnings

import evloop
from loopcase import LoopTestCase


def open_fds():
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


class Record(asyncio.Protocol):
    """Records every callback of a pipe transport."""

    def __init__(self):
        self.transport = None
        self.events = []
        self.data = bytearray()
        self.lost = None
        self.got = asyncio.Event()
        self.done = asyncio.Event()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.data += data
        self.got.set()

    def eof_received(self):
        self.events.append("eof")

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost = exc
        self.done.set()


class PipeTestCase(LoopTestCase):

    def read_pipe(self, pipe):
        return self.run_async(self.loop.connect_read_pipe(Record, pipe))

    def write_pipe(self, pipe):
        return self.run_async(self.loop.connect_write_pipe(Record, pipe))


class TestReadPipe(PipeTestCase):
    def test_bytes_then_eof_then_connection_lost_once(self):
        r, w = os.pipe()
        pipe = open(r, "rb", 0)
        transport, proto = self.read_pipe(pipe)
        self.assertIs(proto.transport, transport)
        self.assertIsInstance(transport, asyncio.ReadTransport)
        self.assertIs(transport.get_extra_info("pipe"), pipe)
        self.assertFalse(os.get_blocking(r))  # asyncio makes it non-blocking
        os.write(w, b"hello ")
        os.write(w, b"pipe")
        os.close(w)
        self.run_async(proto.done.wait())
        self.assertEqual(bytes(proto.data), b"hello pipe")
        self.assertEqual(proto.events, ["made", "eof", "lost"])
        self.assertIsNone(proto.lost)
        # As asyncio: the transport closed the pipe object it was given.
        self.assertTrue(pipe.closed)
        self.assertIn("closed", repr(transport))

    def test_pause_and_resume_reading(self):
        r, w = os.pipe()
        transport, proto = self.read_pipe(open(r, "rb", 0))
        self.assertTrue(transport.is_reading())
        transport.pause_reading()
        self.assertFalse(transport.is_reading())
        os.write(w, b"held")
        self.run_async(asyncio.sleep(0.05))
        self.assertEqual(bytes(proto.data), b"")
        transport.resume_reading()
        self.assertTrue(transport.is_reading())
        self.run_async(proto.got.wait())
        self.assertEqual(bytes(proto.data), b"held")
        os.close(w)
        self.run_async(proto.done.wait())
        self.assertFalse(transport.is_reading())

    def test_close_delivers_connection_lost_once(self):
        r, w = os.pipe()
        self.addCleanup(os.close, w)
        transport, proto = self.read_pipe(open(r, "rb", 0))
        transport.close()
        transport.close()
        self.assertTrue(transport.is_closing())
        self.run_async(proto.done.wait())
        self.run_async(asyncio.sleep(0.01))
        self.assertEqual(proto.events, ["made", "lost"])
        self.assertIsNone(transport.get_protocol())

    def test_pty_output_then_eio_is_eof(self):
        master, slave = os.openpty()
        transport, proto = self.read_pipe(open(master, "rb", 0))
        os.write(slave, b"tty")
        self.run_async(proto.got.wait())
        os.close(slave)
        self.run_async(proto.done.wait())
        self.assertEqual(bytes(proto.data), b"tty")
        self.assertEqual(proto.events, ["made", "eof", "lost"])

    def test_socket_is_accepted(self):
        a, b = socket.socketpair()
        self.addCleanup(b.close)
        transport, proto = self.read_pipe(a)
        b.sendall(b"over a socket")
        self.run_async(proto.got.wait())
        self.assertEqual(bytes(proto.data), b"over a socket")
        transport.close()
        self.run_async(proto.done.wait())
        self.assertEqual(a.fileno(), -1)  # closed by the transport

    def test_regular_file_is_a_value_error_and_stays_open(self):
        with tempfile.TemporaryFile() as f:
            with self.assertRaisesRegex(ValueError, "pipes/sockets only"):
                self.read_pipe(f)
            with self.assertRaisesRegex(ValueError, "character devices"):
                self.write_pipe(f)
            self.assertFalse(f.closed)
            f.write(b"still usable")

    def test_exception_in_data_received_goes_to_the_handler(self):
        class Boom(Record):
            def data_received(self, data):
                raise ZeroDivisionError("boom")

        r, w = os.pipe()
        self.addCleanup(os.close, w)
        transport, proto = self.run_async(self.loop.connect_read_pipe(Boom, open(r, "rb", 0)))
        os.write(w, b"x")
        self.run_async(proto.done.wait())
        self.assertEqual(len(self.handled), 1)
        context = self.handled[0]
        self.assertIsInstance(context["exception"], ZeroDivisionError)
        self.assertIs(context["protocol"], proto)
        self.assertIs(context["transport"], transport)
        self.assertIn("data_received", context["message"])

    def test_protocol_factory_error_is_raised(self):
        def factory():
            raise ZeroDivisionError

        r, w = os.pipe()
        self.addCleanup(os.close, w)
        with open(r, "rb", 0) as pipe:
            with self.assertRaises(ZeroDivisionError):
                self.run_async(self.loop.connect_read_pipe(factory, pipe))
            self.run_async(asyncio.sleep(0.01))
            self.assertFalse(pipe.closed)  # as asyncio: never the transport's


class TestWritePipe(PipeTestCase):
    def test_write_writelines_then_write_eof(self):
        r, w = os.pipe()
        pipe = open(w, "wb", 0)
        transport, proto = self.write_pipe(pipe)
        self.assertIsInstance(transport, asyncio.WriteTransport)
        self.assertIs(transport.get_extra_info("pipe"), pipe)
        self.assertTrue(transport.can_write_eof())
        transport.write(b"a")
        transport.write(bytearray(b"b"))
        transport.write(memoryview(b"xcx")[1:2])
        transport.writelines([b"d", b"e"])
        transport.write_eof()
        self.run_async(proto.done.wait())
        with open(r, "rb") as reader:
            self.assertEqual(reader.read(), b"abcde")  # then EOF: all closed
        self.assertEqual(proto.events, ["made", "lost"])
        self.assertIsNone(proto.lost)
        self.assertTrue(pipe.closed)

    def test_write_rejects_str(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        transport, proto = self.write_pipe(open(w, "wb", 0))
        with self.assertRaises(TypeError):
            transport.write("text")
        transport.close()
        self.run_async(proto.done.wait())

    def test_flow_control_and_buffer_limits(self):
        r, w = os.pipe()
        transport, proto = self.write_pipe(open(w, "wb", 0))
        transport.set_write_buffer_limits(high=1000, low=100)
        self.assertEqual(transport.get_write_buffer_limits(), (100, 1000))
        big = b"z" * (1 << 20)  # more than the pipe holds
        transport.write(big)
        self.assertGreater(transport.get_write_buffer_size(), 1000)
        self.assertEqual(proto.events, ["made", "pause"])
        got = bytearray()
        reader = open(r, "rb", 0)
        self.addCleanup(reader.close)

        async def drain():
            while len(got) < len(big):
                await asyncio.sleep(0)
                got.extend(reader.read(1 << 16) or b"")

        os.set_blocking(r, False)
        self.run_async(drain())
        self.assertEqual(bytes(got), big)
        self.assertEqual(proto.events, ["made", "pause", "resume"])
        self.assertEqual(transport.get_write_buffer_size(), 0)
        with self.assertRaises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.close()
        self.run_async(proto.done.wait())

    def test_reader_gone_with_nothing_buffered_is_connection_lost_none(self):
        r, w = os.pipe()
        transport, proto = self.write_pipe(open(w, "wb", 0))
        os.close(r)
        self.run_async(proto.done.wait())
        self.assertIsNone(proto.lost)

    def test_reader_gone_with_data_buffered_is_broken_pipe(self):
        r, w = os.pipe()
        transport, proto = self.write_pipe(open(w, "wb", 0))
        transport.write(b"y" * (1 << 20))
        self.assertGreater(transport.get_write_buffer_size(), 0)
        os.close(r)
        self.run_async(proto.done.wait())
        self.assertIsInstance(proto.lost, BrokenPipeError)
        self.assertEqual(proto.events.count("lost"), 1)
        # Writes after that are dropped, as asyncio drops them.
        transport.write(b"ignored")

    def test_abort_drops_the_buffer(self):
        r, w = os.pipe()
        transport, proto = self.write_pipe(open(w, "wb", 0))
        transport.write(b"q" * (1 << 20))
        transport.abort()
        self.run_async(proto.done.wait())
        self.assertIsNone(proto.lost)
        with open(r, "rb") as reader:
            self.assertLess(len(reader.read()), 1 << 20)

    def test_pty_slave_is_accepted(self):
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        transport, proto = self.write_pipe(open(slave, "wb", 0))
        transport.write(b"to the tty")
        got = b""

        async def read():
            nonlocal got
            while b"tty" not in got:
                await asyncio.sleep(0.01)
                got += os.read(master, 100)

        self.run_async(read())
        self.assertIn(b"to the tty", got)
        transport.close()
        self.run_async(proto.done.wait())


class TestPipeLifetime(PipeTestCase):
    def test_fds_are_closed_exactly_once(self):
        before = open_fds()
        for _ in range(20):
            r, w = os.pipe()
            rt, rp = self.read_pipe(open(r, "rb", 0))
            wt, wp = self.write_pipe(open(w, "wb", 0))
            wt.write(b"ping")
            wt.write_eof()
            self.run_async(rp.done.wait())
            self.run_async(wp.done.wait())
            self.assertEqual(bytes(rp.data), b"ping")
        self.run_async(asyncio.sleep(0.01))
        self.assertEqual(open_fds(), before)

    def test_unclosed_transport_warns_and_closes_its_pipe(self):
        r, w = os.pipe()
        self.addCleanup(os.close, w)
        pipe = open(r, "rb", 0)
        transport, proto = self.read_pipe(pipe)
        self.loop.close()
        self.assertIn("open", repr(transport))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del transport, proto
            gc.collect()
        messages = [str(w.message) for w in caught if w.category is ResourceWarning]
        self.assertTrue(any("unclosed transport" in m for m in messages), messages)
        self.assertTrue(pipe.closed)

    def test_cancelled_connect_closes_the_pipe_as_asyncio(self):
        before = open_fds()
        r, w = os.pipe()
        os.close(w)
        pipe = io.open(r, "rb", 0)

        async def cancel():
            task = self.loop.create_task(self.loop.connect_read_pipe(Record, pipe))
            await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.01)

        self.run_async(cancel())
        # asyncio closes the transport, and so the pipe object, when the
        # connect is cancelled; evloop's duplicate is closed too.
        self.assertTrue(pipe.closed)
        self.assertEqual(open_fds(), before)


if __name__ == "__main__":
    unittest.main()
