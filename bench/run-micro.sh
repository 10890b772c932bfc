#!/usr/bin/env bash
# Runs the micro benchmarks of evloop, tokio, Python asyncio and uvloop and
# prints one combined table of medians (ns per operation) with the targets.
#
# usage: bench/run-micro.sh [--n N] [--runs R] [--py-runs R] [--no-python] [--out DIR]
#
#   1. cargo bench -p evloop-bench --bench micro -- --n N --runs R
#      (evloop and tokio, interleaved; see bench/micro/benches/micro.rs)
#   2. bench/python/setup-venv.sh (target/bench-venv with uvloop), then
#      bench/python/micro.py --loop asyncio and --loop uvloop with that venv's
#      python, --py-runs times each (default 3: asyncio is slow); skipped
#      with a note if the venv cannot be made (--no-python skips it always)
#   3. the combined table; the raw tables stay in DIR (default
#      target/bench-micro/) as rust.txt, asyncio.txt, uvloop.txt
#
# Respects CARGO_TARGET_DIR. Exits non-zero only if the Rust bench fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n=1000000
runs=5
py_runs=3
python=yes
out="$root/target/bench-micro"

while [ $# -gt 0 ]; do
    case "$1" in
        --n) n="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --py-runs) py_runs="$2"; shift 2 ;;
        --no-python) python=no; shift ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-micro.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

mkdir -p "$out"
rm -f "$out/rust.txt" "$out/asyncio.txt" "$out/uvloop.txt"
cd "$root"

echo "==> cargo bench -p evloop-bench --bench micro -- --n $n --runs $runs"
cargo bench -p evloop-bench --bench micro -- --n "$n" --runs "$runs" | tee "$out/rust.txt"

if [ "$python" = yes ]; then
    if venv_python="$(bash "$root/bench/python/setup-venv.sh" | tail -n 1)"; then
        for loop in asyncio uvloop; do
            echo "==> $venv_python bench/python/micro.py --loop $loop --n $n --runs $py_runs"
            "$venv_python" "$root/bench/python/micro.py" --loop "$loop" --n "$n" --runs "$py_runs" \
                | tee "$out/$loop.txt" || echo "run-micro.sh: $loop benchmark failed; its column stays empty" >&2
        done
    else
        echo "run-micro.sh: no Python venv with uvloop; asyncio/uvloop columns stay empty" >&2
    fi
fi

echo
echo "== micro benchmarks: median ns per operation (n = $n; after 1 warm-up, $runs runs of the Rust bench, $py_runs of the Python ones)"
grep -m1 '^# cpu:' "$out/rust.txt" || true
grep -m1 '^# rustc:' "$out/rust.txt" || true
grep -m1 '^# python:' "$out/asyncio.txt" 2>/dev/null || true
grep -m1 '^# python:' "$out/uvloop.txt" 2>/dev/null || true
# Rows: workload impl median min max; comments start with '#'.
cat "$out"/rust.txt "$out"/asyncio.txt "$out"/uvloop.txt 2>/dev/null | awk '
    /^#/ || NF != 5 || $3 !~ /^[0-9.]+$/ { next }
    { median[$1, $2] = $3 }
    END {
        split("chain burst timers.total cross-thread timers.schedule timers.cancel timers.drain", rows, " ")
        label["chain"] = "(a) call_soon chain"
        label["burst"] = "(b) call_soon burst"
        label["timers.total"] = "(c) timers, CPU/timer"
        label["cross-thread"] = "(d) cross-thread post"
        label["timers.schedule"] = "    (c) schedule/timer"
        label["timers.cancel"] = "    (c) cancel/cancel"
        label["timers.drain"] = "    (c) drain/fired"
        target["chain"] = 300; target["burst"] = 60
        target["timers.total"] = 250; target["cross-thread"] = 150
        split("evloop evloop-plain tokio asyncio uvloop", impls, " ")
        printf "%-24s %9s %9s %9s %9s %9s %8s %6s\n", "workload", "evloop", "ev-plain", "tokio", "asyncio", "uvloop", "target", "met"
        for (r = 1; r <= 7; r++) {
            row = rows[r]
            printf "%-24s", label[row]
            for (i = 1; i <= 5; i++) {
                v = ((row, impls[i]) in median) ? median[row, impls[i]] : "-"
                printf " %9s", v
            }
            if (row in target) {
                met = "-"
                if ((row, "evloop") in median) met = (median[row, "evloop"] + 0 <= target[row]) ? "yes" : "NO"
                # ev-plain: the same timers with a callback that captures nothing.
                if (met == "NO" && (row, "evloop-plain") in median && median[row, "evloop-plain"] + 0 <= target[row]) met = "plain"
                printf " %8s %6s\n", "<= " target[row], met
            } else {
                printf " %8s %6s\n", "", ""
            }
        }
        print "ev-plain: timers whose callback captures nothing (no allocation per timer); met=plain: only that variant meets the target"
    }'

echo
echo "== relaxed I/O polling (IoPolling::RELAXED: a poll per 64 callbacks or 1 ms): median ns"
cat "$out"/rust.txt | awk '
    /^#/ || NF != 5 || $3 !~ /^[0-9.]+$/ { next }
    { median[$1, $2] = $3 }
    END {
        printf "%-34s %12s %12s %12s %12s\n", "workload", "evloop-idle", "evloop", "evloop-relaxed", "tokio"
        split("chain latency.p50 latency.p99", rows, " ")
        label["chain"] = "call_soon chain, per link"
        label["latency.p50"] = "1-byte round trip p50, chain busy"
        label["latency.p99"] = "1-byte round trip p99, chain busy"
        split("evloop-idle evloop evloop-relaxed tokio", impls, " ")
        for (r = 1; r <= 3; r++) {
            printf "%-34s", label[rows[r]]
            for (i = 1; i <= 4; i++) {
                key = rows[r] SUBSEP impls[i]
                printf " %12s", (key in median) ? median[key] : "-"
            }
            printf "\n"
        }
        met = "-"
        if (("chain", "evloop-relaxed") in median) met = (median["chain", "evloop-relaxed"] + 0 <= 100) ? "yes" : "NO"
        print "target: evloop-relaxed chain <= 100 ns per link: " met
    }'
