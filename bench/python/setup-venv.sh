#!/usr/bin/env bash
# Creates (or reuses) the Python venv the benchmarks compare against:
# target/bench-venv with uvloop installed from PyPI. Idempotent: an existing
# venv that already imports uvloop is left alone.
#
# With --all (for `cargo xtask bench python`) it also installs rloop and
# rsloop from PyPI and evloop from this repository (`pip install ./python`,
# rebuilt every time so that the benchmark measures the working tree; cargo
# output in $CARGO_TARGET_DIR, default target/python). A loop that cannot be
# installed is reported on stderr as `setup-venv.sh: skip NAME: REASON` and
# the script goes on: the caller announces the skip.
#
# rsloop publishes Linux wheels for glibc >= 2.39 only; elsewhere pip builds
# its sdist, which needs a nightly Rust (its crate uses `allocator_api`):
# when `rustup run nightly` works, the build uses it with that feature
# enabled (`-Zcrate-attr`), in $CARGO_TARGET_DIR/rsloop.
#
# usage: bench/python/setup-venv.sh [--all]      (from anywhere in the repo)
# prints the venv's python path as its last line on success.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/bench-venv"
python="${PYTHON:-python3}"
all=false
if [ "${1:-}" = "--all" ]; then
    all=true
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup-venv.sh: $python not found: install Python 3 (with the venv module) to compare against asyncio/uvloop" >&2
    exit 1
fi

pip_install() {
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
}

imports() {
    "$venv/bin/python" -c "import $1" >/dev/null 2>&1
}

if ! $all && [ -x "$venv/bin/python" ] && imports uvloop; then
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

if ! imports uvloop; then
    echo "==> pip install uvloop" >&2
    if ! pip_install uvloop; then
        echo "setup-venv.sh: pip install uvloop failed (is PyPI reachable?)" >&2
        exit 1
    fi
    imports uvloop || {
        echo "setup-venv.sh: uvloop installed but does not import" >&2
        exit 1
    }
fi

if $all; then
    if ! imports rloop; then
        echo "==> pip install rloop" >&2
        pip_install rloop || echo "setup-venv.sh: skip rloop: pip install rloop failed" >&2
    fi
    if ! imports rsloop; then
        echo "==> pip install rsloop" >&2
        if ! pip_install --only-binary :all: rsloop 2>/dev/null; then
            if rustup run nightly rustc --version >/dev/null 2>&1; then
                echo "==> no rsloop wheel for this platform: building its sdist with nightly Rust (minutes)" >&2
                target="${CARGO_TARGET_DIR:-$root/target/python}"
                RUSTUP_TOOLCHAIN=nightly RUSTFLAGS="-Zcrate-attr=feature(allocator_api)" \
                    CARGO_TARGET_DIR="$target/rsloop" pip_install rsloop ||
                    echo "setup-venv.sh: skip rsloop: no wheel for this platform and its sdist did not build" >&2
            else
                echo "setup-venv.sh: skip rsloop: no wheel for this platform (glibc < 2.39?) and no nightly Rust to build its sdist" >&2
            fi
        fi
    fi
    echo "==> pip install ./python (evloop)" >&2
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/python}"
    pip_install "$root/python" || echo "setup-venv.sh: skip evloop: pip install ./python failed" >&2
fi
echo "$venv/bin/python"
