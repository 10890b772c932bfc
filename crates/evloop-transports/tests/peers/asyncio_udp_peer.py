"""A Python asyncio UDP peer for evloop's interop test (udp_interop.rs).

Binds 127.0.0.1 on an ephemeral port with the stock asyncio event loop,
prints the port on the first stdout line, then answers each datagram:

* b"whoami"  -> the sender's address as seen by asyncio, "host:port"
* b"quit"    -> b"bye", then exits 0
* anything else is echoed back unchanged (one datagram per datagram).

Exits 1 by itself after 30 s so a failed test never leaves it behind.
"""

import asyncio
import sys


class Echo(asyncio.DatagramProtocol):
    def __init__(self, done):
        self.done = done
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if data == b"whoami":
            self.transport.sendto(f"{addr[0]}:{addr[1]}".encode(), addr)
        elif data == b"quit":
            self.transport.sendto(b"bye", addr)
            self.done.set_result(None)
        else:
            self.transport.sendto(data, addr)

    def error_received(self, exc):
        print(f"error_received: {exc!r}", file=sys.stderr)


async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: Echo(done), local_addr=("127.0.0.1", 0)
    )
    print(transport.get_extra_info("sockname")[1], flush=True)
    try:
        await asyncio.wait_for(done, 30)
    except asyncio.TimeoutError:
        transport.close()
        sys.exit(1)
    # Let the b"bye" go out before closing.
    await asyncio.sleep(0)
    transport.close()


if __name__ == "__main__":
    asyncio.run(main())
