"""Tests of evloop's native asyncio streams (``evloop.streams``,
``evloop.use_native_streams``).

Each scenario runs twice on an evloop loop: with the native streams and
with asyncio's own (``asyncio.streams``' functions and classes), and the
two outcomes must be equal, so that parity is checked, not assumed; the
test then checks the outcome itself.
"""

import asyncio
import os
import random
import socket
import struct
import tempfile
import threading
import types
import unittest

import evloop
import evloop.streams
from loopcase import LoopTestCase


def _original(function):
    # asyncio's own function even if use_native_streams() wrapped it.
    return getattr(function, "_evloop_original", function)


NATIVE = types.SimpleNamespace(
    name="native",
    StreamReader=evloop.streams.StreamReader,
    StreamReaderProtocol=evloop.streams.StreamReaderProtocol,
    StreamWriter=evloop.streams.StreamWriter,
    open_connection=evloop.streams.open_connection,
    start_server=evloop.streams.start_server,
    open_unix_connection=evloop.streams.open_unix_connection,
    start_unix_server=evloop.streams.start_unix_server,
)
ASYNCIO = types.SimpleNamespace(
    name="asyncio",
    StreamReader=asyncio.StreamReader,
    StreamReaderProtocol=asyncio.StreamReaderProtocol,
    StreamWriter=asyncio.StreamWriter,
    open_connection=_original(asyncio.streams.open_connection),
    start_server=_original(asyncio.streams.start_server),
    open_unix_connection=_original(asyncio.streams.open_unix_connection),
    start_unix_server=_original(asyncio.streams.start_unix_server),
)


async def outcome(awaitable):
    """What awaiting gives, as comparable data: ("ok", value) or
    ("raise", class name, message, the error's attributes)."""
    try:
        return ("ok", await awaitable)
    except asyncio.IncompleteReadError as e:
        return ("raise", "IncompleteReadError", str(e), e.partial, e.expected)
    except asyncio.LimitOverrunError as e:
        return ("raise", "LimitOverrunError", str(e), e.consumed)
    except (Exception, asyncio.CancelledError) as e:
        return ("raise", type(e).__name__, str(e))


async def echo(reader, writer):
    """A streams echo handler (the benchmark's)."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


class StreamsTestCase(LoopTestCase):
    """Runs a scenario with both implementations and compares."""

    def both(self, scenario):
        """``scenario(impl)``'s result on the native streams, checked equal
        to asyncio's."""
        native = self.run_async(scenario(NATIVE))
        reference = self.run_async(scenario(ASYNCIO))
        self.assertEqual(native, reference)
        return native

    def reader(self, impl, limit=2**16):
        return impl.StreamReader(limit=limit, loop=self.loop)


