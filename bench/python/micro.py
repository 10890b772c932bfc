#!/usr/bin/env python3
"""evloop's micro benchmarks, for Python event loops (asyncio, uvloop,
rloop, rsloop, evloop).

The same four workloads as the Rust bench (bench/micro/benches/micro.rs),
printing the same table rows (`workload impl median min max`, ns per op):

  chain         loop.call_soon callbacks each scheduling the next
  burst         N call_soon at once, then loop.stop scheduled last, run_forever
  timers.*      N call_later with random delays in [0, 1 s), cancel every
                other one, run until the rest fired; CPU time
                (time.process_time) per phase: schedule per timer, cancel per
                cancel, drain per fired timer, total (all three) per timer
  cross-thread  4 threads x N/4 call_soon_threadsafe while the loop runs,
                until all N ran (wall time)

Every callback gets an int argument and adds it to a sum (checked after each
run). Each workload runs once to warm up, then --runs times (default 5).

usage: python3 bench/python/micro.py --loop asyncio|uvloop|rloop|rsloop|evloop
                                     [--n N] [--runs R]
                                     [--only chain,burst,timers,cross-thread]
"""

import argparse
import os
import platform
import random
import statistics
import sys
import threading
import time

from loops import LOOPS, loop_factory

THREADS = 4
SEED = 0x5EED7153
WORKLOADS = ("chain", "burst", "timers", "cross-thread")


class Counter:
    """Counts callbacks, sums their values, stops the loop at the target."""

    __slots__ = ("count", "total", "target", "loop")

    def __init__(self, loop, target):
        self.count = 0
        self.total = 0
        self.target = target
        self.loop = loop

    def tick(self, value):
        self.total += value
        self.count += 1
        if self.count == self.target:
            self.loop.stop()

    def check(self, what, target, total):
        if self.count != target or self.total != total:
            raise SystemExit(
                f"{what}: {self.count} callbacks ran (sum {self.total}), "
                f"expected {target} (sum {total})"
            )


def chain(new_loop, n):
    loop = new_loop()
    counter = Counter(loop, n)
    tick = counter.tick
    call_soon = loop.call_soon

    def step(left):
        tick(left)
        if left > 1:
            call_soon(step, left - 1)

    start = time.perf_counter()
    call_soon(step, n)
    loop.run_forever()
    elapsed = time.perf_counter() - start
    counter.check("chain", n, n * (n + 1) // 2)
    loop.close()
    return [elapsed * 1e9 / n]


def burst_once(loop, n):
    counter = Counter(loop, n + 1)  # run_forever stops via loop.stop below
    tick = counter.tick
    call_soon = loop.call_soon
    start = time.perf_counter()
    for i in range(n):
        call_soon(tick, i)
    call_soon(loop.stop)
    loop.run_forever()
    elapsed = time.perf_counter() - start
    counter.check("burst", n, n * (n - 1) // 2)
    return elapsed


def burst(new_loop, n):
    # Measured on a loop that already ran one burst, as the Rust bench does.
    loop = new_loop()
    burst_once(loop, n)
    elapsed = burst_once(loop, n)
    loop.close()
    return [elapsed * 1e9 / n]


def timers(new_loop, n):
    rng = random.Random(SEED)
    delays = [rng.random() for _ in range(n)]
    loop = new_loop()
    target = n // 2
    counter = Counter(loop, target)
    tick = counter.tick
    call_later = loop.call_later
    c0 = time.process_time()
    handles = [call_later(delay, tick, i) for i, delay in enumerate(delays)]
    c1 = time.process_time()
    for handle in handles[::2]:
        handle.cancel()
    c2 = time.process_time()
    loop.run_forever()
    c3 = time.process_time()
    counter.check("timers", target, sum(range(1, n, 2)))
    del handles
    loop.close()
    cancelled = (n + 1) // 2
    return [
        (c1 - c0) * 1e9 / n,
        (c2 - c1) * 1e9 / cancelled,
        (c3 - c2) * 1e9 / (n - cancelled),
        (c3 - c0) * 1e9 / n,
    ]


def share(n, t):
    return n // THREADS + (1 if t < n % THREADS else 0)


def cross_thread(new_loop, n):
    loop = new_loop()
    counter = Counter(loop, n)
    tick = counter.tick
    post = loop.call_soon_threadsafe

    def poster(count):
        for i in range(count):
            post(tick, i)

    start = time.perf_counter()
    threads = [
        threading.Thread(target=poster, args=(share(n, t),)) for t in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    loop.run_forever()
    elapsed = time.perf_counter() - start
    for thread in threads:
        thread.join()
    total = sum(share(n, t) * (share(n, t) - 1) // 2 for t in range(THREADS))
    counter.check("cross-thread", n, total)
    loop.close()
    return [elapsed * 1e9 / n]


RUNS = {
    "chain": (chain, ["chain"]),
    "burst": (burst, ["burst"]),
    "timers": (
        timers,
        ["timers.schedule", "timers.cancel", "timers.drain", "timers.total"],
    ),
    "cross-thread": (cross_thread, ["cross-thread"]),
}


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loop", choices=LOOPS, required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    args = parser.parse_args()
    if args.n < 2 or args.runs < 1:
        parser.error("--n must be >= 2 and --runs >= 1")
    only = args.only.split(",")
    for name in only:
        if name not in RUNS:
            parser.error(f"unknown workload {name!r}")

    try:
        new_loop, version = loop_factory(args.loop)
    except ImportError as e:
        sys.exit(f"micro.py: {args.loop} is not installed ({e}; run bench/python/setup-venv.sh)")

    print(f"# cpu: {cpu_model()}")
    print(f"# logical cpus: {os.cpu_count()}")
    print(f"# python: {platform.python_version()} ({sys.executable}), {version}")
    print(
        f"# n = {args.n}, {args.runs} runs after 1 warm-up; ns per op: median, min, max"
    )
    print(f"{'workload':<16} {'impl':<8} {'median':>10} {'min':>10} {'max':>10}")
    sys.stdout.flush()
    for name in WORKLOADS:
        if name not in only:
            continue
        run, rows = RUNS[name]
        samples = [[] for _ in rows]
        for round_ in range(args.runs + 1):
            values = run(new_loop, args.n)
            if round_ > 0:
                for column, value in zip(samples, values):
                    column.append(value)
        for row, values in zip(rows, samples):
            print(
                f"{row:<16} {args.loop:<8} {statistics.median(values):>10.1f} "
                f"{min(values):>10.1f} {max(values):>10.1f}"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
