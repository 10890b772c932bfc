"""Tests of loop.subprocess_exec/subprocess_shell (issue 13): children
spawned and reaped by evloop-process, under asyncio's SubprocessTransport
API, and asyncio.create_subprocess_* on top."""

import asyncio
import errno
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import warnings
import weakref

import evloop
from loopcase import LoopTestCase

PY = sys.executable


def open_fds():
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


class Record(asyncio.SubprocessProtocol):
    """Records every callback, in order."""

    def __init__(self):
        self.transport = None
        self.events = []
        self.data = {1: bytearray(), 2: bytearray()}
        self.got = asyncio.Event()
        self.done = asyncio.Event()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def pipe_data_received(self, fd, data):
        self.data[fd] += data
        self.got.set()

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_lost", fd, exc))

    def process_exited(self):
        self.events.append(("exited", self.transport.get_returncode()))

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.done.set()


class ProcessTestCase(LoopTestCase):
    TIMEOUT = 20

    def exec(self, *args, protocol=Record, **kwargs):
        return self.run_async(self.loop.subprocess_exec(protocol, *args, **kwargs))

    def shell(self, cmd, protocol=Record, **kwargs):
        return self.run_async(self.loop.subprocess_shell(protocol, cmd, **kwargs))

    def finish(self, transport, proto):
        self.run_async(proto.done.wait())
        transport.close()
        return transport.get_returncode()


