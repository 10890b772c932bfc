"""Tests of evloop.Loop, the first slice of issue 13: scheduling, timers,
threads, fd watchers, errors, contextvars and asyncio's own machinery
(futures, tasks, timeouts) running on evloop."""

import asyncio
import contextvars
import os
import signal
import socket
import sys
import threading
import time
import unittest

import evloop


class LoopTestCase(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()

    def tearDown(self):
        self.loop.close()

    def run_briefly(self, seconds=0.0):
        self.loop.call_later(seconds, self.loop.stop)
        self.loop.run_forever()


class TestScheduling(LoopTestCase):
    def test_is_an_asyncio_loop(self):
        self.assertIsInstance(self.loop, asyncio.AbstractEventLoop)
        self.assertFalse(self.loop.is_running())
        self.assertFalse(self.loop.is_closed())

    def test_call_soon_runs_in_order_with_args(self):
        seen = []
        for i in range(5):
            self.loop.call_soon(seen.append, i)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, [0, 1, 2, 3, 4])

    def test_cancelled_handle_does_not_run(self):
        seen = []
        handle = self.loop.call_soon(seen.append, "no")
        self.loop.call_soon(seen.append, "yes")
        handle.cancel()
        self.assertTrue(handle.cancelled())
        self.assertIsNone(handle._callback)
        self.run_briefly()
        self.assertEqual(seen, ["yes"])

    def test_call_later_orders_by_deadline_and_cancel_works(self):
        seen = []
        self.loop.call_later(0.03, seen.append, "c")
        self.loop.call_later(0.01, seen.append, "a")
        dropped = self.loop.call_later(0.02, seen.append, "dropped")
        self.loop.call_later(0.02, seen.append, "b")
        dropped.cancel()
        self.assertTrue(dropped.cancelled())
        self.run_briefly(0.05)
        self.assertEqual(seen, ["a", "b", "c"])

    def test_call_at_and_time(self):
        now = self.loop.time()
        self.assertAlmostEqual(now, time.monotonic(), delta=0.5)
        fired = []
        handle = self.loop.call_at(now + 0.02, lambda: fired.append(self.loop.time()))
        self.assertEqual(handle.when(), now + 0.02)
        self.run_briefly(0.05)
        self.assertEqual(len(fired), 1)
        self.assertGreaterEqual(fired[0], now + 0.02)

    def test_call_later_rejects_nan_and_clamps_huge(self):
        with self.assertRaises(ValueError):
            self.loop.call_later(float("nan"), print)
        far = self.loop.call_later(float("inf"), print)
        far.cancel()
        with self.assertRaises(TypeError):
            self.loop.call_soon("not callable")

    def test_closed_loop_refuses_work(self):
        self.loop.close()
        with self.assertRaisesRegex(RuntimeError, "closed"):
            self.loop.call_soon(print)
        with self.assertRaisesRegex(RuntimeError, "closed"):
            self.loop.run_forever()
        with self.assertRaisesRegex(RuntimeError, "closed"):
            self.loop.call_soon_threadsafe(print)

    def test_stop_before_run_forever_does_one_iteration(self):
        seen = []
        self.loop.call_soon(seen.append, 1)
        self.loop.stop()
        self.loop.run_forever()
        self.assertEqual(seen, [1])


class TestThreads(LoopTestCase):
    def test_call_soon_threadsafe_wakes_a_sleeping_loop(self):
        # The loop sleeps on a far timer; only the other thread's post,
        # which must get the GIL while the loop sleeps, can stop it.
        self.loop.call_later(60, self.loop.stop)
        seen = []

        def post():
            time.sleep(0.05)
            self.loop.call_soon_threadsafe(lambda: seen.append(threading.get_ident()))
            self.loop.call_soon_threadsafe(self.loop.stop)

        thread = threading.Thread(target=post)
        start = time.monotonic()
        thread.start()
        self.loop.run_forever()
        thread.join()
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(seen, [threading.get_ident()])

    def test_other_threads_run_while_the_loop_sleeps(self):
        # The GIL is released while the loop waits: a pure-Python thread
        # makes progress during a 0.2 s sleep.
        counter = [0]
        done = threading.Event()

        def spin():
            while not done.is_set():
                counter[0] += 1

        thread = threading.Thread(target=spin)
        thread.start()
        try:
            self.run_briefly(0.2)
        finally:
            done.set()
            thread.join()
        self.assertGreater(counter[0], 1000)

    def test_run_in_executor(self):
        async def main():
            return await self.loop.run_in_executor(None, threading.get_ident)

        worker = self.loop.run_until_complete(main())
        self.assertNotEqual(worker, threading.get_ident())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())


