"""Loops, transports, timer handles and servers let go of on another thread
than their loop's: no error, no leak, the loop unharmed; and calls from the
wrong thread raise asyncio's RuntimeError.

Each scenario runs in a fresh interpreter (``-W error::ResourceWarning``),
whose stderr must stay empty: an error in a finalizer only shows there.
"""

import subprocess
import sys
import textwrap
import unittest

# What every scenario starts with: a loop running in a thread of its own.
PRELUDE = """
import asyncio, gc, os, threading, warnings, weakref
import evloop

def fd_count():
    return len(os.listdir("/proc/self/fd"))

class Background:
    '''A loop running on a thread of its own (closed there when stopped);
    its exception handler records every context.'''

    def __init__(self):
        self.handled = []
        made = threading.Event()
        # A daemon: a failed scenario exits instead of hanging on it.
        self.thread = threading.Thread(target=self._main, args=(made,), daemon=True)
        self.thread.start()
        assert made.wait(10)

    def _main(self, made):
        self.loop = evloop.new_event_loop()
        self.loop.set_exception_handler(lambda loop, ctx: self.handled.append(ctx))
        self.loop.call_soon(made.set)
        self.loop.run_forever()
        self.loop.close()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def round_trip(self):
        done = threading.Event()
        self.loop.call_soon_threadsafe(done.set)
        assert done.wait(10), "the loop did not answer"

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        assert not self.thread.is_alive()
"""


def run_scenario(test, body):
    """Runs PRELUDE + body in a new interpreter; it must print 'ok' and
    nothing on stderr."""
    code = PRELUDE + textwrap.dedent(body) + "\nprint('ok')\n"
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    test.assertEqual(done.stderr, "")
    test.assertEqual((done.returncode, done.stdout), (0, "ok\n"))


class TestDroppedOnAnotherThread(unittest.TestCase):
    """The last reference goes on a thread other than the loop's."""

    def test_loop_run_and_closed_in_a_worker_dropped_on_main(self):
        run_scenario(self, """
            gc.collect()
            base = fd_count()
            box = {}
            def worker():
                loop = evloop.new_event_loop()
                box["loop"] = loop
                loop.call_soon(loop.stop)
                loop.run_forever()
                loop.close()
            thread = threading.Thread(target=worker)
            thread.start()
            thread.join()
            ref = weakref.ref(box["loop"])
            del box["loop"]
            gc.collect()
            assert ref() is None
            assert fd_count() == base, (fd_count(), base)
        """)

    def test_closed_loop_dropped_by_a_poster_thread(self):
        # micro.py's cross-thread case: posters hold the bound method
        # call_soon_threadsafe, and the last of them lets go after close.
        run_scenario(self, """
            loop = evloop.new_event_loop()
            post = loop.call_soon_threadsafe
            release = threading.Event()
            def poster(post):
                post(lambda: None)
                release.wait(10)
            thread = threading.Thread(target=poster, args=(post,))
            thread.start()
            loop.call_soon(loop.stop)
            loop.run_forever()
            loop.close()
            ref = weakref.ref(loop)
            del loop, post
            gc.collect()
            assert ref() is not None  # the poster's frame holds it
            release.set()
            thread.join()
            gc.collect()
            assert ref() is None
        """)

    def test_unclosed_loop_dropped_on_another_thread_warns_and_closes(self):
        # asyncio's BaseEventLoop.__del__: ResourceWarning, then close (the
        # loop's epoll fd and wake-up fd go, the default executor is shut
        # down), whichever thread lets go of it.
        run_scenario(self, """
            gc.collect()
            base = fd_count()
            box = {}
            def worker():
                loop = evloop.new_event_loop()
                box["loop"] = loop
                loop.run_until_complete(loop.run_in_executor(None, int))
                box["executor"] = loop._default_executor
            thread = threading.Thread(target=worker)
            thread.start()
            thread.join()
            assert fd_count() > base
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                del box["loop"]
            # The warning's source is the loop: let go of it too.
            found = [(w.category, str(w.message)) for w in caught]
            del caught
            gc.collect()
            assert len(found) == 1, found
            assert found[0][0] is ResourceWarning, found
            assert found[0][1].startswith("unclosed event loop <Loop"), found
            assert fd_count() == base, (fd_count(), base)
            assert box["executor"]._shutdown
        """)

    def test_unclosed_loop_made_on_main_dropped_in_a_worker(self):
        run_scenario(self, """
            gc.collect()
            base = fd_count()
            box = {"loop": evloop.new_event_loop()}
            caught = []
            def worker():
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always")
                    box.clear()
                caught.extend(w.category for w in seen)
                # The warning's source is the loop: it goes here, with it.
                seen.clear()
            thread = threading.Thread(target=worker)
            thread.start()
            thread.join()
            assert caught == [ResourceWarning], caught
            assert fd_count() == base, (fd_count(), base)
        """)

    def test_tcp_transport_dropped_on_main_while_its_loop_runs(self):
        run_scenario(self, """
            bg = Background()
            loop = bg.loop
            gc.collect()
            base = fd_count()

            async def connect():
                server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
                port = server.sockets[0].getsockname()[1]
                lost = loop.create_future()
                class Client(asyncio.Protocol):
                    def connection_lost(self, exc):
                        lost.set_result(exc)
                transport, _ = await loop.create_connection(Client, "127.0.0.1", port)
                return server, transport, lost

            server, transport, lost = bg.run(connect())
            assert fd_count() > base
            core = transport._core
            try:
                core.is_closing()
            except RuntimeError:
                pass
            else:
                raise AssertionError("is_closing() worked on another thread")

            async def close(transport, lost):
                transport.write(b"bye")
                transport.close()
                return await lost
            assert bg.run(close(transport, lost)) is None
            ref = weakref.ref(transport)
            del transport, core, lost
            gc.collect()
            assert ref() is None  # freed here, while the loop runs
            bg.round_trip()

            async def close_server(server):
                server.close()
                await server.wait_closed()
            bg.run(close_server(server))
            del server
            gc.collect()
            bg.round_trip()
            assert fd_count() == base, (fd_count(), base)
            bg.stop()
            assert bg.handled == [], bg.handled
        """)

    def test_timer_handle_dropped_on_main_while_its_loop_runs(self):
        run_scenario(self, """
            bg = Background()
            loop = bg.loop
            fired = []

            async def schedule():
                return (
                    loop.call_later(3600, fired.append, "late"),
                    loop.call_later(0, fired.append, "now"),
                )
            late, now = bg.run(schedule())
            bg.loop.call_soon_threadsafe(late.cancel)
            bg.round_trip()
            while not fired:
                bg.round_trip()
            refs = [weakref.ref(late), weakref.ref(now)]
            del late, now
            gc.collect()
            assert [r() for r in refs] == [None, None]
            bg.round_trip()
            assert fired == ["now"], fired
            bg.stop()
            assert bg.handled == [], bg.handled
        """)

    def test_server_dropped_on_main_while_its_loop_runs(self):
        run_scenario(self, """
            bg = Background()
            loop = bg.loop
            gc.collect()
            base = fd_count()

            async def serve():
                return await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            server = bg.run(serve())
            assert fd_count() == base + 1
            core = server._core
            try:
                core.is_serving()
            except RuntimeError:
                pass
            else:
                raise AssertionError("is_serving() worked on another thread")
            del core

            async def close(server):
                server.close()
                await server.wait_closed()
            bg.run(close(server))
            ref = weakref.ref(server)
            del server
            gc.collect()
            assert ref() is None
            bg.round_trip()
            assert fd_count() == base, (fd_count(), base)
            bg.stop()
            assert bg.handled == [], bg.handled
        """)

    def test_pending_call_dropped_on_main_while_its_loop_runs(self):
        # The Rust half of a sock_recv under way, let go of on main: the
        # call runs on, and closing the loop drops it (its fd closes).
        run_scenario(self, """
            import socket
            from evloop import _core
            gc.collect()
            base = fd_count()
            bg = Background()
            loop = bg.loop
            a, b = socket.socketpair()
            a.setblocking(False)

            async def start():
                future = loop.create_future()
                return future, _core.sock_recv(future, loop, os.dup(a.fileno()), 1)
            future, pending = bg.run(start())
            del pending
            gc.collect()
            bg.round_trip()
            b.send(b"x")
            assert bg.run(asyncio.wait_for(future, 10)) == b"x"

            future, pending = bg.run(start())
            assert fd_count() == base + 5  # the loop's 2, a, b, a's duplicate
            bg.stop()  # closed with the call under way: the call goes
            assert fd_count() == base + 2, (fd_count(), base)
            del pending, future
            gc.collect()
            a.close()
            b.close()
            assert fd_count() == base, (fd_count(), base)
        """)


