#!/usr/bin/env bash
# Creates (or reuses) the Python venv the micro benchmarks compare against:
# target/bench-venv with uvloop installed from PyPI. Idempotent: an existing
# venv that already imports uvloop is left alone.
#
# usage: bench/python/setup-venv.sh        (from anywhere in the repo)
# prints the venv's python path as its last line on success.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/bench-venv"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup-venv.sh: $python not found: install Python 3 (with the venv module) to compare against asyncio/uvloop" >&2
    exit 1
fi

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import uvloop' >/dev/null 2>&1; then
    echo "$venv/bin/python"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "==> $python -m venv $venv" >&2
    if ! "$python" -m venv "$venv" >&2; then
        rm -rf "$venv"
        echo "setup-venv.sh: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

echo "==> pip install uvloop" >&2
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uvloop >&2; then
    echo "setup-venv.sh: pip install uvloop failed (is PyPI reachable?)" >&2
    exit 1
fi
"$venv/bin/python" -c 'import uvloop' || {
    echo "setup-venv.sh: uvloop installed but does not import" >&2
    exit 1
}
echo "$venv/bin/python"
