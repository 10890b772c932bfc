"""evloop: Python asyncio's event loop, run by evloop (Rust).

``evloop.Loop`` is an ``asyncio.AbstractEventLoop`` whose ready queue,
timers, fd watchers and cross-thread wake-ups are evloop's (the extension
module ``evloop._core``); this module adds only the glue asyncio expects in
Python: futures and tasks (asyncio's own, C-accelerated), the exception
handler, async generator hooks, the default executor.

TCP and unix stream connections and servers are evloop's transports
(``evloop._net``), as are UDP and unix datagram endpoints (``evloop._udp``),
the ``sock_*`` coroutines (``evloop._sock``), ``sendfile`` and
``sock_sendfile`` (``evloop._sendfile``), signal handlers
(``evloop._signals``), pipes (``evloop._pipes``), subprocesses
(``evloop._process``) and TLS (``evloop._tls``, evloop-tls over rustls).

Native asyncio streams (``evloop.streams``: ``open_connection``,
``start_server`` and their unix variants over Rust readers and writers)
are opt-in: ``evloop.use_native_streams()`` makes asyncio's functions of
those names use them on evloop loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import socket
import sys
import threading
import warnings
import weakref

from asyncio import constants, coroutines, events

from ._core import Handle, TimerHandle, _CoreLoop
from ._net import NetworkMixin, Server, SSLTransport, StreamTransport
from ._sendfile import SendfileMixin
from ._pipes import PipeMixin, ReadPipeTransport, WritePipeTransport
from ._process import ProcessMixin, SubprocessTransport
from ._signals import SignalMixin
from ._sock import SockMixin
from . import streams
from ._streams import use_native_streams
from ._tls import TLSMixin
from ._udp import DatagramMixin, DatagramTransport

__all__ = (
    "Loop",
    "Handle",
    "TimerHandle",
    "StreamTransport",
    "SSLTransport",
    "DatagramTransport",
    "ReadPipeTransport",
    "WritePipeTransport",
    "SubprocessTransport",
    "Server",
    "EventLoopPolicy",
    "new_event_loop",
    "install",
    "run",
    "streams",
    "use_native_streams",
)

logger = logging.getLogger("asyncio")

class Loop(
    _CoreLoop,
    NetworkMixin,
    DatagramMixin,
    SockMixin,
    SignalMixin,
    SendfileMixin,
    PipeMixin,
    ProcessMixin,
    TLSMixin,
    asyncio.AbstractEventLoop,
):
    """An asyncio event loop whose machinery is evloop's."""

    def __init__(self, *, relaxed_io_poll=False):
        """``relaxed_io_poll=True``: while callbacks are ready, poll for I/O
        only every 64 callbacks or 1 ms, not every iteration (evloop's
        ``IoPolling::RELAXED``; asyncio polls every iteration)."""
        self._threadsafe = self._remote()
        self._debug = coroutines._is_debug_mode()
        self._exception_handler = None
        self._task_factory = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._thread_id = None
        self._wakeup = None
        self._signal_handlers = {}
        self.slow_callback_duration = 0.1
        self._current_handle = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None

    def __repr__(self):
        # Safe from any thread (a finalizer's, a warning's).
        return (
            f"<{self.__class__.__name__} running={self._thread_id is not None} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    def __del__(self, _warn=warnings.warn):
        # As asyncio's BaseEventLoop.__del__: an unclosed loop warns and,
        # unless it runs, is closed, on whatever thread lets go of it.
        threadsafe = self.__dict__.get("_threadsafe")
        if threadsafe is None or threadsafe.is_closed():
            return
        _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
        if not self._on_loop_thread():
            # evloop's loop is closed when _CoreLoop is freed, right after
            # this (its close is refused here); the executor goes now, as in
            # close(). Another thread's last reference: it does not run.
            self._shutdown_default_executor_nowait()
        elif self._thread_id is None:
            self.close()

    # -- running ------------------------------------------------------

    def _check_closed(self):
        if self.is_closed():
            raise RuntimeError("Event loop is closed")

    def _check_running(self):
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def run_forever(self):
        """Run until stop() is called."""
        self._check_closed()
        self._check_running()
        old_hooks = sys.get_asyncgen_hooks()
        self._thread_id = threading.get_ident()
        sys.set_asyncgen_hooks(
            firstiter=self._asyncgen_firstiter_hook,
            finalizer=self._asyncgen_finalizer_hook,
        )
        events._set_running_loop(self)
        self._set_coroutine_origin_tracking(self._debug)
        self._watch_signals()
        try:
            self._run_forever()
        finally:
            self._unwatch_signals()
            self._set_coroutine_origin_tracking(False)
            self._thread_id = None
            events._set_running_loop(None)
            sys.set_asyncgen_hooks(*old_hooks)

    def run_until_complete(self, future):
        """Run until the future is done and return its result (or raise)."""
        self._check_closed()
        self._check_running()
        new_task = not asyncio.isfuture(future)
        future = asyncio.ensure_future(future, loop=self)
        if new_task:
            # An exception in a task we made is raised here: no need to log
            # "exception was never retrieved".
            future._log_destroy_pending = False
        future.add_done_callback(_stop_loop)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                future.exception()
            raise
        finally:
            future.remove_done_callback(_stop_loop)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def close(self):
        """Close the loop: pending callbacks are dropped, the default
        executor is shut down without waiting."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        self._remove_signal_handlers()
        self._close()
        self._shutdown_default_executor_nowait()

    def _shutdown_default_executor_nowait(self):
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    # -- signals: wake the sleeping loop so Python handlers run at once --

    def _watch_signals(self):
        """While running on the main thread, signals wake the loop (as
        asyncio does with ``signal.set_wakeup_fd``), so a handler (SIGINT's
        KeyboardInterrupt) runs at once, not at the next timer."""
        if threading.current_thread() is not threading.main_thread():
            return
        rsock, wsock = socket.socketpair()
        rsock.setblocking(False)
        wsock.setblocking(False)
        try:
            old = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):
            rsock.close()
            wsock.close()
            return
        if old != -1:
            # Someone else owns the wakeup fd: leave it to them.
            signal.set_wakeup_fd(old)
            rsock.close()
            wsock.close()
            return
        try:
            # Only to wake a sleeping loop: Python runs the handlers
            # between bytecodes, so a busy loop need not poll it.
            self._add_wakeup_reader(rsock.fileno(), _drain, rsock)
        except BaseException:
            signal.set_wakeup_fd(-1)
            rsock.close()
            wsock.close()
            raise
        self._wakeup = (rsock, wsock)

    def _unwatch_signals(self):
        if self._wakeup is None:
            return
        rsock, wsock = self._wakeup
        self._wakeup = None
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        if not self.is_closed():
            self.remove_reader(rsock.fileno())
        rsock.close()
        wsock.close()

    # -- threads --------------------------------------------------------

    def is_closed(self):
        """True once closed. Safe from any thread: asyncio's wrap_future
        asks it from the executor's worker thread (Python 3.11.7+), and
        _CoreLoop is bound to the loop's thread."""
        return self._threadsafe.is_closed()

    # call_soon_threadsafe is _CoreLoop's (Rust, safe from any thread).

    def run_in_executor(self, executor, func, *args):
        """Run func(*args) in an executor (a ThreadPoolExecutor by default)."""
        self._check_closed()
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="evloop")
                self._default_executor = executor
        return asyncio.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        """Use executor for run_in_executor(None, ...)."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor")
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout=None):
        """Shut the default executor down, waiting for its threads."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        try:
            await future
        finally:
            thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "The executor did not finishing joining its threads within %s seconds.",
                timeout,
            )
            self._default_executor.shutdown(wait=False)

    def _do_shutdown(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self._threadsafe.is_closed():
                self.call_soon_threadsafe(_set_result_unless_done, future, None)
        except Exception as ex:
            if not self._threadsafe.is_closed():
                self.call_soon_threadsafe(_set_exception_unless_done, future, ex)

    # -- futures and tasks: asyncio's own ---------------------------------

    # create_future is _LoopBase's (Rust).

    def create_task(self, coro, *, name=None, context=None):
        """Schedule a coroutine as an asyncio.Task (or the task factory's)."""
        self._check_closed()
        if self._task_factory is None:
            if context is None:
                task = asyncio.Task(coro, loop=self, name=name)
            else:  # Task takes a context from Python 3.11 on.
                task = asyncio.Task(coro, loop=self, name=name, context=context)
            if task._source_traceback:
                del task._source_traceback[-1]
        else:
            if context is None:
                task = self._task_factory(self, coro)
            else:
                task = self._task_factory(self, coro, context=context)
            if name is not None:
                task.set_name(name)
        return task

    def set_task_factory(self, factory):
        """Use factory(loop, coro[, context=]) in create_task; None resets."""
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self):
        """The task factory, or None."""
        return self._task_factory

    # -- async generators -----------------------------------------------

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:

            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning,
                source=self,
            )
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        # May run on any thread (the generator's finalizer).
        if not self._threadsafe.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    async def shutdown_asyncgens(self):
        """Close every async generator still open on this loop."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await asyncio.gather(*[ag.aclose() for ag in closing], return_exceptions=True)
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": f"an error occurred during closing of "
                        f"asynchronous generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )

    # -- errors -----------------------------------------------------------

    def get_exception_handler(self):
        """The custom exception handler, or None."""
        return self._exception_handler

    def set_exception_handler(self, handler):
        """Use handler(loop, context) for errors; None restores the default."""
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the error as asyncio does."""
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        exc_info = (type(exception), exception, exception.__traceback__) if exception else False
        current = self._current_handle
        if "source_traceback" not in context and current is not None:
            # Debug mode: where the handle that is running was created.
            traceback = current._source_traceback
            if traceback:
                context["handle_traceback"] = traceback
        lines = [message]
        for key in sorted(context):
            if key in {"message", "exception"}:
                continue
            value = context[key]
            if key == "source_traceback":
                value = "Object created at (most recent call last):\n" + "".join(
                    __import__("traceback").format_list(value)
                ).rstrip()
            elif key == "handle_traceback":
                value = "Handle created at (most recent call last):\n" + "".join(
                    __import__("traceback").format_list(value)
                ).rstrip()
            else:
                value = repr(value)
            lines.append(f"{key}: {value}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Send context to the exception handler (asyncio's rules: a failing
        handler is logged, never raised)."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler(
                    {
                        "message": "Unhandled error in exception handler",
                        "exception": exc,
                        "context": context,
                    }
                )
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error(
                    "Exception in default exception handler while handling an "
                    "unexpected error in custom exception handler",
                    exc_info=True,
                )

    # -- debug ------------------------------------------------------------

    # get_debug is _LoopBase's (Rust).

    def set_debug(self, enabled):
        """Turn debug mode on or off (slow-callback warnings, handle
        tracebacks, the thread checks of call_soon & co.)."""
        self._debug = bool(enabled)
        if self._thread_id is None:
            return
        if self._on_loop_thread():
            self._apply_debug()
        else:
            self.call_soon_threadsafe(self._apply_debug)

    def _apply_debug(self):
        # The running loop's share of set_debug.
        self._sync_debug()
        self._set_coroutine_origin_tracking(self._debug)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(constants.DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    def _run_handle_debug(self, handle):
        """Debug mode's run of a handle (called by evloop for each one while
        a loop in debug mode runs): asyncio's slow-callback warning, and the
        handle as ``_current_handle`` for the exception handler."""
        self._current_handle = handle
        try:
            start = self.time()
            handle._run()
            took = self.time() - start
            if took >= self.slow_callback_duration:
                logger.warning("Executing %s took %.3f seconds", _format_handle(handle), took)
        finally:
            self._current_handle = None


def _format_handle(handle):
    """A handle as the slow-callback warning names it: the task whose step
    it runs, else the handle."""
    owner = getattr(handle._callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return repr(owner)
    return str(handle)


def _stop_loop(future):
    loop = future.get_loop()
    if not loop.is_closed():
        loop.stop()


def _drain(sock):
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass


def _set_result_unless_done(future, result):
    if not future.done():
        future.set_result(result)


def _set_exception_unless_done(future, exc):
    if not future.done():
        future.set_exception(exc)


def new_event_loop():
    """A new evloop.Loop."""
    return Loop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making evloop loops."""

    def new_event_loop(self):
        return Loop()


def install():
    """Make evloop the loop of asyncio.new_event_loop() and friends."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """Run a coroutine on a new evloop loop, with asyncio.run's semantics."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop):
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for task in pending:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during evloop.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