class TestProtocol(ProcessTestCase):
    def test_events_in_asyncio_order(self):
        code = "import sys; sys.stdout.write(sys.stdin.read().upper()); sys.stderr.write('e')"
        transport, proto = self.exec(PY, "-c", code)
        self.assertIsInstance(transport, asyncio.SubprocessTransport)
        self.assertIs(proto.transport, transport)
        stdin = transport.get_pipe_transport(0)
        self.assertIs(stdin, transport.get_pipe_transport(0))
        self.assertIsInstance(stdin, asyncio.WriteTransport)
        self.assertIsInstance(transport.get_pipe_transport(1), asyncio.ReadTransport)
        stdin.write(b"shout")
        stdin.close()
        self.assertEqual(self.finish(transport, proto), 0)
        self.assertEqual(bytes(proto.data[1]), b"SHOUT")
        self.assertEqual(bytes(proto.data[2]), b"e")
        events = proto.events
        self.assertEqual(events[0], "made")
        self.assertEqual(events[-1], ("lost", None))
        self.assertIn(("exited", 0), events)
        lost = sorted(e[1] for e in events if e[0] == "pipe_lost")
        self.assertEqual(lost, [0, 1, 2])
        self.assertEqual(len(events), 6)
        self.assertIsNone(transport.get_protocol())

    def test_exit_code_and_pid(self):
        transport, proto = self.shell("exit 7", stdin=None, stdout=None, stderr=None)
        self.assertGreater(transport.get_pid(), 0)
        self.assertIsNone(transport.get_pipe_transport(1))
        self.assertEqual(self.finish(transport, proto), 7)
        self.assertEqual(proto.events, ["made", ("exited", 7), ("lost", None)])
        self.assertIn("returncode=7", repr(transport))

    def test_kill_terminate_send_signal(self):
        for method, args, signum in [
            ("kill", (), signal.SIGKILL),
            ("terminate", (), signal.SIGTERM),
            ("send_signal", (signal.SIGUSR1,), signal.SIGUSR1),
        ]:
            transport, proto = self.exec("sleep", "30", stdin=None, stdout=None, stderr=None)
            getattr(transport, method)(*args)
            self.assertEqual(self.finish(transport, proto), -signum)

    def test_bad_signal_number_is_os_error(self):
        transport, proto = self.exec("sleep", "30", stdin=None, stdout=None, stderr=None)
        with self.assertRaises(OSError) as caught:
            transport.send_signal(12345)
        self.assertEqual(caught.exception.errno, errno.EINVAL)
        self.assertIsNone(transport.get_returncode())
        transport.close()
        self.run_async(proto.done.wait())

    def test_kill_after_exit_is_process_lookup_error(self):
        transport, proto = self.shell("exit 0")
        self.finish(transport, proto)
        with self.assertRaises(ProcessLookupError):
            transport.kill()
        with self.assertRaises(ProcessLookupError):
            transport.send_signal(signal.SIGTERM)

    def test_close_kills_a_running_child(self):
        transport, proto = self.exec("sleep", "30")
        self.assertIsNone(transport.get_returncode())
        transport.close()
        self.assertTrue(transport.is_closing())
        self.run_async(proto.done.wait())
        self.assertEqual(transport.get_returncode(), -signal.SIGKILL)
        self.assertEqual(transport.get_pipe_transport(0).is_closing(), True)

    def test_wait_returns_the_returncode(self):
        transport, proto = self.shell("exit 3")
        self.assertEqual(self.run_async(transport._wait()), 3)
        self.assertEqual(self.run_async(transport._wait()), 3)
        transport.close()

    def test_exception_in_a_callback_goes_to_the_handler(self):
        class Boom(Record):
            def pipe_data_received(self, fd, data):
                raise ZeroDivisionError("boom")

        transport, proto = self.shell("echo hi", protocol=Boom)
        self.assertEqual(self.finish(transport, proto), 0)
        self.assertEqual(len(self.handled), 1)
        context = self.handled[0]
        self.assertIsInstance(context["exception"], ZeroDivisionError)
        self.assertIs(context["protocol"], proto)
        self.assertIs(context["transport"], transport)
        self.assertIn("pipe_data_received", context["message"])
        self.assertEqual(proto.events[-1], ("lost", None))

    def test_keyboard_interrupt_in_a_callback_leaves_run_until_complete(self):
        class Interrupt(Record):
            def process_exited(self):
                raise KeyboardInterrupt

        transport, proto = self.exec("cat", protocol=Interrupt)
        transport.get_pipe_transport(0).close()  # cat exits
        with self.assertRaises(KeyboardInterrupt):
            self.run_async(proto.done.wait())
        self.run_async(proto.done.wait())
        transport.close()

    def test_unclosed_transport_warns(self):
        transport, proto = self.shell("exit 0")
        self.run_async(proto.done.wait())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del transport, proto
            gc.collect()
        messages = [str(w.message) for w in caught if w.category is ResourceWarning]
        self.assertTrue(any("unclosed transport" in m for m in messages), messages)

    def test_loop_closed_under_a_running_child_lets_go_of_the_transport(self):
        for keep in (False, True):
            loop = evloop.new_event_loop()
            transport, proto = loop.run_until_complete(loop.subprocess_exec(Record, "sleep", "30"))
            pid = transport.get_pid()
            ref = weakref.ref(transport)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if not keep:
                    del transport, proto  # only the loop holds them
                loop.close()  # kills the child, reaps it in a thread
                if keep:
                    del transport, proto
                gc.collect()
            self.assertIsNone(ref())
            messages = [str(w.message) for w in caught if w.category is ResourceWarning]
            self.assertTrue(any("unclosed transport" in m for m in messages), messages)
            for _ in range(100):
                if pid not in _children():
                    break
                time.sleep(0.01)
            self.assertNotIn(pid, _children())

    def test_debug_mode_logs_the_spawn_and_a_kill_on_close(self):
        self.loop.set_debug(True)
        with self.assertLogs("asyncio", "DEBUG") as logs:
            transport, proto = self.exec("/bin/sh", "-c", "sleep 30 # secret", stdin=None)
            transport.close()
            self.run_async(proto.done.wait())
        text = "\n".join(logs.output)
        self.assertIn("execute program '/bin/sh' stdout=<pipe> stderr=<pipe>", text)
        self.assertIn("Close running child process: kill", text)
        self.assertNotIn("secret", text)