class TestWrongThread(unittest.TestCase):
    """Calls on another thread than the loop's raise asyncio's
    RuntimeError, not pyo3's PanicException."""

    def test_loop_and_transport_methods_raise_runtime_error(self):
        run_scenario(self, """
            import socket
            from evloop import _core
            bg = Background()
            loop = bg.loop

            async def connect():
                server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
                port = server.sockets[0].getsockname()[1]
                transport, _ = await loop.create_connection(
                    asyncio.Protocol, "127.0.0.1", port
                )
                due = loop.time() + 3600
                timer = loop.call_later(3600, print)
                return server, transport, timer, due
            server, transport, timer, due = bg.run(connect())
            # As asyncio's, a timer handle's due time reads on any thread.
            assert abs(timer.when() - due) < 60, (timer.when(), due)
            a, b = socket.socketpair()
            calls = {
                "call_soon": lambda: loop.call_soon(print),
                "time": loop.time,
                "transport.write": lambda: transport.write(b"x"),
                "transport.is_closing": transport.is_closing,
                "transport.get_extra_info": lambda: transport.get_extra_info("peername"),
                "timer.cancel": timer.cancel,
                "timer.cancelled": timer.cancelled,
                "server.close_clients": server.close_clients,
                "_core.sock_recv": lambda: _core.sock_recv(
                    loop.create_future(), loop, os.dup(a.fileno()), 1
                ),
                "_core.remove_signal_handler": lambda: _core.remove_signal_handler(loop, 10),
            }
            base = fd_count()
            for name, call in calls.items():
                try:
                    call()
                except RuntimeError as error:
                    message = str(error)
                    assert message.startswith("Non-thread-safe operation"), (name, message)
                else:
                    raise AssertionError(f"{name} worked on another thread")
            assert fd_count() == base  # the duplicate sock_recv took was closed

            async def close(server, transport, timer):
                timer.cancel()
                transport.close()
                server.close()
                await server.wait_closed()
            bg.run(close(server, transport, timer))
            a.close()
            b.close()
            bg.stop()
            assert bg.handled == [], bg.handled
        """)


if __name__ == "__main__":
    unittest.main()
