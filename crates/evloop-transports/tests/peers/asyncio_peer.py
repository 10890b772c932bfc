"""An asyncio peer for evloop's interop tests (CPython 3.11 asyncio).

Modes:
  tcp-echo-server              echo server on 127.0.0.1:<ephemeral>; prints the port
  unix-echo-server PATH        echo server on a unix socket; prints "ready"
  tcp-client HOST PORT NBYTES  sends NBYTES of a pattern, reads them back,
                               checks them, prints "ok NBYTES"
Servers exit when stdin closes (the test drops the pipe) or after 60 s.
"""
import asyncio
import sys


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def wait_for_stdin_eof():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def serve(server, announce):
    print(announce, flush=True)
    async with server:
        try:
            await asyncio.wait_for(wait_for_stdin_eof(), 60)
        except asyncio.TimeoutError:
            pass


def pattern(n):
    return bytes((i * 7 + 3) % 251 for i in range(n))


async def client(host, port, nbytes):
    reader, writer = await asyncio.open_connection(host, port)
    data = pattern(nbytes)
    writer.write(data)
    await writer.drain()
    got = await reader.readexactly(nbytes)
    writer.close()
    await writer.wait_closed()
    if got != data:
        print("mismatch", flush=True)
        sys.exit(1)
    print(f"ok {nbytes}", flush=True)


async def main(argv):
    mode = argv[1]
    if mode == "tcp-echo-server":
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        await serve(server, server.sockets[0].getsockname()[1])
    elif mode == "unix-echo-server":
        server = await asyncio.start_unix_server(echo, argv[2])
        await serve(server, "ready")
    elif mode == "tcp-client":
        await client(argv[2], int(argv[3]), int(argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv))