class TestStdio(ProcessTestCase):
    def test_stderr_to_stdout(self):
        transport, proto = self.shell("echo out; echo err >&2", stderr=subprocess.STDOUT)
        self.assertIsNone(transport.get_pipe_transport(2))
        self.assertEqual(self.finish(transport, proto), 0)
        self.assertEqual(bytes(proto.data[1]), b"out\nerr\n")

    def test_devnull(self):
        transport, proto = self.exec(
            PY,
            "-c",
            "import sys; print(len(sys.stdin.read())); print('x', file=sys.stderr)",
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.assertEqual(self.finish(transport, proto), 0)
        self.assertEqual(bytes(proto.data[1]), b"0\n")
        self.assertEqual(bytes(proto.data[2]), b"")

    def test_fd_and_file_object(self):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            transport, proto = self.shell("echo to-fd; echo to-file >&2", stdout=out.fileno(), stderr=err)
            self.assertEqual(self.finish(transport, proto), 0)
            out.seek(0)
            err.seek(0)
            self.assertEqual(out.read(), b"to-fd\n")
            self.assertEqual(err.read(), b"to-file\n")
            self.assertFalse(out.closed)

    def test_bad_stdio(self):
        with self.assertRaises(ValueError):
            self.shell("true", stdout=subprocess.STDOUT)
        with self.assertRaises(ValueError):
            self.shell("true", stdout=-7)
        with self.assertRaises(AttributeError):
            self.shell("true", stdout="not a file")


class TestOptions(ProcessTestCase):
    def test_cwd_and_env(self):
        with tempfile.TemporaryDirectory() as tmp:
            transport, proto = self.exec(
                "/bin/sh", "-c", 'pwd; echo "$ONLY"; echo "${HOME-unset}"', cwd=tmp, env={"ONLY": "this"}
            )
            self.assertEqual(self.finish(transport, proto), 0)
            self.assertEqual(
                bytes(proto.data[1]).decode().split("\n"),
                [os.path.realpath(tmp), "this", "unset", ""],
            )

    def test_pass_fds_reach_the_child_and_stay_open(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        code = f"import os; os.write({w}, b'passed')"
        transport, proto = self.exec(PY, "-c", code, pass_fds=(w,))
        self.assertEqual(self.finish(transport, proto), 0)
        self.assertEqual(os.read(r, 100), b"passed")
        os.write(w, b"mine")  # still open in the parent
        self.assertEqual(os.read(r, 100), b"mine")

    def test_fds_not_passed_do_not_reach_the_child(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        os.set_inheritable(w, True)
        code = "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"
        transport, proto = self.exec(PY, "-c", code)
        self.finish(transport, proto)
        self.assertNotIn(w, eval(bytes(proto.data[1])))
        # close_fds=False: Popen's rule, inheritable fds are inherited.
        transport, proto = self.exec(PY, "-c", code, close_fds=False)
        self.finish(transport, proto)
        self.assertIn(w, eval(bytes(proto.data[1])))

    def test_start_new_session_and_process_group(self):
        code = "import os; print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())"
        transport, proto = self.exec(PY, "-c", code, start_new_session=True)
        self.finish(transport, proto)
        self.assertEqual(bytes(proto.data[1]), b"True True\n")
        transport, proto = self.exec(PY, "-c", code, process_group=0)
        self.finish(transport, proto)
        self.assertEqual(bytes(proto.data[1]), b"False True\n")

    def test_umask(self):
        transport, proto = self.shell("umask", umask=0o027)
        self.finish(transport, proto)
        self.assertEqual(bytes(proto.data[1]).strip(), b"0027")


class TestArguments(ProcessTestCase):
    def test_asyncio_value_errors(self):
        for kwargs in [
            {"universal_newlines": True},
            {"bufsize": 4096},
            {"text": True},
            {"encoding": "utf-8"},
            {"errors": "strict"},
        ]:
            with self.subTest(**kwargs), self.assertRaises(ValueError):
                self.exec("true", **kwargs)
            with self.subTest(shell=True, **kwargs), self.assertRaises(ValueError):
                self.shell("true", **kwargs)
        with self.assertRaisesRegex(ValueError, "shell must be False"):
            self.exec("true", shell=True)
        with self.assertRaisesRegex(ValueError, "shell must be True"):
            self.shell("true", shell=False)
        with self.assertRaisesRegex(ValueError, "cmd must be a string"):
            self.shell(["ls", "-l"])

    def test_bad_program_types_and_names(self):
        with self.assertRaises(TypeError):
            self.exec(42)
        with self.assertRaises(TypeError):
            self.exec("echo", None)
        with self.assertRaises(ValueError):
            self.exec("ec\0ho")
        with self.assertRaises(FileNotFoundError):
            self.exec("/nonexistent/program")
        with self.assertRaises(PermissionError):
            self.exec("/dev/null")

    def test_unsupported_popen_arguments_are_clear_errors(self):
        with self.assertRaisesRegex(ValueError, "preexec_fn"):
            self.exec("true", preexec_fn=lambda: None)
        with self.assertRaisesRegex(ValueError, "user"):
            self.exec("true", user="nobody")
        with self.assertRaisesRegex(ValueError, "restore_signals"):
            self.exec("true", restore_signals=False)
        with self.assertRaisesRegex(TypeError, "no_such_option"):
            self.exec("true", no_such_option=1)
        with self.assertRaisesRegex(ValueError, "illegal environment variable name"):
            self.exec("true", env={"A=B": "c"})

    def test_path_like_program_and_arguments(self):
        import pathlib

        transport, proto = self.exec(pathlib.Path("/bin/echo"), pathlib.Path("a/b"), b"c")
        self.finish(transport, proto)
        self.assertEqual(bytes(proto.data[1]), b"a/b c\n")


class TestStreams(ProcessTestCase):
    def test_communicate_with_large_data(self):
        data = os.urandom(4 << 20)

        async def main():
            proc = await asyncio.create_subprocess_exec(
                "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            out, err = await proc.communicate(data)
            return out, err, proc.returncode

        out, err, code = self.run_async(main())
        self.assertEqual(code, 0)
        self.assertEqual(err, b"")
        self.assertEqual(out, data)

    def test_shell_streams_readline_and_wait(self):
        async def main():
            proc = await asyncio.create_subprocess_shell(
                "read x; echo got $x; exit 5", stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            proc.stdin.write(b"line\n")
            await proc.stdin.drain()
            line = await proc.stdout.readline()
            return line, await proc.wait()

        self.assertEqual(self.run_async(main()), (b"got line\n", 5))

    def test_cancelled_create_kills_and_reaps_the_child(self):
        async def main():
            task = self.loop.create_task(asyncio.create_subprocess_exec("sleep", "30"))
            await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        before = open_fds()
        children = _children()
        self.run_async(main())
        self.run_async(asyncio.sleep(0.2))
        self.assertEqual(_children(), children)
        self.assertEqual(open_fds(), before)

    def test_child_watcher_users_do_not_break(self):
        if not hasattr(asyncio, "get_child_watcher"):
            self.skipTest("no child watchers in this Python")
        policy = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(evloop.EventLoopPolicy())
        self.addCleanup(asyncio.set_event_loop_policy, policy)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            watcher = asyncio.get_child_watcher()
            watcher.attach_loop(self.loop)

        async def main():
            proc = await asyncio.create_subprocess_shell("exit 4")
            return await proc.wait()

        self.assertEqual(self.run_async(main()), 4)


class TestLifetime(ProcessTestCase):
    def test_fds_are_closed_after_the_process_and_transports(self):
        before = open_fds()

        async def main():
            for _ in range(10):
                proc = await asyncio.create_subprocess_exec(
                    "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                out, _ = await proc.communicate(b"x")
                self.assertEqual(out, b"x")
            await asyncio.sleep(0.01)

        self.run_async(main())
        gc.collect()
        self.assertEqual(open_fds(), before)

    def test_children_are_reaped(self):
        children = _children()

        async def main():
            procs = [await asyncio.create_subprocess_shell("exit 0") for _ in range(5)]
            return [await p.wait() for p in procs]

        self.assertEqual(self.run_async(main()), [0] * 5)
        self.assertEqual(_children(), children)


def _children():
    """Our child processes, zombies included."""
    me = str(os.getpid())
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            found.add(int(pid))
    return found


if __name__ == "__main__":
    unittest.main()
