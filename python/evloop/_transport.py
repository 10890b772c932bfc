"""What evloop's stream and datagram transports share under asyncio's API:
closing, the write buffer, the protocol, and ``get_extra_info`` (whose
``'socket'`` is an ``asyncio.trsock.TransportSocket`` over a *duplicate* of
the fd, closed once the transport is, unless the caller passed ``sock=``).
"""

from __future__ import annotations

import os
import socket
import threading
import warnings

from asyncio import trsock

# Kept in ``_extra`` (hidden from get_extra_info): the thread that made the
# transport (its loop's; the Rust transport may only be touched there, also
# from ``__del__``), and, until the transport is closed, aborted or lost, a
# mark that makes ``__del__`` warn (asyncio's "unclosed transport").
_OWNER = "_evloop_owner_thread"
_OPEN = "_evloop_open"


class CoreTransportMixin:
    """Delegates to ``self._core`` (the Rust transport); the class using it
    defines ``_core`` and ``_sock`` slots and a ``_KIND`` name."""

    __slots__ = ()
    _KIND = "Transport"

    def __init__(self, extra=None):
        super().__init__(extra)
        self._extra[_OWNER] = threading.get_ident()
        self._extra[_OPEN] = True

    def __del__(self, _warn=warnings.warn):
        # As asyncio's _SelectorTransport.__del__: a transport collected
        # while still open warns, and is closed.
        extra = getattr(self, "_extra", {})
        if not extra.get(_OPEN):
            return
        _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
        core = getattr(self, "_core", None)
        if core is not None and extra.get(_OWNER) == threading.get_ident():
            core.abort()

    def __repr__(self):
        if self._extra.get(_OWNER) != threading.get_ident():
            # Another thread (a finalizer's): the Rust transport is not ours.
            return f"<evloop.{self._KIND}>"
        state = "closing" if self._core.is_closing() else "open"
        return f"<evloop.{self._KIND} fd={self._core.fileno()} {state}>"

    def close(self):
        self._extra.pop(_OPEN, None)
        self._core.close()

    def abort(self):
        self._extra.pop(_OPEN, None)
        self._core.abort()

    def is_closing(self):
        return self._core.is_closing()

    def get_write_buffer_size(self):
        return self._core.get_write_buffer_size()

    def get_write_buffer_limits(self):
        return self._core.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        self._core.set_write_buffer_limits(high, low)

    def get_protocol(self):
        return self._core.get_protocol()

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    def get_extra_info(self, name, default=None):
        if name == "peername":
            value = self._core.peername()
        elif name == "sockname":
            value = self._core.sockname()
        elif name == "socket":
            value = self._socket()
        elif name in (_OWNER, _OPEN):
            return default
        else:
            return self._extra.get(name, default)
        return default if value is None else value

    def _socket(self):
        if self._sock is None:
            fd = self._core.fileno()
            if fd is None:
                return None
            self._sock = trsock.TransportSocket(socket.socket(fileno=os.dup(fd)))
        return self._sock

    def _adopt(self, sock):
        """Makes the caller's sock= object this transport's 'socket'."""
        if sock is None:
            return
        old, self._sock = self._sock, trsock.TransportSocket(sock)
        if old is not None:
            old._sock.close()
        if self._core.fileno() is None:  # closed or lost already
            self._forget_socket()

    def _forget_socket(self):
        # Called by the Rust side once the transport is closed or lost.
        self._extra.pop(_OPEN, None)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock._sock.close()

    def _hand_over(self, upgraded):
        """``start_tls`` made this transport carry ``upgraded``'s TLS
        records: closing it is ``upgraded``'s business now (no "unclosed
        transport" warning for it), and its socket object (the caller's
        sock=, or one made for get_extra_info) is ``upgraded``'s, closed
        when that one is lost."""
        self._extra.pop(_OPEN, None)
        upgraded._sock, self._sock = self._sock, None
