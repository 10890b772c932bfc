"""evloop's native asyncio streams (the implementation is ``evloop._streams``).

``open_connection``, ``start_server``, ``open_unix_connection`` and
``start_unix_server`` have asyncio's signatures and semantics and need a
running evloop loop; ``evloop.use_native_streams()`` makes asyncio's own
functions of those names use them whenever the running loop is evloop's.
"""

from ._streams import (  # noqa: F401
    StreamReader,
    StreamReaderProtocol,
    StreamWriter,
    open_connection,
    open_unix_connection,
    start_server,
    start_unix_server,
    use_native_streams,
)

__all__ = (
    "StreamReader",
    "StreamWriter",
    "StreamReaderProtocol",
    "open_connection",
    "start_server",
    "open_unix_connection",
    "start_unix_server",
    "use_native_streams",
)
