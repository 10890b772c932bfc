#!/usr/bin/env python3
"""Echo server on a Python event loop for `cargo xtask bench` and
`cargo xtask bench python`.

The command-line contract of the evloop `echo_server` example (README,
contract example 5), TCP and unix only:

    echo_server.py [--loop asyncio|uvloop|rloop|rsloop|evloop] [--streams]
                   [--native-streams] [--tcp HOST:PORT ...] [--unix PATH ...]
                   [--tls-cert PEM --tls-key PEM]

One flushed `listening on tcp HOST:PORT` / `listening on unix PATH` line per
listener (port 0 picks a free port); on SIGINT or SIGTERM it closes the
servers, waits for them, removes the socket files, prints `shutdown` and
exits 0. The echo is a plain `asyncio.Protocol` (`data_received` ->
`transport.write`), the fastest way any loop offers; with `--streams` it is
asyncio streams instead (`asyncio.start_server`: `await reader.read()`,
`writer.write`, `await writer.drain()`), the way most code is written. `--native-streams` calls
`evloop.use_native_streams()` first when the loop is evloop's (so that
`asyncio.start_server` gives evloop's Rust streams) and is ignored for the
other loops.
Every loop here sets TCP_NODELAY on accepted TCP sockets (asyncio, uvloop
and evloop by themselves; the server sets it for the others).

With `--tls-cert PEM --tls-key PEM` (for `cargo xtask bench tls`) the TCP
listeners speak TLS through the `ssl` module (`ssl.SSLContext(
PROTOCOL_TLS_SERVER)`, `load_cert_chain`, everything else default) and say
`listening on tls HOST:PORT`; unix listeners stay plain.
"""

import argparse
import asyncio
import os
import signal
import socket
import ssl
import sys

from loops import LOOPS, run

# What one streams read asks for (the largest benchmark message).
READ_SIZE = 256 * 1024
# Loops whose add_signal_handler leaves Python's own SIGINT handler in
# place (rsloop 0.1: KeyboardInterrupt instead of the handler): these stop
# through signal.signal instead.
PLAIN_SIGNALS = ("rsloop",)


class Echo(asyncio.Protocol):
    """Writes back every chunk it receives; closes on EOF."""

    def connection_made(self, transport):
        self.transport = transport
        nodelay(transport)

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        # Returning a false value closes the transport once writes drain.
        return False


def nodelay(transport):
    """Sets TCP_NODELAY on a TCP transport's socket (a no-op where the loop
    did so already, or for unix sockets)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


async def echo_stream(reader, writer):
    """The streams echo: read what came, write it back, wait for the drain."""
    nodelay(writer.transport)
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def split_host_port(addr):
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise SystemExit(f"echo_server.py: --tcp wants HOST:PORT, got {addr!r}")
    return host.strip("[]"), int(port)


async def serve(args):
    loop = asyncio.get_running_loop()
    servers = []
    lines = []
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    for addr in args.tcp:
        host, port = split_host_port(addr)
        if args.streams:
            server = await asyncio.start_server(echo_stream, host, port, ssl=context)
        else:
            server = await loop.create_server(Echo, host, port, ssl=context)
        sockname = server.sockets[0].getsockname()
        shown = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
        kind = "tls" if context else "tcp"
        lines.append(f"listening on {kind} {shown}:{sockname[1]}")
        servers.append(server)
    for path in args.unix:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        if args.streams:
            server = await asyncio.start_unix_server(echo_stream, path)
        else:
            server = await loop.create_unix_server(Echo, path)
        lines.append(f"listening on unix {path}")
        servers.append(server)
    for line in lines:
        print(line, flush=True)

    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if args.loop in PLAIN_SIGNALS:
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))
            continue
        try:
            loop.add_signal_handler(signum, stop.set)
        except NotImplementedError:
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))
    await stop.wait()
    for server in servers:
        server.close()
    for server in servers:
        await server.wait_closed()
    for path in args.unix:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    print("shutdown", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--streams", action="store_true", help="asyncio streams echo")
    parser.add_argument(
        "--native-streams",
        action="store_true",
        help="with --loop evloop*: evloop.use_native_streams() (ignored otherwise)",
    )
    parser.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--unix", action="append", default=[], metavar="PATH")
    parser.add_argument("--tls-cert", metavar="PEM")
    parser.add_argument("--tls-key", metavar="PEM")
    args = parser.parse_args()
    if not args.tcp and not args.unix:
        parser.error("give at least one --tcp HOST:PORT or --unix PATH")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.native_streams and args.loop.startswith("evloop"):
        import evloop

        evloop.use_native_streams()
    run(args.loop, serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
