"""Signal handlers for ``evloop.Loop`` over evloop's signals crate.

evloop installs the ``sigaction`` handler and wakes the loop through its own
pipe; the signal's ``Handle`` runs on the loop (an exception goes to the
exception handler). The checks and errors are asyncio's
(``_UnixSelectorEventLoop.add_signal_handler``).
"""

from __future__ import annotations

import signal
import threading

from asyncio import coroutines

from . import _core


class SignalMixin:
    """``add_signal_handler``/``remove_signal_handler`` for ``evloop.Loop``."""

    def add_signal_handler(self, sig, callback, *args):
        """Run ``callback(*args)`` on the loop whenever ``sig`` arrives.

        Raise ValueError for an invalid signal number, RuntimeError for an
        uncatchable one or off the main thread, TypeError for a coroutine.
        """
        if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        _check_signal(sig)
        self._check_closed()
        if threading.current_thread() is not threading.main_thread():
            # asyncio's wording, from signal.set_wakeup_fd.
            raise RuntimeError("set_wakeup_fd only works in main thread of the main interpreter")
        handle = _core.add_signal_handler(self, sig, callback, args)
        self._signal_handlers[sig] = handle

    def remove_signal_handler(self, sig):
        """Stop handling ``sig``; True if it was handled. The default
        disposition comes back (``default_int_handler`` for SIGINT)."""
        _check_signal(sig)
        handle = self._signal_handlers.pop(sig, None)
        if handle is None:
            return False
        handle.cancel()
        _core.remove_signal_handler(self, sig)
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            # Python's own handler again (evloop left SIG_DFL).
            signal.signal(sig, handler)
        except ValueError:
            # Not the main thread (a loop closed elsewhere): SIG_DFL stays.
            pass
        return True

    def _remove_signal_handlers(self):
        """Remove every handler (on close), as asyncio does."""
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)


def _check_signal(sig):
    if not isinstance(sig, int):
        raise TypeError(f"sig must be an int, not {sig!r}")
    if sig not in signal.valid_signals():
        raise ValueError(f"invalid signal number {sig}")