class TestReader(StreamsTestCase):
    """The reader alone: fed by the test, no connection."""

    def test_read_sizes_and_eof(self):
        async def scenario(impl):
            r = self.reader(impl)
            r.feed_data(b"hello world")
            got = [await r.read(0), await r.read(5), await r.read(100)]
            r.feed_data(b"tail")
            r.feed_eof()
            got += [r.at_eof(), await r.read(), r.at_eof(), await r.read(), await r.read(3)]
            return got

        self.assertEqual(
            self.both(scenario),
            [b"", b"hello", b" world", False, b"tail", True, b"", b""],
        )

    def test_separator_split_across_chunks(self):
        async def scenario(impl):
            r = self.reader(impl)
            task = asyncio.ensure_future(r.readuntil(b"\r\n"))
            for chunk in (b"ab", b"c\r", b"\nrest"):
                await asyncio.sleep(0)
                r.feed_data(chunk)
            return await task, bytes(r._buffer)

        self.assertEqual(self.both(scenario), (b"abc\r\n", b"rest"))

    def test_readline_across_chunks_and_iteration(self):
        async def scenario(impl):
            r = self.reader(impl)

            async def feed():
                for chunk in (b"one\ntw", b"o\n", b"", b"three"):
                    await asyncio.sleep(0)
                    r.feed_data(chunk)
                r.feed_eof()

            feeder = asyncio.ensure_future(feed())
            lines = [line async for line in r]
            await feeder
            return lines

        self.assertEqual(self.both(scenario), [b"one\n", b"two\n", b"three"])

    def test_bytes_like_separators(self):
        async def scenario(impl):
            r = self.reader(impl)
            r.feed_data(b"a--b==c")
            return [
                await r.readuntil(bytearray(b"--")),
                await r.readuntil(memoryview(b"==")),
                bytes(r._buffer),
            ]

        self.assertEqual(self.both(scenario), [b"a--", b"b==", b"c"])

    def test_tuple_of_separators(self):
        # Python 3.13's readuntil((sep, ...)): the match that ends first
        # wins (accepted by the native reader on every version).
        async def scenario():
            r = self.reader(NATIVE, limit=8)
            r.feed_data(b"ab\r\ncd\nef")
            first = await r.readuntil((b"\n", b"\r\n"))
            second = await r.readuntil((b"\r\n", b"\n"))
            waiting = asyncio.ensure_future(r.readuntil((b"gh", b"f!")))
            await asyncio.sleep(0)
            r.feed_data(b"!")
            third = await waiting
            empty = await outcome(r.readuntil(()))
            r.feed_data(b"0123456789")
            over = await outcome(r.readuntil((b"x", b"yz")))
            return first, second, third, empty, over

        first, second, third, empty, over = self.run_async(scenario())
        self.assertEqual((first, second, third), (b"ab\r\n", b"cd\n", b"ef!"))
        self.assertEqual(empty, ("raise", "ValueError", "Separator should contain at least one element"))
        self.assertEqual(
            over,
            ("raise", "LimitOverrunError", "Separator is not found, and chunk exceed the limit", 9),
        )

    def test_limit_overrun_keeps_the_buffer(self):
        async def scenario(impl):
            r = self.reader(impl, limit=4)
            r.feed_data(b"abcdefgh\nxy")
            found = await outcome(r.readuntil(b"\n"))
            kept = bytes(r._buffer)
            line = await outcome(r.readline())
            return found, kept, line, bytes(r._buffer)

        found, kept, line, after = self.both(scenario)
        self.assertEqual(
            found,
            ("raise", "LimitOverrunError", "Separator is found, but chunk is longer than limit", 8),
        )
        self.assertEqual(kept, b"abcdefgh\nxy")
        self.assertEqual(line, ("raise", "ValueError", "Separator is found, but chunk is longer than limit"))
        # readline dropped the long line and its separator.
        self.assertEqual(after, b"xy")

    def test_limit_overrun_without_separator(self):
        async def scenario(impl):
            r = self.reader(impl, limit=4)
            r.feed_data(b"abcdefghij")
            until = await outcome(r.readuntil(b"!!"))
            kept = bytes(r._buffer)
            line = await outcome(r.readline())
            return until, kept, line, bytes(r._buffer)

        until, kept, line, after = self.both(scenario)
        self.assertEqual(
            until,
            ("raise", "LimitOverrunError", "Separator is not found, and chunk exceed the limit", 9),
        )
        self.assertEqual(kept, b"abcdefghij")
        self.assertEqual(line[:2], ("raise", "ValueError"))
        self.assertEqual(after, b"")

    def test_incomplete_reads(self):
        async def scenario(impl):
            r = self.reader(impl)
            r.feed_data(b"abc")
            r.feed_eof()
            exactly = await outcome(r.readexactly(10))
            r2 = self.reader(impl)
            r2.feed_data(b"no separator")
            r2.feed_eof()
            until = await outcome(r2.readuntil(b"\n"))
            r3 = self.reader(impl)
            r3.feed_data(b"partial line")
            r3.feed_eof()
            line = await outcome(r3.readline())
            return exactly, until, line, bytes(r._buffer)

        exactly, until, line, left = self.both(scenario)
        self.assertEqual(exactly[:2], ("raise", "IncompleteReadError"))
        self.assertEqual(exactly[3:], (b"abc", 10))
        self.assertEqual(until[3:], (b"no separator", None))
        self.assertEqual(line, ("ok", b"partial line"))
        self.assertEqual(left, b"")

    def test_bad_arguments(self):
        async def scenario(impl):
            r = self.reader(impl)
            r.feed_data(b"data")
            return [
                await outcome(r.readexactly(-1)),
                await outcome(r.readuntil(b"")),
                await outcome(r.readexactly(0)),
                bytes(r._buffer),
            ]

        got = self.both(scenario)
        self.assertEqual(got[0], ("raise", "ValueError", "readexactly size can not be less than zero"))
        self.assertEqual(got[1], ("raise", "ValueError", "Separator should be at least one-byte string"))
        self.assertEqual(got[2:], [("ok", b""), b"data"])
        for impl in (NATIVE, ASYNCIO):
            with self.assertRaisesRegex(ValueError, "Limit cannot be <= 0"):
                impl.StreamReader(limit=0, loop=self.loop)

    def test_readuntil_refuses_a_non_bytes_separator_when_awaited(self):
        async def scenario(impl):
            r = self.reader(impl)
            r.feed_data(b"a\nb")
            got = []
            for separator in (None, 5, (b"\n", None)):
                read = r.readuntil(separator)  # a coroutine: nothing raised yet
                got.append((await outcome(read))[:2])
            return got, bytes(r._buffer)

        got, buffer = self.both(scenario)
        self.assertEqual(got, [("raise", "TypeError")] * 3)
        self.assertEqual(buffer, b"a\nb")

    def test_exception_raised_by_the_next_read(self):
        async def scenario(impl):
            r = self.reader(impl)
            waiting = asyncio.ensure_future(r.read(5))
            await asyncio.sleep(0)
            r.set_exception(ValueError("boom"))
            first = await outcome(waiting)
            r.feed_data(b"more")
            return first, await outcome(r.read(5)), await outcome(r.readline()), repr(r.exception())

        self.assertEqual(
            self.both(scenario),
            (("raise", "ValueError", "boom"),) * 3 + ("ValueError('boom')",),
        )

    def test_cancelled_read_leaves_the_buffer(self):
        async def scenario(impl):
            r = self.reader(impl)
            r.feed_data(b"ab")
            task = asyncio.ensure_future(r.readexactly(4))
            await asyncio.sleep(0)
            task.cancel()
            cancelled = await outcome(task)
            waiter_gone = r._waiter is None
            r.feed_data(b"cd")
            return cancelled, waiter_gone, await r.readexactly(4)

        self.assertEqual(
            self.both(scenario), (("raise", "CancelledError", ""), True, b"abcd")
        )

    def test_wait_for_timeout_then_read(self):
        async def scenario(impl):
            r = self.reader(impl)
            timed_out = await outcome(asyncio.wait_for(r.readline(), 0.01))
            r.feed_data(b"line\n")
            return timed_out[:2], await r.readline()

        self.assertEqual(self.both(scenario), (("raise", "TimeoutError"), b"line\n"))

    def test_two_waiting_reads(self):
        async def scenario(impl):
            r = self.reader(impl)
            first = asyncio.ensure_future(r.read(10))
            await asyncio.sleep(0)
            second = await outcome(r.readline())
            third = await outcome(r.readexactly(2))
            r.feed_data(b"x\n")
            return second, third, await first

        second, third, first = self.both(scenario)
        self.assertEqual(
            second,
            ("raise", "RuntimeError",
             "readuntil() called while another coroutine is already waiting for incoming data"),
        )
        self.assertEqual(third[2].split("(")[0], "readexactly")
        self.assertEqual(first, b"x\n")

    def test_random_scripts_match_asyncio(self):
        # Random chunks, separators, limits and reads started while others
        # wait: every outcome, and what is left, as asyncio's reader gives.
        def script(rng):
            ops = []
            for _ in range(30):
                roll = rng.random()
                if roll < 0.4:
                    chunk = bytes(rng.choice(b"ab\n") for _ in range(rng.randint(0, 9)))
                    ops.append(("feed", chunk))
                elif roll < 0.5:
                    ops.append(("sleep",))
                else:
                    ops.append(rng.choice([
                        ("read", rng.randint(-1, 8)),
                        ("readline",),
                        ("readuntil", rng.choice([b"\n", b"ab", b"b\nb"])),
                        ("readexactly", rng.randint(0, 10)),
                    ]))
            return ops

        async def scenario(impl, ops, limit):
            r = self.reader(impl, limit=limit)
            reads = []
            for op in ops:
                if op[0] == "feed":
                    r.feed_data(op[1])
                elif op[0] != "sleep":
                    method = getattr(r, op[0])
                    reads.append(asyncio.ensure_future(outcome(method(*op[1:]))))
                await asyncio.sleep(0)
            r.feed_eof()
            return [await read for read in reads], bytes(r._buffer), r.at_eof()

        for seed in range(60):
            rng = random.Random(seed)
            ops, limit = script(rng), rng.randint(3, 12)
            native = self.run_async(scenario(NATIVE, ops, limit))
            reference = self.run_async(scenario(ASYNCIO, ops, limit))
            self.assertEqual(native, reference, f"seed {seed}")

    def test_on_asyncio_loop_and_in_debug_mode(self):
        # The wake-up shortcut is for evloop's loop outside debug mode: the
        # reader works the same on asyncio's loop and in debug mode.
        async def scenario():
            r = NATIVE.StreamReader(loop=asyncio.get_running_loop())
            line = asyncio.ensure_future(r.readline())
            await asyncio.sleep(0)
            r.feed_data(b"one\ntwo")
            r.feed_eof()
            return await line, await r.read()

        plain = asyncio.SelectorEventLoop()
        try:
            self.assertEqual(plain.run_until_complete(scenario()), (b"one\n", b"two"))
        finally:
            plain.close()
        self.loop.set_debug(True)
        self.assertEqual(self.run_async(scenario()), (b"one\n", b"two"))

    def test_failing_done_callback_of_a_read_is_reported(self):
        # A done callback of the future a read waits on that raises reaches
        # the exception handler with asyncio's message and exception (the
        # native wake-up runs it without a Handle: no "handle" key).
        def fail(future):
            raise ZeroDivisionError("callback")

        async def scenario(impl):
            r = self.reader(impl)
            read = r.read(5)
            future = read.send(None)
            future.add_done_callback(fail)
            r.feed_data(b"data")
            await asyncio.sleep(0)
            with self.assertRaises(StopIteration) as done:
                read.send(None)
            handled = [
                (sorted(set(c) - {"handle"}), c["message"], repr(c["exception"]))
                for c in self.handled
            ]
            self.handled.clear()
            return done.exception.value, handled

        got, handled = self.both(scenario)
        self.assertEqual(got, b"data")
        [(keys, message, exception)] = handled
        self.assertEqual(keys, ["exception", "message"])
        self.assertTrue(message.startswith("Exception in callback "), message)
        self.assertIn("fail(<Future finished result=None>)", message)
        self.assertEqual(exception, "ZeroDivisionError('callback')")

    def test_exception_handler_interrupt_from_a_read_callback_leaves_the_loop(self):
        # As for a handle: KeyboardInterrupt raised by the exception handler
        # for a failing done callback ends run_until_complete.
        def fail(future):
            raise ZeroDivisionError("callback")

        def interrupt(loop, context):
            raise KeyboardInterrupt

        async def scenario(impl):
            r = self.reader(impl)
            read = r.read(5)
            read.send(None).add_done_callback(fail)
            r.feed_data(b"data")
            await asyncio.sleep(0.1)
            read.close()
            return "not interrupted"

        self.loop.set_exception_handler(interrupt)
        for impl in (NATIVE, ASYNCIO):
            with self.subTest(impl.name), self.assertRaises(KeyboardInterrupt):
                self.loop.run_until_complete(scenario(impl))

    def test_driven_by_the_pure_python_task(self):
        # asyncio's Python Task (the C one's reference) drives the reads as
        # coroutines too: waiting, waking, cancelling.
        async def scenario():
            loop = asyncio.get_running_loop()
            r = NATIVE.StreamReader(loop=loop)
            first = asyncio.tasks._PyTask(r.readexactly(3), loop=loop)
            await asyncio.sleep(0)
            r.feed_data(b"abcd")
            second = asyncio.tasks._PyTask(r.read(10), loop=loop)
            await asyncio.sleep(0)
            third = asyncio.tasks._PyTask(r.readline(), loop=loop)
            await asyncio.sleep(0)
            third.cancel()
            return await first, await second, await outcome(third), r._waiter

        self.assertEqual(
            self.run_async(scenario()), (b"abc", b"d", ("raise", "CancelledError", ""), None)
        )

    def test_awaitables_are_coroutines_to_asyncio(self):
        r = self.reader(NATIVE)
        read = r.read()
        self.assertTrue(asyncio.iscoroutine(read))
        read.close()
        self.assertIsInstance(r, asyncio.StreamReader)

        async def main():
            r.feed_data(b"data")
            task = asyncio.create_task(r.read(2))
            return await task, await asyncio.gather(r.read(1), r.read(1))

        self.assertEqual(self.run_async(main()), (b"da", [b"t", b"a"]))


