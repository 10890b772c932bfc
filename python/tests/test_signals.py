"""Tests of loop.add_signal_handler / remove_signal_handler (issue 13, third
slice): evloop's signals crate under asyncio's semantics."""

import asyncio
import contextvars
import os
import signal
import threading
import time
import unittest

import evloop


class SignalTestCase(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()

    def tearDown(self):
        self.loop.close()
        # Whatever a test did, later tests get Python's dispositions back.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)

    def kill_later(self, sig, delay=0.05):
        timer = threading.Timer(delay, os.kill, (os.getpid(), sig))
        timer.start()
        self.addCleanup(timer.join)


class TestHandlers(SignalTestCase):
    def test_handler_runs_on_the_loop_with_args_and_wakes_it(self):
        seen = []

        def on_usr1(*args):
            seen.append((args, threading.get_ident()))
            self.loop.stop()

        self.loop.add_signal_handler(signal.SIGUSR1, on_usr1, "a", 2)
        # Asleep on a far timer: only the signal can wake the loop.
        self.loop.call_later(60, self.loop.stop)
        self.kill_later(signal.SIGUSR1)
        start = time.monotonic()
        self.loop.run_forever()
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(seen, [(("a", 2), threading.get_ident())])

    def test_handler_runs_each_time(self):
        seen = []
        self.loop.add_signal_handler(signal.SIGUSR1, seen.append, 1)

        async def main():
            for _ in range(3):
                os.kill(os.getpid(), signal.SIGUSR1)
                await asyncio.sleep(0.05)

        self.loop.run_until_complete(main())
        self.assertEqual(seen, [1, 1, 1])

    def test_adding_again_replaces(self):
        seen = []
        self.loop.add_signal_handler(signal.SIGUSR1, seen.append, "old")
        self.loop.add_signal_handler(signal.SIGUSR1, seen.append, "new")
        self.kill_later(signal.SIGUSR1, 0.01)
        self.loop.call_later(0.3, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, ["new"])

    def test_runs_in_the_context_of_the_add(self):
        var = contextvars.ContextVar("var", default="unset")
        var.set("at add")
        seen = []
        self.loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append(var.get()))
        var.set("later")
        self.kill_later(signal.SIGUSR1, 0.01)
        self.loop.call_later(0.3, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, ["at add"])

    def test_exception_goes_to_the_handler(self):
        caught = []
        self.loop.set_exception_handler(lambda lp, ctx: caught.append(ctx))

        def boom():
            raise ZeroDivisionError("boom")

        self.loop.add_signal_handler(signal.SIGUSR1, boom)
        self.kill_later(signal.SIGUSR1, 0.01)
        self.loop.call_later(0.3, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(len(caught), 1)
        self.assertIsInstance(caught[0]["exception"], ZeroDivisionError)
        self.assertIn("Exception in callback", caught[0]["message"])
        self.assertIn("handle", caught[0])

    def test_two_signals(self):
        seen = []
        self.loop.add_signal_handler(signal.SIGUSR1, seen.append, "usr1")
        self.loop.add_signal_handler(signal.SIGUSR2, seen.append, "usr2")

        async def main():
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGUSR2)
            await asyncio.sleep(0.05)

        self.loop.run_until_complete(main())
        self.assertEqual(seen, ["usr1", "usr2"])


class TestRemove(SignalTestCase):
    def test_remove_reports_whether_there_was_one(self):
        self.assertFalse(self.loop.remove_signal_handler(signal.SIGUSR1))
        self.loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        self.assertTrue(self.loop.remove_signal_handler(signal.SIGUSR1))
        self.assertFalse(self.loop.remove_signal_handler(signal.SIGUSR1))

    def test_removed_handler_does_not_run_and_default_is_back(self):
        seen = []
        self.loop.add_signal_handler(signal.SIGUSR1, seen.append, 1)
        self.loop.remove_signal_handler(signal.SIGUSR1)
        self.assertEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)
        # A Python handler set now gets the signal: evloop let go of it.
        got = []
        signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
        self.kill_later(signal.SIGUSR1, 0.01)
        self.loop.call_later(0.3, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, [])
        self.assertEqual(got, [1])

    def test_removing_sigint_restores_keyboard_interrupt(self):
        seen = []
        self.loop.add_signal_handler(signal.SIGINT, seen.append, "handled")
        self.kill_later(signal.SIGINT, 0.01)
        self.loop.call_later(0.3, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, ["handled"])
        self.assertTrue(self.loop.remove_signal_handler(signal.SIGINT))
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
        self.loop.call_later(60, self.loop.stop)
        self.kill_later(signal.SIGINT)
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()

    def test_close_removes_them_all(self):
        self.loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        self.loop.add_signal_handler(signal.SIGINT, lambda: None)
        self.loop.close()
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
        self.assertEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)
        # Another loop can take them now.
        other = evloop.new_event_loop()
        try:
            other.add_signal_handler(signal.SIGUSR1, lambda: None)
            self.assertTrue(other.remove_signal_handler(signal.SIGUSR1))
        finally:
            other.close()


class TestErrors(SignalTestCase):
    def test_invalid_signals(self):
        with self.assertRaises(TypeError):
            self.loop.add_signal_handler("SIGUSR1", lambda: None)
        with self.assertRaisesRegex(ValueError, "invalid signal number 0"):
            self.loop.add_signal_handler(0, lambda: None)
        with self.assertRaisesRegex(ValueError, "invalid signal number"):
            self.loop.remove_signal_handler(1000)

    def test_uncatchable_signals(self):
        # asyncio raises RuntimeError (from sigaction's EINVAL) for these.
        for sig in (signal.SIGKILL, signal.SIGSTOP):
            with self.assertRaisesRegex(RuntimeError, f"sig {sig} cannot be caught"):
                self.loop.add_signal_handler(sig, lambda: None)
        self.assertEqual(self.loop._signal_handlers, {})

    def test_coroutines_are_refused(self):
        async def coro():
            pass

        with self.assertRaisesRegex(TypeError, "coroutines cannot be used"):
            self.loop.add_signal_handler(signal.SIGUSR1, coro)

    def test_closed_loop(self):
        self.loop.close()
        with self.assertRaisesRegex(RuntimeError, "closed"):
            self.loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        self.assertFalse(self.loop.remove_signal_handler(signal.SIGUSR1))

    def test_not_the_main_thread(self):
        errors = []

        def in_thread():
            lp = evloop.new_event_loop()
            try:
                lp.add_signal_handler(signal.SIGUSR1, lambda: None)
            except RuntimeError as error:
                # The text only: the traceback would keep the loop alive
                # past its thread (its core is not Send).
                errors.append(str(error))
            finally:
                lp.close()

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        self.assertEqual(len(errors), 1)
        self.assertIn("main thread", errors[0])


class TestWithPythonHandlers(SignalTestCase):
    def test_python_handler_of_another_signal_still_wakes_the_loop(self):
        # SIGUSR1 is evloop's, SIGUSR2 Python's (through set_wakeup_fd).
        seen = []
        self.loop.add_signal_handler(signal.SIGUSR1, seen.append, "evloop")
        signal.signal(signal.SIGUSR2, lambda *a: (seen.append("python"), self.loop.stop()))
        self.kill_later(signal.SIGUSR1, 0.01)
        self.kill_later(signal.SIGUSR2, 0.2)
        self.loop.call_later(60, self.loop.stop)
        start = time.monotonic()
        self.loop.run_forever()
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(seen, ["evloop", "python"])


if __name__ == "__main__":
    unittest.main()
