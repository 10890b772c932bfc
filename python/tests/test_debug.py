"""Tests of evloop.Loop's debug mode, its thread checks, KeyboardInterrupt
out of run_forever, and the ResourceWarnings of unclosed loops and
transports (asyncio's behaviour, issue 13)."""

import asyncio
import gc
import socket
import subprocess
import sys
import threading
import time
import unittest
import warnings

import evloop

THREAD_MESSAGE = "Non-thread-safe operation invoked on an event loop other than the current one"


def noop(*args):
    pass


class DebugTestCase(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()
        self.loop.set_debug(True)

    def tearDown(self):
        self.loop.close()

    def run_briefly(self):
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()


class TestSlowCallbacks(DebugTestCase):
    def test_slow_callback_is_logged_as_asyncio_does(self):
        self.loop.slow_callback_duration = 0.01
        self.loop.call_soon(time.sleep, 0.02)
        with self.assertLogs("asyncio", level="WARNING") as logs:
            self.run_briefly()
        self.assertEqual(len(logs.records), 1)
        record = logs.records[0]
        self.assertEqual(record.levelname, "WARNING")
        self.assertEqual(record.msg, "Executing %s took %.3f seconds")
        self.assertRegex(record.getMessage(), r"^Executing <Handle sleep\(0\.02\) .*> took 0\.0\d\d seconds$")

    def test_slow_task_step_names_the_task(self):
        self.loop.slow_callback_duration = 0.01

        async def slow_step():
            time.sleep(0.02)

        with self.assertLogs("asyncio", level="WARNING") as logs:
            self.loop.run_until_complete(slow_step())
        self.assertRegex(logs.records[0].getMessage(), r"^Executing <Task .*slow_step.*> took ")

    def test_slow_timer_is_logged(self):
        self.loop.slow_callback_duration = 0.01
        self.loop.call_later(0, time.sleep, 0.02)
        self.loop.call_later(0.001, self.loop.stop)
        with self.assertLogs("asyncio", level="WARNING") as logs:
            self.loop.run_forever()
        self.assertRegex(logs.records[0].getMessage(), r"^Executing <TimerHandle when=")

    def test_fast_callbacks_log_nothing(self):
        self.loop.slow_callback_duration = 10
        self.loop.call_soon(noop)
        with self.assertNoLogs("asyncio", level="DEBUG"):
            self.run_briefly()

    def test_cancelled_handles_are_skipped_silently(self):
        self.loop.slow_callback_duration = 0.0
        self.loop.call_soon(noop).cancel()
        self.loop.call_later(0, noop).cancel()
        self.loop.call_soon(self.loop.stop)
        with self.assertLogs("asyncio", level="WARNING") as logs:
            self.loop.run_forever()
        # Only the stop callback was timed (and, at 0 s allowed, logged).
        self.assertEqual(len(logs.records), 1, logs.output)
        self.assertIn("stop", logs.records[0].getMessage())

    def test_nothing_is_timed_outside_debug_mode(self):
        self.loop.set_debug(False)
        self.loop.slow_callback_duration = 0.0
        self.loop.call_soon(time.sleep, 0.01)
        with self.assertNoLogs("asyncio", level="DEBUG"):
            self.run_briefly()

    def test_set_debug_while_running_applies_at_once(self):
        self.loop.set_debug(False)
        self.loop.slow_callback_duration = 0.01
        self.loop.call_soon(self.loop.set_debug, True)
        self.loop.call_soon(lambda: self.loop.call_soon(time.sleep, 0.02))
        with self.assertLogs("asyncio", level="WARNING") as logs:
            self.loop.call_soon(lambda: self.loop.call_soon(self.loop.stop))
            self.loop.run_forever()
        self.assertIn("sleep(0.02)", logs.records[0].getMessage())


class TestHandleTracebacks(DebugTestCase):
    def assert_created_here(self, handle, line):
        traceback = handle._source_traceback
        self.assertIsInstance(traceback, list)
        self.assertEqual(traceback[-1][:2], (__file__, line))

    def test_every_scheduling_call_keeps_its_caller(self):
        line = sys._getframe().f_lineno + 1
        self.assert_created_here(self.loop.call_soon(noop), line)
        line = sys._getframe().f_lineno + 1
        self.assert_created_here(self.loop.call_soon_threadsafe(noop), line)
        line = sys._getframe().f_lineno + 1
        self.assert_created_here(self.loop.call_later(10, noop), line)
        line = sys._getframe().f_lineno + 1
        self.assert_created_here(self.loop.call_at(self.loop.time() + 10, noop), line)
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        line = sys._getframe().f_lineno + 1
        self.assert_created_here(self.loop.add_reader(a, noop), line)
        self.loop.remove_reader(a)

    def test_no_traceback_outside_debug_mode(self):
        self.loop.set_debug(False)
        self.assertIsNone(self.loop.call_soon(noop)._source_traceback)
        self.assertIsNone(self.loop.call_later(1, noop)._source_traceback)

    def test_repr_shows_where_the_handle_was_created(self):
        line = sys._getframe().f_lineno + 1
        handle = self.loop.call_soon(noop, 1, 2)
        self.assertRegex(repr(handle), rf"^<Handle noop\(1, 2\) at .*:\d+ created at {__file__}:{line}>$")
        handle.cancel()
        # Kept from before the cancel, as asyncio's _repr.
        self.assertRegex(
            repr(handle), rf"^<Handle cancelled noop\(1, 2\) at .*:\d+ created at {__file__}:{line}>$"
        )
        timer = self.loop.call_at(123.5, noop)
        self.assertRegex(repr(timer), r"^<TimerHandle when=123\.5 noop\(\) at .* created at ")
        timer.cancel()
        self.assertRegex(repr(timer), r"^<TimerHandle cancelled when=123\.5 noop\(\) at .* created at ")

    def test_repr_outside_debug_mode_is_asyncios(self):
        self.loop.set_debug(False)
        handle = self.loop.call_soon(noop)
        self.assertRegex(repr(handle), r"^<Handle noop\(\) at .*test_debug\.py:\d+>$")
        handle.cancel()
        self.assertEqual(repr(handle), "<Handle cancelled>")
        timer = self.loop.call_at(123.0, noop)
        timer.cancel()
        self.assertEqual(repr(timer), "<TimerHandle cancelled when=123.0>")

    def test_handler_context_has_the_source_traceback(self):
        contexts = []
        self.loop.set_exception_handler(lambda loop, context: contexts.append(context))
        handle = self.loop.call_soon(lambda: 1 / 0)
        self.run_briefly()
        self.assertEqual(len(contexts), 1)
        self.assertIs(contexts[0]["source_traceback"], handle._source_traceback)
        self.assertIs(contexts[0]["handle"], handle)

    def test_default_handler_logs_the_running_handles_traceback(self):
        # An error reported without a source_traceback from inside a
        # handle gets that handle's as handle_traceback (asyncio's).
        def report():
            self.loop.call_exception_handler({"message": "custom report"})

        self.loop.call_soon(report)
        with self.assertLogs("asyncio", level="ERROR") as logs:
            self.run_briefly()
        self.assertIn("custom report", logs.output[0])
        self.assertIn("Handle created at (most recent call last)", logs.output[0])
        self.assertIn("test_default_handler_logs_the_running_handles_traceback", logs.output[0])

    def test_coroutine_callback_is_a_type_error_in_debug_mode(self):
        async def coro():
            pass

        with self.assertRaisesRegex(TypeError, r"coroutines cannot be used with call_soon\(\)"):
            self.loop.call_soon(coro)
        with self.assertRaisesRegex(TypeError, r"coroutines cannot be used with call_at\(\)"):
            self.loop.call_later(1, coro)

    def test_debug_mode_from_the_environment(self):
        code = "import evloop; loop = evloop.new_event_loop(); print(loop.get_debug()); loop.close()"
        for flags, env, expected in (
            ([], {"PYTHONASYNCIODEBUG": "1"}, "True"),
            (["-X", "dev"], {}, "True"),
            ([], {}, "False"),
        ):
            environ = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONASYNCIODEBUG"}
            environ.update(env)
            out = subprocess.run(
                [sys.executable, *flags, "-c", code], env=environ, capture_output=True, text=True, check=True
            )
            self.assertEqual(out.stdout.strip(), expected, (flags, env))

    def test_asyncio_run_debug_turns_it_on(self):
        async def main():
            return asyncio.get_running_loop().get_debug()

        self.assertTrue(evloop.run(main(), debug=True))


class TestThreads(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()
        self.loop.set_debug(False)  # also under -X dev

    def tearDown(self):
        self.loop.close()

    def call_from_thread(self, method, *args):
        errors = []

        def target():
            try:
                method(*args)
            except BaseException as exc:  # noqa: BLE001 - the test looks at it
                errors.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        self.assertEqual(len(errors), 1, errors)
        return errors[0]

    def test_debug_mode_raises_asyncios_runtime_error(self):
        self.loop.set_debug(True)
        for method, args in (
            (self.loop.call_soon, (noop,)),
            (self.loop.call_later, (1, noop)),
            (self.loop.call_at, (1, noop)),
        ):
            error = self.call_from_thread(method, *args)
            self.assertIs(type(error), RuntimeError)
            self.assertEqual(str(error), THREAD_MESSAGE)

    def test_outside_debug_mode_still_a_runtime_error_never_a_panic(self):
        for method, args in (
            (self.loop.call_soon, (noop,)),
            (self.loop.call_later, (1, noop)),
            (self.loop.add_reader, (0, noop)),
            (self.loop.time, ()),
            (self.loop.stop, ()),
            (self.loop.close, ()),
            (self.loop.run_forever, ()),
        ):
            error = self.call_from_thread(method, *args)
            self.assertIs(type(error), RuntimeError, method)
            self.assertIn(THREAD_MESSAGE, str(error))
            self.assertIn("call_soon_threadsafe", str(error))

    def test_a_running_loop_is_told_from_its_thread(self):
        # asyncio's test_check_thread: the check from a thread that runs
        # the call while the loop runs; the threadsafe path still works.
        self.loop.set_debug(True)
        fut = self.loop.create_future()

        def other():
            try:
                self.loop.call_soon(noop)
            except RuntimeError as exc:
                self.loop.call_soon_threadsafe(fut.set_result, str(exc))

        self.loop.call_soon(threading.Thread(target=other).start)
        self.assertEqual(self.loop.run_until_complete(fut), THREAD_MESSAGE)

    def test_is_closed_and_repr_from_any_thread(self):
        results = []
        thread = threading.Thread(target=lambda: results.append((self.loop.is_closed(), repr(self.loop))))
        thread.start()
        thread.join()
        self.assertEqual(results, [(False, "<Loop running=False closed=False debug=False>")])


class TestKeyboardInterrupt(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()

    def tearDown(self):
        self.loop.close()

    def test_leaves_at_once_and_the_rest_runs_next_time(self):
        seen = []

        def interrupt():
            seen.append("interrupt")
            self.loop.call_soon(seen.append, "scheduled by it")
            raise KeyboardInterrupt

        self.loop.call_soon(seen.append, "before")
        self.loop.call_soon(interrupt)
        self.loop.call_soon(seen.append, "after")
        self.loop.call_later(0, seen.append, "due timer")
        time.sleep(0.002)
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()
        self.assertEqual(seen, ["before", "interrupt"])
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        # asyncio's order: the rest of the batch, its due timer, then what
        # was scheduled since.
        self.assertEqual(seen, ["before", "interrupt", "after", "due timer", "scheduled by it"])

    def test_system_exit_too(self):
        seen = []
        self.loop.call_soon(sys.exit, 3)
        self.loop.call_soon(seen.append, "after")
        with self.assertRaises(SystemExit) as caught:
            self.loop.run_forever()
        self.assertEqual(caught.exception.code, 3)
        self.assertEqual(seen, [])
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, ["after"])

    def test_in_debug_mode_too(self):
        self.loop.set_debug(True)
        seen = []

        def interrupt():
            raise KeyboardInterrupt

        self.loop.call_soon(interrupt)
        self.loop.call_soon(seen.append, "after")
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()
        self.assertEqual(seen, [])


class TestResourceWarnings(unittest.TestCase):
    def test_unclosed_loop_warns_and_is_closed(self):
        loop = evloop.new_event_loop()
        text = repr(loop)
        with self.assertWarns(ResourceWarning) as caught:
            del loop
            gc.collect()
        self.assertEqual(str(caught.warning), f"unclosed event loop {text}")

    def test_closed_loop_does_not_warn(self):
        loop = evloop.new_event_loop()
        loop.close()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            del loop
            gc.collect()

    def open_connections(self, loop, close_client):
        async def main():
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            if close_client:
                transport.close()
            await asyncio.sleep(0.05)
            server.close()

        loop.run_until_complete(main())

    def test_unclosed_transports_warn_when_collected(self):
        loop = evloop.new_event_loop()
        self.open_connections(loop, close_client=False)
        with self.assertWarns(ResourceWarning) as caught:
            loop.close()
            gc.collect()
        self.assertRegex(str(caught.warning), r"^unclosed transport <evloop.StreamTransport ")

    def test_closed_transports_do_not_warn(self):
        loop = evloop.new_event_loop()
        self.open_connections(loop, close_client=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loop.close()
            gc.collect()

    def test_unclosed_datagram_transport_warns(self):
        loop = evloop.new_event_loop()
        loop.run_until_complete(loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)))
        with self.assertWarns(ResourceWarning) as caught:
            loop.close()
            gc.collect()
        self.assertRegex(str(caught.warning), r"^unclosed transport <evloop.DatagramTransport")


if __name__ == "__main__":
    unittest.main()
