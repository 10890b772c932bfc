"""The event loops the Python benchmarks compare, selectable by name.

``asyncio`` is CPython's default loop; ``uvloop``, ``rloop`` and ``rsloop``
come from PyPI, ``evloop`` from this repository (``pip install ./python``);
bench/python/setup-venv.sh installs them all into target/bench-venv.

    from loops import LOOPS, loop_factory
    new_loop, version = loop_factory("uvloop")
"""

import asyncio
import functools
import importlib

# The order of a benchmark round. ``evloop-relaxed`` is evloop with
# ``relaxed_io_poll=True`` (I/O polled every 64 callbacks or 1 ms while
# callbacks are ready, not every iteration as asyncio does); ``evloop-native``
# is evloop with ``evloop.use_native_streams()`` (asyncio.start_server and
# open_connection give evloop's native streams, as rsloop's do its own).
LOOPS = (
    "asyncio",
    "uvloop",
    "rloop",
    "rsloop",
    "evloop",
    "evloop-native",
    "evloop-relaxed",
)


def loop_factory(name):
    """``(new_event_loop, "name version")`` for loop ``name``.

    Raises ``ImportError`` (with the reason) when the loop's package is not
    installed, ``ValueError`` for a name not in ``LOOPS``.
    """
    if name not in LOOPS:
        raise ValueError(f"unknown loop {name!r} (known: {', '.join(LOOPS)})")
    if name == "asyncio":
        probe = asyncio.new_event_loop()
        kind = type(probe).__name__
        probe.close()
        return asyncio.new_event_loop, f"asyncio ({kind})"
    if name == "evloop-relaxed":
        import evloop

        new_loop, version = loop_factory("evloop")
        return functools.partial(evloop.Loop, relaxed_io_poll=True), f"{version}, relaxed"
    if name == "evloop-native":
        import evloop

        evloop.use_native_streams()
        new_loop, version = loop_factory("evloop")
        return new_loop, f"{version}, native streams"
    module = importlib.import_module(name)
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            from importlib import metadata

            version = metadata.version(name)
        except Exception:  # noqa: BLE001 (a version is only informative)
            version = "?"
    return module.new_event_loop, f"{name} {version}"


def run(name, main):
    """Runs coroutine ``main`` to completion on a new loop ``name``, with
    ``asyncio.run``'s cleanup (cancel leftover tasks, async generators,
    the default executor)."""
    new_loop, _ = loop_factory(name)
    loop = new_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
