"""Spawn-to-exit latency and children per second of /bin/true under asyncio
or uvloop, for `cargo xtask bench process`: the Python counterpart of
bench/process-spawn (same command line, same output).

    process_spawn.py --impl asyncio|uvloop [--seq N] [--conc M] [--inflight K]

N sequential `create_subprocess_exec` + `wait` (each timed), then M with K in
flight (timed as a whole); stdin, stdout and stderr are /dev/null. Prints
`seq_us V1 V2 ...` (microseconds) and `conc M SECONDS`.
"""

import argparse
import asyncio
import subprocess
import sys
import time

PROGRAM = "/bin/true"


async def one():
    proc = await asyncio.create_subprocess_exec(
        PROGRAM,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    code = await proc.wait()
    if code != 0:
        raise RuntimeError(f"{PROGRAM} exited with {code}")


async def main(seq, conc, inflight):
    latencies = []
    for _ in range(seq):
        start = time.perf_counter_ns()
        await one()
        latencies.append((time.perf_counter_ns() - start) / 1000)

    async def worker(share):
        for _ in range(share):
            await one()

    start = time.perf_counter()
    await asyncio.gather(
        *(worker(conc // inflight + (1 if w < conc % inflight else 0)) for w in range(inflight))
    )
    total = time.perf_counter() - start
    print("seq_us " + " ".join(f"{v:.1f}" for v in latencies))
    print(f"conc {conc} {total:.6f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", required=True, choices=["asyncio", "uvloop"])
    parser.add_argument("--seq", type=int, default=200)
    parser.add_argument("--conc", type=int, default=1000)
    parser.add_argument("--inflight", type=int, default=64)
    args = parser.parse_args()
    coro = main(args.seq, args.conc, max(1, args.inflight))
    if args.impl == "uvloop":
        import uvloop

        if sys.version_info >= (3, 11):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(coro)
        else:
            uvloop.install()
            asyncio.run(coro)
    else:
        asyncio.run(coro)