class TestReaders(LoopTestCase):
    def test_add_reader_on_a_socketpair(self):
        a, b = socket.socketpair()
        a.setblocking(False)
        received = []

        def on_readable():
            received.append(a.recv(100))
            self.loop.remove_reader(a)
            self.loop.stop()

        try:
            self.loop.add_reader(a, on_readable)
            self.loop.call_later(0.01, b.send, b"ping")
            self.loop.call_later(5, self.loop.stop)
            self.loop.run_forever()
            self.assertEqual(received, [b"ping"])
            self.assertFalse(self.loop.remove_reader(a.fileno()))
        finally:
            a.close()
            b.close()

    def test_add_writer_by_fd_number(self):
        a, b = socket.socketpair()
        fired = []

        def on_writable():
            fired.append(True)
            self.loop.remove_writer(a.fileno())
            self.loop.stop()

        try:
            self.loop.add_writer(a.fileno(), on_writable)
            self.loop.call_later(5, self.loop.stop)
            self.loop.run_forever()
            self.assertEqual(fired, [True])
        finally:
            a.close()
            b.close()

    def test_adding_again_replaces_and_cancels_the_old_handle(self):
        a, b = socket.socketpair()
        try:
            first = self.loop.add_reader(a, print)
            second = self.loop.add_reader(a, print)
            self.assertTrue(first.cancelled())
            self.assertFalse(second.cancelled())
            self.assertTrue(self.loop.remove_reader(a))
            self.assertTrue(second.cancelled())
            self.assertFalse(self.loop.remove_reader(a))
        finally:
            a.close()
            b.close()

    def test_bad_fds_are_errors(self):
        with self.assertRaises(ValueError):
            self.loop.add_reader(-1, print)
        with self.assertRaises(ValueError):
            self.loop.add_reader(object(), print)
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        with self.assertRaises(OSError):
            self.loop.add_reader(r, print)


class TestErrors(LoopTestCase):
    def test_callback_exception_reaches_the_handler_with_asyncio_keys(self):
        contexts = []
        self.loop.set_exception_handler(lambda loop, ctx: contexts.append((loop, ctx)))

        def boom():
            raise ZeroDivisionError("boom")

        handle = self.loop.call_soon(boom)
        self.run_briefly()
        self.assertEqual(len(contexts), 1)
        loop, ctx = contexts[0]
        self.assertIs(loop, self.loop)
        self.assertIsInstance(ctx["exception"], ZeroDivisionError)
        self.assertIs(ctx["handle"], handle)
        self.assertTrue(ctx["message"].startswith("Exception in callback"))
        self.assertIn("boom", ctx["message"])

    def test_default_handler_logs(self):
        self.loop.call_soon(lambda: 1 / 0)
        with self.assertLogs("asyncio", level="ERROR") as logs:
            self.run_briefly()
        self.assertIn("ZeroDivisionError", logs.output[0])

    def test_failing_handler_falls_back_to_default(self):
        def bad_handler(loop, ctx):
            raise RuntimeError("handler broke")

        self.loop.set_exception_handler(bad_handler)
        self.loop.call_soon(lambda: 1 / 0)
        with self.assertLogs("asyncio", level="ERROR") as logs:
            self.run_briefly()
        self.assertIn("Unhandled error in exception handler", logs.output[0])

    def test_keyboard_interrupt_in_callback_leaves_run_forever(self):
        def interrupt():
            raise KeyboardInterrupt

        self.loop.call_soon(interrupt)
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()
        self.assertFalse(self.loop.is_running())
        self.run_briefly()  # still usable

    def test_sigint_wakes_a_sleeping_loop(self):
        # SIGINT from another thread: the loop, asleep on a far timer, is
        # woken through the wakeup fd and KeyboardInterrupt is raised.
        self.loop.call_later(60, self.loop.stop)
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        start = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()
        timer.join()
        self.assertLess(time.monotonic() - start, 10)


