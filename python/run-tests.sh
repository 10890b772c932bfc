#!/usr/bin/env bash
# Builds the evloop Python package with maturin (`pip install ./python`)
# into a venv under target/, then runs its tests.
#
#   python/run-tests.sh            # PYTHON=python3.12 to pick the interpreter
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
venv="$root/target/python-venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/python}"

if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet "$here"
# From tests/, so that the source tree's evloop/ (without the built
# extension) does not shadow the installed package.
cd "$here/tests"
# Every test_*.py there (test_loop, test_transports, ...), or what "$@" names.
if [ $# -eq 0 ]; then
    set -- discover -v -s . -p "test_*.py"
fi
exec "$venv/bin/python" -m unittest "$@"