class TestConnections(StreamsTestCase):
    """Streams over TCP and unix connections."""

    async def tcp_echo(self, impl, sizes):
        server = await impl.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await impl.open_connection("127.0.0.1", port)
        got = []
        for size in sizes:
            payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
            writer.write(payload)
            await writer.drain()
            got.append(await reader.readexactly(size) == payload)
        writer.write_eof()
        got.append(await reader.read())
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got

    def test_echo_round_trips(self):
        sizes = [1, 100, 1024, 65536, 200_000, 1 << 20]
        got = self.both(lambda impl: self.tcp_echo(impl, sizes))
        self.assertEqual(got, [True] * len(sizes) + [b""])

    def test_unix_echo(self):
        async def scenario(impl):
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "s")
                server = await impl.start_unix_server(echo, path)
                reader, writer = await impl.open_unix_connection(path)
                writer.write(b"line one\nline two\n")
                lines = [await reader.readline(), await reader.readuntil(b"two\n")]
                writer.close()
                await writer.wait_closed()
                server.close()
                await server.wait_closed()
                return lines

        self.assertEqual(self.both(scenario), [b"line one\n", b"line two\n"])

    def test_plain_function_callback_and_eof(self):
        async def scenario(impl):
            done = asyncio.get_running_loop().create_future()

            def connected(reader, writer):
                # A plain function: the test makes its own task.
                async def serve():
                    done.set_result((await reader.read(), reader.at_eof()))
                    writer.close()

                asyncio.ensure_future(serve())

            server = await impl.start_server(connected, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await impl.open_connection("127.0.0.1", port)
            writer.write(b"all of it")
            writer.close()
            await writer.wait_closed()
            got = await done
            server.close()
            await server.wait_closed()
            return got, writer.is_closing()

        self.assertEqual(self.both(scenario), ((b"all of it", True), True))

    def test_connection_reset_reaches_read_and_drain(self):
        async def scenario(impl):
            listener = socket.create_server(("127.0.0.1", 0))
            port = listener.getsockname()[1]

            def reset():
                conn, _ = listener.accept()
                conn.recv(1)
                # SO_LINGER 0: close() sends a RST.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

            thread = threading.Thread(target=reset)
            thread.start()
            try:
                reader, writer = await impl.open_connection("127.0.0.1", port)
                writer.write(b"x")
                read = await outcome(reader.read())
                writer.write(b"more")
                drain = await outcome(writer.drain())
                writer.close()
            finally:
                await asyncio.get_running_loop().run_in_executor(None, thread.join)
                listener.close()
            return read[:2], drain[:2]

        got = self.both(scenario)
        self.assertEqual(got, (("raise", "ConnectionResetError"),) * 2)

    def test_drain_after_close_raises_connection_reset(self):
        async def scenario(impl):
            server = await impl.start_server(echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await impl.open_connection("127.0.0.1", port)
            writer.close()
            writer.write(b"late")
            got = await outcome(writer.drain())
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return got

        self.assertEqual(self.both(scenario), ("raise", "ConnectionResetError", "Connection lost"))

    def test_slow_reader_pauses_the_transport(self):
        async def scenario(impl):
            accepted = asyncio.get_running_loop().create_future()

            async def hold(reader, writer):
                accepted.set_result((reader, writer))

            server = await impl.start_server(hold, "127.0.0.1", 0, limit=1024)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await impl.open_connection("127.0.0.1", port)
            s_reader, s_writer = await accepted
            writer.write(b"z" * 65536)
            await writer.drain()
            for _ in range(200):
                if not s_writer.transport.is_reading():
                    break
                await asyncio.sleep(0.005)
            paused = not s_writer.transport.is_reading()
            data = await s_reader.readexactly(65536)
            resumed = s_writer.transport.is_reading()
            writer.close()
            s_writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return paused, resumed, len(data)

        self.assertEqual(self.both(scenario), (True, True, 65536))

    def test_drain_waits_while_writing_is_paused(self):
        async def scenario(impl):
            accepted = asyncio.get_running_loop().create_future()

            async def hold(reader, writer):
                accepted.set_result((reader, writer))

            server = await impl.start_server(hold, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await impl.open_connection("127.0.0.1", port)
            s_reader, s_writer = await accepted
            # What the transport does when its buffer passes the high-water
            # mark (how soon depends on the kernel's buffers: not here).
            writer.transport.get_protocol().pause_writing()
            drains = [asyncio.ensure_future(writer.drain()) for _ in range(3)]
            await asyncio.sleep(0.01)
            waited = not any(d.done() for d in drains)
            writer.transport.get_protocol().resume_writing()
            await asyncio.gather(*drains)
            writer.close()
            s_writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return waited

        self.assertTrue(self.both(scenario))

    def test_handler_exception_is_reported_and_closes(self):
        async def scenario(impl):
            async def fail(reader, writer):
                raise ZeroDivisionError("handler")

            server = await impl.start_server(fail, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await impl.open_connection("127.0.0.1", port)
            got = await reader.read()
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            messages = [(c["message"], type(c["exception"]).__name__) for c in self.handled]
            self.handled.clear()
            return got, messages

        self.assertEqual(
            self.both(scenario),
            (b"", [("Unhandled exception in client_connected_cb", "ZeroDivisionError")]),
        )

    def test_writer_api(self):
        async def scenario(impl):
            server = await impl.start_server(echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await impl.open_connection("127.0.0.1", port)
            writer.writelines([b"a", b"b", b"c\n"])
            line = await reader.readline()
            info = writer.get_extra_info("peername")[1] == port
            api = (writer.can_write_eof(), writer.is_closing(), writer.transport is writer._transport)
            shown = repr(writer).startswith("<StreamWriter transport=")
            writer.close()
            closing = writer.is_closing()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return line, info, api, shown, closing

        self.assertEqual(self.both(scenario), (b"abc\n", True, (True, False, True), True, True))


    def test_overridden_data_received_and_replaced_write_are_called(self):
        # evloop feeds its own protocol and writes to its own transport
        # without a Python call; a subclass's data_received, an instance's
        # and a transport's replaced write must still be the ones called.
        async def scenario(impl):
            seen = []

            class Recording(impl.StreamReaderProtocol):
                def data_received(self, data):
                    seen.append(("class", data))
                    super().data_received(data)

            server = await impl.start_server(echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            got = []
            for patch_instance in (False, True):
                reader = impl.StreamReader(loop=self.loop)
                protocol = Recording(reader, loop=self.loop)
                if patch_instance:
                    def on_instance(data, protocol=protocol):
                        seen.append(("instance", data))
                        impl.StreamReaderProtocol.data_received(protocol, data)

                    protocol.data_received = on_instance
                transport, _ = await self.loop.create_connection(
                    lambda: protocol, "127.0.0.1", port
                )
                write = transport.write

                def recording_write(data, write=write):
                    seen.append(("write", bytes(data)))
                    write(data)

                transport.write = recording_write
                writer = impl.StreamWriter(transport, protocol, reader, self.loop)
                writer.write(b"ping %d\n" % patch_instance)
                got.append(await reader.readline())
                writer.close()
                await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return got, seen

        got, seen = self.both(scenario)
        self.assertEqual(got, [b"ping 0\n", b"ping 1\n"])
        self.assertEqual(
            seen,
            [
                ("write", b"ping 0\n"),
                ("class", b"ping 0\n"),
                ("write", b"ping 1\n"),
                ("instance", b"ping 1\n"),
            ],
        )

    def test_read_all_through_a_small_limit(self):
        async def scenario(impl):
            received = asyncio.get_running_loop().create_future()

            async def slurp(reader, writer):
                received.set_result(await reader.read())
                writer.close()

            server = await impl.start_server(slurp, "127.0.0.1", 0, limit=16)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await impl.open_connection("127.0.0.1", port)
            payload = bytes(range(256)) * 400
            writer.write(payload)
            writer.write_eof()
            got = await received
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return got == payload

        self.assertTrue(self.both(scenario))

    def test_drain_raises_the_reader_exception(self):
        async def scenario(impl):
            server = await impl.start_server(echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await impl.open_connection("127.0.0.1", port)
            ready = await outcome(asyncio.ensure_future(writer.drain()))
            reader.set_exception(KeyError("gone"))
            raised = await outcome(writer.drain())
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return ready, raised

        self.assertEqual(self.both(scenario), (("ok", None), ("raise", "KeyError", "'gone'")))

    def test_closed_streams_are_collected(self):
        import gc
        import weakref

        async def scenario(impl):
            server = await impl.start_server(echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await impl.open_connection("127.0.0.1", port)
            writer.write(b"ping\n")
            await reader.readline()
            refs = [weakref.ref(o) for o in (reader, writer, writer.transport.get_protocol())]
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            del reader, writer
            return refs

        for impl in (NATIVE, ASYNCIO):
            refs = self.run_async(scenario(impl))
            gc.collect()
            self.assertEqual([r() for r in refs], [None] * 3, impl.name)


class TestUseNativeStreams(LoopTestCase):
    """evloop.use_native_streams(): asyncio's functions pick by loop."""

    NAMES = ("open_connection", "start_server", "open_unix_connection", "start_unix_server")

    def setUp(self):
        super().setUp()
        self.saved = {
            (module, name): getattr(module, name)
            for module in (asyncio, asyncio.streams)
            for name in self.NAMES
        }

    def tearDown(self):
        for (module, name), value in self.saved.items():
            setattr(module, name, value)
        super().tearDown()

    async def kinds(self):
        served = asyncio.get_running_loop().create_future()

        async def serve(reader, writer):
            await reader.read()
            writer.close()
            await writer.wait_closed()
            served.set_result(None)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
        await served
        server.close()
        await server.wait_closed()
        return type(reader), type(writer)

    def test_native_on_evloop_and_asyncio_elsewhere(self):
        evloop.use_native_streams()
        wrapper = asyncio.open_connection
        evloop.use_native_streams()
        self.assertIs(asyncio.open_connection, wrapper)
        self.assertIs(asyncio.streams.start_unix_server, asyncio.start_unix_server)
        kinds = self.run_async(self.kinds())
        self.assertEqual(kinds, (evloop.streams.StreamReader, evloop.streams.StreamWriter))
        plain = asyncio.SelectorEventLoop()
        try:
            kinds = plain.run_until_complete(self.kinds())
        finally:
            plain.close()
        self.assertEqual(kinds, (asyncio.StreamReader, asyncio.StreamWriter))


if __name__ == "__main__":
    unittest.main()
