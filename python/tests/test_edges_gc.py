"""The binding's edges (issue 13): reference cycles through Rust-held
Python objects, and loops garbage-collected while callbacks are pending
(closed or not, the last reference dropped on the loop's thread or
another)."""

import asyncio
import contextvars
import gc
import os
import socket
import sys
import threading
import unittest
import weakref

import evloop


class Thing:
    """An object to hold weak references to."""


def fd_count():
    return len(os.listdir("/proc/self/fd"))


class SelfHolding(asyncio.Protocol):
    """A protocol holding its transport (the transport holds it too)."""

    def __init__(self, lost):
        self.lost = lost

    def connection_made(self, transport):
        self.transport = transport
        # A cycle of our own on top: the protocol refers to itself.
        self.me = self

    def connection_lost(self, exc):
        self.lost.set_result(None)


class SelfHoldingServer(asyncio.Protocol):
    """Server side: holds its transport; `made` lists them."""

    made = []

    def connection_made(self, transport):
        self.transport = transport
        self.made.append(self)


class TestCycles(unittest.TestCase):
    """Once closed, nothing evloop holds keeps a cycle alive."""

    def setUp(self):
        gc.collect()
        self.fds = fd_count()

    def tearDown(self):
        gc.collect()
        self.assertEqual(fd_count(), self.fds)

    def test_stream_protocol_and_transport_are_collected_once_closed(self):
        loop = evloop.new_event_loop()
        refs = []

        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            lost = loop.create_future()
            transport, protocol = await loop.create_connection(
                lambda: SelfHolding(lost), "127.0.0.1", port
            )
            refs.extend(
                [weakref.ref(transport), weakref.ref(protocol), weakref.ref(transport._core)]
                if hasattr(type(transport._core), "__weakref__")
                else [weakref.ref(transport), weakref.ref(protocol)]
            )
            self.assertIs(transport.get_protocol(), protocol)
            transport.get_extra_info("socket")  # a duplicate fd, closed with it
            transport.close()
            await lost
            server.close()
            await server.wait_closed()

        loop.run_until_complete(main())
        gc.collect()
        self.assertEqual([r() for r in refs], [None] * len(refs))
        loop.close()

    def test_open_connection_is_collected_once_the_loop_closes(self):
        # An open connection keeps its protocol (evloop holds it, as
        # asyncio's selector does); closing the loop's server and
        # transports lets go of everything.
        loop = evloop.new_event_loop()
        refs = []

        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            lost = loop.create_future()
            transport, protocol = await loop.create_connection(
                lambda: SelfHolding(lost), "127.0.0.1", port
            )
            refs.extend([weakref.ref(transport), weakref.ref(protocol)])
            gc.collect()
            self.assertIsNotNone(refs[1]())  # still connected: alive
            transport.abort()
            await lost
            server.close()
            await server.wait_closed()

        loop.run_until_complete(main())
        loop.close()
        gc.collect()
        self.assertEqual([r() for r in refs], [None, None])

    def test_connections_open_when_the_loop_closes_are_collected(self):
        # Closing the loop closes their fds (evloop releases them) without
        # connection_lost; the protocol <-> transport cycles, stream and
        # datagram, are then Python's GC's to collect.
        loop = evloop.new_event_loop()
        refs = []

        async def main():
            server = await loop.create_server(SelfHoldingServer, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            never = loop.create_future()
            transport, protocol = await loop.create_connection(
                lambda: SelfHolding(never), "127.0.0.1", port
            )
            endpoint, datagrams = await loop.create_datagram_endpoint(
                lambda: SelfHolding(never), local_addr=("127.0.0.1", 0)
            )
            await asyncio.sleep(0.01)
            refs.extend(weakref.ref(o) for o in (transport, protocol, endpoint, datagrams))
            refs.extend(weakref.ref(o) for o in SelfHoldingServer.made)
            SelfHoldingServer.made.clear()
            server.close()

        loop.run_until_complete(main())
        loop.close()
        del loop
        gc.collect()
        self.assertEqual(len(refs), 5)
        self.assertEqual([r() for r in refs], [None] * 5)

    def test_datagram_protocol_and_transport_are_collected_once_closed(self):
        loop = evloop.new_event_loop()
        refs = []

        async def main():
            lost = loop.create_future()
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: SelfHolding(lost), local_addr=("127.0.0.1", 0)
            )
            refs.extend([weakref.ref(transport), weakref.ref(protocol)])
            transport.close()
            await lost

        loop.run_until_complete(main())
        gc.collect()
        self.assertEqual([r() for r in refs], [None, None])
        loop.close()

    def test_closed_loop_is_collected(self):
        loop = evloop.new_event_loop()
        ref = weakref.ref(loop)
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        del loop
        gc.collect()
        self.assertIsNone(ref())

    def test_loop_that_served_connections_is_collected(self):
        loop = evloop.new_event_loop()
        ref = weakref.ref(loop)

        async def main():
            server = await asyncio.start_server(_echo_line, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping\n")
            self.assertEqual(await reader.readline(), b"ping\n")
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

        loop.run_until_complete(main())
        loop.close()
        del loop
        gc.collect()
        self.assertIsNone(ref())

    def test_handle_cycles_through_rust_are_collected_after_running(self):
        # The callback holds its own handle; evloop's queue holds the
        # handle until it runs, then nothing but the cycle does.
        loop = evloop.new_event_loop()
        thing = Thing()
        thing.handle = loop.call_soon(lambda t=thing: None)
        thing.timer = loop.call_later(0, lambda t=thing: None)
        ref = weakref.ref(thing)
        del thing
        loop.run_until_complete(asyncio.sleep(0.01))
        gc.collect()
        self.assertIsNone(ref())
        loop.close()

    def test_handle_cycles_are_collected_when_the_loop_drops_them_unrun(self):
        # Pending handles are hidden from the GC while evloop holds them;
        # dropped by close() they are seen again, cycles included.
        loop = evloop.new_event_loop()
        thing = Thing()
        thing.handle = loop.call_soon(lambda t=thing: None)
        thing.timer = loop.call_later(3600, lambda t=thing: None)
        thing.posted = loop.call_soon_threadsafe(lambda t=thing: None)
        ref = weakref.ref(thing)
        del thing
        gc.collect()
        self.assertIsNotNone(ref())  # pending: evloop holds it
        loop.close()
        gc.collect()
        self.assertIsNone(ref())

    def test_cycles_through_a_handles_context_are_collected_after_running(self):
        # The context a handle copied is hidden from the GC with it.
        loop = evloop.new_event_loop()
        var = contextvars.ContextVar("var")
        thing = Thing()
        context = loop.call_soon(lambda: None).get_context()
        context.run(var.set, thing)
        thing.context = context
        ref = weakref.ref(thing)
        del thing, context
        loop.run_until_complete(asyncio.sleep(0.01))
        gc.collect()
        self.assertIsNone(ref())
        loop.close()

    def test_handle_cycles_posted_from_another_thread_are_collected(self):
        loop = evloop.new_event_loop()
        ref = None

        def post():
            nonlocal ref
            thing = Thing()
            thing.handle = loop.call_soon_threadsafe(lambda t=thing: None)
            ref = weakref.ref(thing)

        poster = threading.Thread(target=post)
        poster.start()
        poster.join()
        loop.run_until_complete(asyncio.sleep(0.01))
        gc.collect()
        self.assertIsNone(ref())
        loop.close()

    def test_reader_cycle_is_collected_once_removed(self):
        loop = evloop.new_event_loop()
        rsock, wsock = socket.socketpair()
        thing = Thing()
        thing.handle = loop.add_reader(rsock.fileno(), lambda t=thing: None)
        ref = weakref.ref(thing)
        del thing
        gc.collect()
        self.assertIsNotNone(ref())  # watched: the reactor holds it
        self.assertTrue(loop.remove_reader(rsock.fileno()))
        gc.collect()
        self.assertIsNone(ref())
        loop.close()
        rsock.close()
        wsock.close()

    def test_server_and_its_factory_are_collected_once_closed(self):
        # The factory refers to the server (a cycle through evloop's
        # server, which holds the factory).
        loop = evloop.new_event_loop()
        refs = []

        async def main():
            holder = Thing()
            server = await loop.create_server(
                lambda h=holder: asyncio.Protocol(), "127.0.0.1", 0
            )
            holder.server = server
            port = server.sockets[0].getsockname()[1]
            transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            refs.extend([weakref.ref(server), weakref.ref(holder)])
            transport.close()
            server.close()
            await server.wait_closed()

        loop.run_until_complete(main())
        loop.run_until_complete(asyncio.sleep(0.01))
        gc.collect()
        self.assertEqual([r() for r in refs], [None, None])
        loop.close()

    def test_failed_and_cancelled_connections_leave_nothing(self):
        loop = evloop.new_event_loop()
        made = []

        def factory():
            protocol = asyncio.Protocol()
            made.append(weakref.ref(protocol))
            return protocol

        async def main():
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            for _ in range(20):
                with self.assertRaises(ConnectionRefusedError):
                    await loop.create_connection(factory, "127.0.0.1", port)
            # Cancelled before connecting, and while resolving a name.
            for host in ("127.0.0.1", "localhost"):
                task = loop.create_task(loop.create_connection(factory, host, port))
                await asyncio.sleep(0)
                task.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await task
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                with self.assertRaises(OSError):
                    await loop.create_server(factory, "127.0.0.1", taken.getsockname()[1])

        loop.run_until_complete(main())
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()
        gc.collect()
        self.assertEqual([r() for r in made], [None] * len(made))


async def _echo_line(reader, writer):
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


def pending_loop(rsock):
    """A loop with call_soon, call_later and add_reader callbacks pending,
    each holding a Thing that also holds the loop (a cycle through Rust);
    returns weak references to the loop and the things."""
    loop = evloop.new_event_loop()
    things = [Thing() for _ in range(3)]
    for thing in things:
        thing.loop = loop
    loop.call_soon(lambda t=things[0]: None)
    loop.call_later(3600, lambda t=things[1]: None)
    loop.add_reader(rsock.fileno(), lambda t=things[2]: None)
    return loop, [weakref.ref(loop)] + [weakref.ref(t) for t in things]


class Unraisable:
    """Collects what sys.unraisablehook gets while in use."""

    def __enter__(self):
        self.seen = []
        self.old = sys.unraisablehook
        sys.unraisablehook = self.seen.append
        return self

    def __exit__(self, *exc):
        sys.unraisablehook = self.old


class TestLoopGarbage(unittest.TestCase):
    """A loop garbage-collected while callbacks are pending."""

    def setUp(self):
        self.rsock, self.wsock = socket.socketpair()
        self.addCleanup(self.rsock.close)
        self.addCleanup(self.wsock.close)
        gc.collect()
        self.fds = fd_count()

    def test_closed_loop_releases_its_callbacks(self):
        loop, refs = pending_loop(self.rsock)
        loop.close()
        del loop
        gc.collect()
        self.assertEqual([r() for r in refs], [None] * 4)
        self.assertEqual(fd_count(), self.fds)

    def test_unclosed_loop_with_pending_callbacks_stays_alive(self):
        # The documented behaviour: a pending callback holds its handle and
        # the handle its loop from inside evloop's queue, where Python's
        # GC cannot see; the loop lives until it is closed.
        loop, refs = pending_loop(self.rsock)
        del loop
        gc.collect()
        self.assertTrue(all(r() is not None for r in refs))
        loop = refs[0]()
        self.assertFalse(loop.is_closed())
        # Still a working loop.
        self.assertEqual(loop.run_until_complete(asyncio.sleep(0, "alive")), "alive")
        loop.close()
        del loop
        gc.collect()
        self.assertEqual([r() for r in refs], [None] * 4)
        self.assertEqual(fd_count(), self.fds)

    def test_unclosed_loop_without_callbacks_is_collected(self):
        loop = evloop.new_event_loop()
        thing = Thing()
        thing.loop = loop
        # A cancelled timer leaves evloop's heap at once.
        loop.call_later(60, lambda t=thing: None).cancel()
        refs = [weakref.ref(loop), weakref.ref(thing)]
        del loop, thing
        gc.collect()
        self.assertEqual([r() for r in refs], [None, None])
        self.assertEqual(fd_count(), self.fds)

    def test_cancelled_call_soon_holds_the_loop_until_the_next_iteration(self):
        # A known difference: a cancelled call_soon handle stays in
        # evloop's ready queue (its callback and arguments dropped, its
        # loop held) until the next iteration; asyncio's GC sees through
        # its own queue and collects the loop at once.
        loop = evloop.new_event_loop()
        thing = Thing()
        loop.call_soon(lambda t=thing: None).cancel()
        refs = [weakref.ref(loop), weakref.ref(thing)]
        del loop, thing
        gc.collect()
        self.assertIsNone(refs[1]())
        loop = refs[0]()
        self.assertIsNotNone(loop)
        loop.run_until_complete(asyncio.sleep(0))
        del loop
        gc.collect()
        self.assertIsNone(refs[0]())
        self.assertEqual(fd_count(), self.fds)

    def test_closed_loop_dropped_on_another_thread(self):
        # The Rust half is bound to its thread, yet freed on any: closed,
        # it holds no callbacks and no fds, and nothing is reported.
        loop, refs = pending_loop(self.rsock)
        loop.close()
        holder = [loop]
        del loop
        with Unraisable() as unraisable:
            worker = threading.Thread(target=holder.clear)
            worker.start()
            worker.join()
            gc.collect()
        self.assertEqual([r() for r in refs], [None] * 4)
        self.assertEqual(unraisable.seen, [])
        self.assertEqual(fd_count(), self.fds)

    def test_unclosed_loop_dropped_on_another_thread(self):
        # No crash: with callbacks pending, the loop stays alive as on its
        # own thread (the last reference is evloop's queue's).
        loop, refs = pending_loop(self.rsock)
        holder = [loop]
        del loop
        with Unraisable() as unraisable:
            worker = threading.Thread(target=lambda: (holder.clear(), gc.collect()))
            worker.start()
            worker.join()
        self.assertEqual(unraisable.seen, [])
        loop = refs[0]()
        self.assertIsNotNone(loop)
        loop.close()
        del loop
        gc.collect()
        self.assertEqual([r() for r in refs], [None] * 4)
        self.assertEqual(fd_count(), self.fds)

    def test_loop_stopped_with_callbacks_pending_then_dropped(self):
        # Stopped mid-way (callbacks scheduled by callbacks still queued),
        # then closed: nothing left behind.
        loop = evloop.new_event_loop()
        things = []

        def spawn(depth):
            thing = Thing()
            things.append(weakref.ref(thing))
            loop.call_soon(spawn, depth + 1)
            loop.call_later(60, lambda t=thing: None)
            if depth == 10:
                loop.stop()

        loop.call_soon(spawn, 0)
        loop.run_forever()
        ref = weakref.ref(loop)
        loop.close()
        del loop
        gc.collect()
        self.assertIsNone(ref())
        self.assertEqual([r() for r in things], [None] * len(things))


if __name__ == "__main__":
    unittest.main()
