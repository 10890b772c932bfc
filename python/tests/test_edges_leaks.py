"""The binding's edges (issue 13): leaks over many connections, datagram
endpoints and handles.

Each test runs 10,000 of something through one evloop loop, in rounds:
a warm-up, then two equal halves. After each round it collects garbage and
reads tracemalloc's traced memory; the second half must not grow it more
than a constant (a leak of even one small object per connection would
grow it in proportion to the count). tracemalloc sees Python's
allocations only, so the process's resident size is bounded the same way,
more loosely, for what Rust allocates. Afterwards no transport, protocol,
handle or future of the run is alive and the process has the fds it had.
"""

import asyncio
import gc
import os
import socket
import tempfile
import tracemalloc
import unittest

import evloop

COUNT = 10_000
WARM_UP = 2_000
BATCH = 100  # within the servers' listen backlog (100): no SYN retries
# What the second half may add to traced memory: a constant, not a
# per-item cost (4,000 items of one small object would be well above).
GROWTH_LIMIT = 64 * 1024
# What the second half may add to the resident size: under 1 KiB an item
# (allocator and tracemalloc noise is far less once warmed up).
RSS_GROWTH_LIMIT = 4 * 1024 * 1024


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def resident():
    """The process's resident size in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def count_instances(classes):
    """How many objects of each class the GC knows of."""
    counts = {cls.__name__: 0 for cls in classes}
    for obj in gc.get_objects():
        for cls in classes:
            if isinstance(obj, cls):
                counts[cls.__name__] += 1
    return counts


class Echo(asyncio.Protocol):
    """Server side: writes back what it reads; closes on the client's EOF."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Client(asyncio.Protocol):
    """Client side: sends a ping, resolves `echoed` on its echo and `lost`
    on connection_lost."""

    def __init__(self, loop):
        self.echoed = loop.create_future()
        self.lost = loop.create_future()
        self.data = b""

    def connection_made(self, transport):
        transport.write(b"ping")

    def data_received(self, data):
        self.data += data
        if self.data == b"ping":
            self.echoed.set_result(None)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


class Bounce(asyncio.DatagramProtocol):
    """A datagram endpoint that resolves `got` on its first datagram."""

    def __init__(self, loop):
        self.got = loop.create_future()
        self.lost = loop.create_future()

    def datagram_received(self, data, addr):
        if not self.got.done():
            self.got.set_result(data)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


class Thing:
    """What the scheduled callbacks hold."""


class LeakTestCase(unittest.TestCase):
    """Runs rounds of `one()` under tracemalloc and checks what is left."""

    # What must not outlive the run (counted against what other tests left).
    CLASSES = ()

    def setUp(self):
        gc.collect()
        self.fds = fd_count()
        self.before = count_instances(self.CLASSES)
        self.loop = evloop.new_event_loop()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)

    def measure(self):
        gc.collect()
        return tracemalloc.get_traced_memory()[0], resident()

    def rounds(self, run_round):
        """run_round(n) for the warm-up and each half; returns the traced
        memory and resident size after each."""
        sizes = []
        for n in (WARM_UP, (COUNT - WARM_UP) // 2, (COUNT - WARM_UP) // 2):
            self.loop.run_until_complete(run_round(n))
            sizes.append(self.measure())
        return sizes

    def assert_bounded(self, sizes):
        _, (traced_1, rss_1), (traced_2, rss_2) = sizes
        self.assertLess(traced_2 - traced_1, GROWTH_LIMIT, sizes)
        self.assertLess(rss_2 - rss_1, RSS_GROWTH_LIMIT, sizes)

    def assert_nothing_left(self):
        self.loop.close()
        gc.collect()
        self.assertEqual(count_instances(self.CLASSES), self.before)
        self.assertEqual(fd_count(), self.fds)

    async def batches(self, n, one):
        for start in range(0, n, BATCH):
            await asyncio.gather(*(one() for _ in range(min(BATCH, n - start))))


class TestConnectionLeaks(LeakTestCase):
    """10,000 connections through an evloop server and client."""

    CLASSES = (
        evloop.StreamTransport,
        Client,
        Echo,
        evloop.Handle,
        evloop.TimerHandle,
        asyncio.Future,
    )

    def churn(self, serve, connect):
        server = self.loop.run_until_complete(serve())

        async def one():
            transport, protocol = await connect(server)
            await protocol.echoed
            transport.close()
            self.assertIsNone(await protocol.lost)

        sizes = self.rounds(lambda n: self.batches(n, one))
        server.close()
        self.loop.run_until_complete(server.wait_closed())
        del server
        self.assert_bounded(sizes)
        self.assert_nothing_left()

    def test_tcp(self):
        def serve():
            return self.loop.create_server(Echo, "127.0.0.1", 0)

        def connect(server):
            port = server.sockets[0].getsockname()[1]
            return self.loop.create_connection(lambda: Client(self.loop), "127.0.0.1", port)

        self.churn(serve, connect)

    def test_unix(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "echo.sock")

        def serve():
            return self.loop.create_unix_server(Echo, path)

        def connect(server):
            return self.loop.create_unix_connection(lambda: Client(self.loop), path)

        self.churn(serve, connect)


class TestDatagramLeaks(LeakTestCase):
    """10,000 datagram endpoints, each sending itself one datagram."""

    CLASSES = (evloop.DatagramTransport, Bounce, asyncio.Future)

    def test_udp_endpoints(self):
        async def one():
            transport, protocol = await self.loop.create_datagram_endpoint(
                lambda: Bounce(self.loop), local_addr=("127.0.0.1", 0)
            )
            transport.sendto(b"ping", transport.get_extra_info("sockname"))
            self.assertEqual(await protocol.got, b"ping")
            transport.close()
            self.assertIsNone(await protocol.lost)

        sizes = self.rounds(lambda n: self.batches(n, one))
        self.assert_bounded(sizes)
        self.assert_nothing_left()


class TestHandleLeaks(LeakTestCase):
    """10,000 call_soon and 10,000 call_later handles (every other timer
    cancelled), each holding a Thing."""

    CLASSES = (Thing, evloop.Handle, evloop.TimerHandle)

    def test_call_soon_and_call_later(self):
        async def run_round(n):
            done = self.loop.create_future()
            ran = []

            def callback(thing):
                ran.append(thing)

            for i in range(n):
                self.loop.call_soon(callback, Thing())
                timer = self.loop.call_later(0.001 * (i % 10), callback, Thing())
                if i % 2:
                    timer.cancel()
            self.loop.call_later(0.05, done.set_result, None)
            await done
            self.assertEqual(len(ran), n + n // 2 + n % 2)
            ran.clear()

        sizes = self.rounds(run_round)
        self.assert_bounded(sizes)
        self.assert_nothing_left()


if __name__ == "__main__":
    unittest.main()