class TestGarbage(LoopTestCase):
    def test_cycles_through_handles_are_collected(self):
        import gc
        import weakref

        class Owner:
            def tick(self):
                pass

        owner = Owner()
        owner.handle = self.loop.call_later(0.001, owner.tick)
        owner.soon = self.loop.call_soon(owner.tick)
        gone = weakref.ref(owner)
        self.run_briefly(0.01)
        del owner
        gc.collect()
        self.assertIsNone(gone(), "owner -> handle -> bound method -> owner was collected")


class TestContext(LoopTestCase):
    def test_callback_runs_in_given_context(self):
        var = contextvars.ContextVar("var", default="default")
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        seen = []
        handle = self.loop.call_soon(lambda: seen.append(var.get()), context=ctx)
        self.assertIs(handle.get_context(), ctx)
        self.loop.call_soon(lambda: seen.append(var.get()))
        self.run_briefly()
        self.assertEqual(seen, ["in ctx", "default"])

    def test_default_context_is_a_copy(self):
        var = contextvars.ContextVar("var", default="default")
        var.set("outer")
        seen = []

        def change():
            seen.append(var.get())
            var.set("changed inside")

        self.loop.call_soon(change)
        self.run_briefly()
        self.assertEqual(seen, ["outer"])
        self.assertEqual(var.get(), "outer")


class TestAsyncio(LoopTestCase):
    def test_run_until_complete_returns_and_raises(self):
        async def answer():
            await asyncio.sleep(0)
            return 42

        async def fail():
            await asyncio.sleep(0.001)
            raise ValueError("nope")

        self.assertEqual(self.loop.run_until_complete(answer()), 42)
        with self.assertRaisesRegex(ValueError, "nope"):
            self.loop.run_until_complete(fail())

    def test_sleep_and_gather(self):
        async def value(delay, v):
            await asyncio.sleep(delay)
            return v

        async def main():
            start = self.loop.time()
            result = await asyncio.gather(value(0.03, "slow"), value(0.01, "fast"))
            return result, self.loop.time() - start

        result, took = self.loop.run_until_complete(main())
        self.assertEqual(result, ["slow", "fast"])
        self.assertGreaterEqual(took, 0.03)
        self.assertLess(took, 1.0)

    def test_wait_for_times_out(self):
        async def main():
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.sleep(10), 0.01)
            return "done"

        self.assertEqual(self.loop.run_until_complete(main()), "done")

    def test_task_cancellation(self):
        async def main():
            started = asyncio.Event()

            async def forever():
                started.set()
                await asyncio.sleep(3600)

            task = self.loop.create_task(forever(), name="forever")
            await started.wait()
            self.assertEqual(task.get_name(), "forever")
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            return task.cancelled()

        self.assertTrue(self.loop.run_until_complete(main()))

    @unittest.skipUnless(hasattr(asyncio, "timeout"), "asyncio.timeout is Python 3.11+")
    def test_asyncio_timeout(self):
        async def main():
            with self.assertRaises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(10)
            return asyncio.get_running_loop()

        self.assertIs(self.loop.run_until_complete(main()), self.loop)

    def test_task_factory(self):
        made = []

        def factory(loop, coro, **kwargs):
            task = asyncio.Task(coro, loop=loop, **kwargs)
            made.append(task)
            return task

        self.loop.set_task_factory(factory)

        async def main():
            return 1

        self.assertEqual(self.loop.run_until_complete(main()), 1)
        self.assertEqual(len(made), 1)


class TestRun(unittest.TestCase):
    @unittest.skipUnless(sys.version_info >= (3, 12), "loop_factory is Python 3.12+")
    def test_asyncio_run_with_loop_factory(self):
        async def main():
            return type(asyncio.get_running_loop())

        self.assertIs(asyncio.run(main(), loop_factory=evloop.new_event_loop), evloop.Loop)

    def test_evloop_run(self):
        async def main():
            loop = asyncio.get_running_loop()
            await asyncio.sleep(0.001)
            return type(loop).__name__

        self.assertEqual(evloop.run(main()), "Loop")

    def test_sigint_during_run_raises_keyboard_interrupt(self):
        async def main():
            await asyncio.sleep(60)

        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        start = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            evloop.run(main())
        timer.join()
        self.assertLess(time.monotonic() - start, 10)

    def test_policy(self):
        old = asyncio.get_event_loop_policy()
        try:
            evloop.install()
            loop = asyncio.new_event_loop()
            try:
                self.assertIsInstance(loop, evloop.Loop)
            finally:
                loop.close()
        finally:
            asyncio.set_event_loop_policy(old)


if __name__ == "__main__":
    unittest.main()
