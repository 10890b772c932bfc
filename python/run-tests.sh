#!/usr/bin/env bash
# Builds the evloop Python package with maturin (`pip install ./python`)
# into a venv under target/, then runs its tests.
#
#   python/run-tests.sh            # PYTHON=python3.12 to pick the interpreter
#
# `cargo xtask test` runs it (step 11). The crate is a member of the root
# workspace, so cargo's output goes to the workspace's target/ (or
# $CARGO_TARGET_DIR), sharing what the rest of the CI built.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
venv="$root/target/python-venv"

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
# As `python -m unittest`, but with SIGINT's default Python handler even
# when this script was started with SIGINT ignored (a background job, some
# CI runners): the tests send SIGINT and expect KeyboardInterrupt.
exec "$venv/bin/python" -c '
import signal, sys, unittest
signal.signal(signal.SIGINT, signal.default_int_handler)
unittest.main(module=None, argv=["python -m unittest"] + sys.argv[1:])
' "$@"
