"""evloop's native asyncio streams (the implementation is ``evloop._streams``).

``open_connection``, ``start_server``, ``open_unix_connection`` and
``start_unix_server`` have asyncio's signatures and semantics and need a
running evloop loop; ``evloop.use_native_streams()`` makes asyncio's own
functions of those names use them whenever the running loop is evloop's.
"""

from ._streams import *  # noqa: F401,F403 (the names of __all__)
from ._streams import __all__  # noqa: F401
