"""Runs CPython's own asyncio tests (``test.test_asyncio``) against a loop.

``cargo xtask python-conformance`` runs this file with the venv's Python
(evloop installed from ``python/``; uvloop too for ``--loop uvloop``)::

    run.py [--loop evloop|uvloop|asyncio] [--module NAME]... [--check] [--update]
           [--timeout SECS] [--results DIR] [--native-streams] [-v]
    run.py --table            # the docs/python.md table from saved results

How a test runs on the loop under test:

* asyncio's event loop policy is replaced before every test by one whose
  ``new_event_loop()`` is the loop factory, so ``asyncio.new_event_loop()``,
  ``asyncio.run()``, ``asyncio.Runner`` and ``IsolatedAsyncioTestCase`` get
  the loop under test;
* the loop-generic mixins that CPython subclasses once per selector
  (``EventLoopTestsMixin``, ``BaseSockTestsMixin``, ...) are subclassed here
  once, with ``create_event_loop``/``new_loop``/``setUp`` making the loop
  under test (``ADOPTED``); the other modules run their own classes as they
  are.

Which tests count (the rule, applied to every test that was not skipped):
a test is *loop-generic* when, while it ran, it made at least one loop
through the factory and no other asyncio loop (``test_utils.TestLoop``, the
fake virtual-time loop, or a ``SelectorEventLoop``/``BaseEventLoop`` built
directly). Every other test is *excluded*: it tests asyncio's own classes,
not the loop. Excluded tests are counted, never judged.

``--native-streams`` (evloop only) calls ``evloop.use_native_streams()``
in each worker before the module is imported, so that
``asyncio.open_connection``, ``start_server`` and their unix variants give
evloop's native streams: the run is saved as ``evloop-native-streams`` and
checked against ``expected-native-streams.txt``.

Each module runs in a child process; a test that does not finish within
``--timeout`` seconds is killed (with ``faulthandler``'s traceback in the
module's log under ``--results``) and counted as an error, and the child is
restarted for the rest. Results are merged into ``<results>/<loop>.json``.

``--check`` compares the failures (failed, errors, timeouts) with
``expected.txt`` (one ``test id  reason`` a line): an unexpected failure or
an expected failure that passed (or was skipped or excluded) fails the run.
``--update`` rewrites that file from this run, keeping the reasons of
entries that still fail. ``--skip-pending`` leaves out the entries whose
reason starts with ``pending:`` (work in progress elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXPECTED = os.path.join(HERE, "expected.txt")
EXPECTED_NATIVE_STREAMS = os.path.join(HERE, "expected-native-streams.txt")
RESULTS = os.path.join(ROOT, "target", "python-conformance")
LOOPS = ("evloop", "uvloop", "asyncio")
PACKAGE = "test.test_asyncio."

# Every test_asyncio module with loop-generic tests. The others test
# asyncio's own classes only: under the rule above every one of their tests
# is excluded, so they are not run at all. test_runners (its own policy of
# mocked BaseEventLoops), test_pep492 (a bare BaseEventLoop), test_futures
# (test_utils.TestLoop) were run once and excluded entirely;
# test_base_events, test_selector_events, test_proactor_events,
# test_sslproto, test_transports, test_unix_events and test_windows_* build
# asyncio's loops and transports directly.
MODULES = (
    "test_events",
    "test_streams",
    "test_sock_lowlevel",
    "test_sendfile",
    "test_server",
    "test_ssl",
    "test_subprocess",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_locks",
    "test_queues",
    "test_threads",
    "test_context",
    "test_futures2",
    "test_buffered_proto",
    "test_tasks",
)

# Mixins that CPython subclasses per selector (or proactor): adopted here
# once as (new class name, mixin names, base, how the loop is made).
# "create_event_loop"/"new_loop": that method returns the factory's loop;
# "setUp": setUp makes one (test_subprocess's watcher mixin does so).
ADOPTED = {
    "test_events": [
        ("EventLoopTests", ("EventLoopTestsMixin", "SubprocessTestsMixin"), "utils",
         "create_event_loop"),
    ],
    "test_sock_lowlevel": [
        ("SockTests", ("BaseSockTestsMixin",), "utils", "create_event_loop"),
    ],
    "test_sendfile": [
        ("SendfileTests", ("SendfileTestsBase",), "utils", "create_event_loop"),
    ],
    "test_server": [
        ("StartServerTests", ("BaseStartServer",), "unittest", "new_loop"),
    ],
    "test_buffered_proto": [
        ("BufferedProtocolTests", ("BaseTestBufferedProtocol",), "unittest", "new_loop"),
    ],
    "test_subprocess": [
        ("SubprocessTests", ("SubprocessMixin",), "utils", "setUp"),
    ],
}

# Classes of the other modules never run: Windows only.
NOT_RUN_PREFIXES = ("Proactor", "Windows")


# ---------------------------------------------------------------------------
# The loop factory and the policy


def loop_factory(name):
    """The ``new_event_loop`` of the loop under test."""
    if name == "evloop":
        import evloop

        return evloop.new_event_loop
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.SelectorEventLoop


class Census:
    """Counts the loops a test makes: through the factory, and others."""

    def __init__(self, factory):
        self._factory = factory
        self._inside = threading.local()
        self.ours = 0
        self.foreign = 0

    def reset(self):
        """Forgets the counts (a new test starts)."""
        self.ours = 0
        self.foreign = 0

    def new_loop(self):
        """A loop from the factory, counted as ours."""
        self._inside.active = True
        try:
            loop = self._factory()
        finally:
            self._inside.active = False
        self.ours += 1
        return loop

    def watch_base_event_loop(self):
        """Counts every asyncio BaseEventLoop made outside the factory
        (TestLoop included)."""
        from asyncio import base_events

        original = base_events.BaseEventLoop.__init__
        census = self

        def init(self, *args, **kwargs):
            if not getattr(census._inside, "active", False):
                census.foreign += 1
            original(self, *args, **kwargs)

        base_events.BaseEventLoop.__init__ = init

    def policy(self):
        """An asyncio policy whose new_event_loop() is the factory."""
        census = self

        class ConformancePolicy(asyncio.DefaultEventLoopPolicy):
            def new_event_loop(self):
                return census.new_loop()

        return ConformancePolicy()


# ---------------------------------------------------------------------------
# The worker: one module in this process


def adopt(module, census):
    """The adopted classes of ``module``, as unittest classes."""
    from test.test_asyncio import utils as test_utils

    classes = []
    for name, mixins, base, hook in ADOPTED.get(module.__name__[len(PACKAGE):], ()):
        bases = tuple(getattr(module, m) for m in mixins)
        bases += (test_utils.TestCase if base == "utils" else unittest.TestCase,)
        namespace = {"__module__": module.__name__, "__qualname__": name}
        if hook == "setUp":
            namespace["setUp"] = loop_in_setup(census)
        else:
            namespace[hook] = lambda self: census.new_loop()
        classes.append(type(name, bases, namespace))
    return classes


def loop_in_setup(census):
    """A setUp that makes the loop, as test_subprocess's watcher mixin does."""

    def setUp(self):
        super(type(self), self).setUp()
        self.loop = census.new_loop()
        self.set_event_loop(self.loop)

    return setUp


def module_classes(module, census):
    """Every TestCase class to run from ``module``."""
    if module.__name__[len(PACKAGE):] in ADOPTED:
        return adopt(module, census)
    classes = []
    for name, value in vars(module).items():
        if (
            isinstance(value, type)
            and issubclass(value, unittest.TestCase)
            and value.__module__ == module.__name__
            and not name.startswith(NOT_RUN_PREFIXES)
        ):
            classes.append(value)
    return classes


def short_id(test):
    """``module.Class.test`` without the ``test.test_asyncio.`` prefix."""
    test_id = test.id()
    return test_id[len(PACKAGE):] if test_id.startswith(PACKAGE) else test_id


def flatten(suite):
    """Every test case of a (nested) suite."""
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from flatten(item)
        else:
            yield item


class StreamingResult(unittest.TestResult):
    """Reports each test's outcome as a JSON line on ``report``."""

    RANK = {"pass": 0, "skip": 1, "fail": 2, "error": 3}

    def __init__(self, report, census, policy, timeout):
        super().__init__()
        self._report = report
        self._census = census
        self._policy = policy
        self._timeout = timeout
        self._outcome = None

    def _send(self, **event):
        self._report.write(json.dumps(event) + "\n")
        self._report.flush()

    def _set(self, outcome, detail=""):
        if self._outcome is None or self.RANK[outcome] > self.RANK[self._outcome[0]]:
            self._outcome = (outcome, detail)

    def startTest(self, test):
        super().startTest(test)
        asyncio.set_event_loop_policy(self._policy)
        self._census.reset()
        self._outcome = None
        self._send(start=short_id(test))
        faulthandler.dump_traceback_later(self._timeout, exit=True)

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        outcome, detail = self._outcome or ("pass", "")
        if outcome != "skip" and (self._census.ours == 0 or self._census.foreign):
            census = self._census
            detail = f"made {census.ours} loop(s) of the factory, {census.foreign} other(s)"
            outcome = "excluded"
        self._send(id=short_id(test), outcome=outcome, detail=detail)
        super().stopTest(test)

    def _error_text(self, err):
        kind, value, _ = err
        lines = traceback.format_exception(*err)
        summary = kind.__name__ if value is None else f"{kind.__name__}: {value}"
        return summary.splitlines()[0][:300], "".join(lines)

    def addSuccess(self, test):
        self._set("pass")

    def addFailure(self, test, err):
        summary, full = self._error_text(err)
        self._set("fail", summary)
        self._log(test, full)

    def addError(self, test, err):
        summary, full = self._error_text(err)
        if not isinstance(test, unittest.TestCase):
            # A class or module fixture (setUpClass, tearDownModule...).
            self._send(id=short_id(test), outcome="error", detail=summary)
            self._log(test, full)
            return
        self._set("error", summary)
        self._log(test, full)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            if issubclass(err[0], test.failureException):
                self.addFailure(test, err)
            else:
                self.addError(test, err)

    def addSkip(self, test, reason):
        self._set("skip", reason)

    def addExpectedFailure(self, test, err):
        self._set("pass")

    def addUnexpectedSuccess(self, test):
        self._set("fail", "unexpected success")

    def _log(self, test, text):
        sys.stderr.write(f"\n==== {short_id(test)}\n{text}")
        sys.stderr.flush()


def harness_without_internals():
    """test_utils.TestCase.close_loop reads ``loop._default_executor``, an
    attribute of asyncio's BaseEventLoop that uvloop's loop lacks: without
    it, the harness shuts the default executor down through the public
    API instead. Loops that have it (asyncio, evloop) are unaffected."""
    from test.test_asyncio import utils as test_utils

    original = test_utils.TestCase.close_loop

    def close_loop(loop):
        if hasattr(loop, "_default_executor"):
            return original(loop)
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    test_utils.TestCase.close_loop = staticmethod(close_loop)


def worker(args):
    """Runs one module's tests (minus ``--skip``), streaming outcomes."""
    # A parent started in the background may ignore SIGINT; the tests send
    # it and expect KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    report = os.fdopen(args.report_fd, "w", buffering=1)
    census = Census(loop_factory(args.loop))
    census.watch_base_event_loop()
    harness_without_internals()
    if args.native_streams:
        import evloop

        evloop.use_native_streams()
    policy = census.policy()
    asyncio.set_event_loop_policy(policy)
    module = importlib.import_module(PACKAGE + args.module[0])
    skip = set()
    if args.skip:
        with open(args.skip) as f:
            skip = {line.strip() for line in f if line.strip()}
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for cls in module_classes(module, census):
        for test in flatten(loader.loadTestsFromTestCase(cls)):
            if short_id(test) not in skip:
                suite.addTest(test)
    result = StreamingResult(report, census, policy, args.timeout)
    suite.run(result)
    report.write(json.dumps({"done": True}) + "\n")
    report.flush()
    # Threads a test left behind must not keep the worker alive.
    os._exit(0)


# ---------------------------------------------------------------------------
# The parent: one child per module, restarted after a timeout or crash


def run_module(loop, module, timeout, log_path, verbose, not_run=None, native_streams=False):
    """{test id: (outcome, detail)} for ``module`` on ``loop``; the tests
    of ``not_run`` ({test id: reason}) are not run but reported as
    ``pending``."""
    results = {t: ("pending", r) for t, r in (not_run or {}).items() if in_modules(t, [module])}
    skip_path = log_path + ".skip"
    with open(log_path, "w") as log:
        while True:
            with open(skip_path, "w") as f:
                f.write("\n".join(results))
            finished, current = run_child(
                loop, module, timeout, skip_path, log, results, verbose, native_streams
            )
            if finished:
                break
            if current is None:
                results[f"{module}.<worker>"] = ("error", "the worker died outside any test")
                break
            # The test in progress timed out or crashed the worker: go on
            # with the rest.
    os.unlink(skip_path)
    return results


def run_child(loop, module, timeout, skip_path, log, results, verbose, native_streams=False):
    """One worker; returns (finished, the test in progress when it ended)."""
    read_fd, write_fd = os.pipe()
    command = [
        sys.executable, os.path.abspath(__file__), "--worker", "--loop", loop,
        "--module", module, "--skip", skip_path, "--report-fd", str(write_fd),
        "--timeout", str(timeout),
    ] + (["--native-streams"] if native_streams else [])
    child = subprocess.Popen(
        command, pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, cwd=HERE,
    )
    os.close(write_fd)
    current = None
    started = last_event = time.monotonic()
    buffered = b""
    with selectors.DefaultSelector() as sel, os.fdopen(read_fd, "rb", buffering=0) as pipe:
        sel.register(pipe, selectors.EVENT_READ)
        while True:
            # faulthandler ends a hung test after `timeout`; this is the
            # backstop for a worker that cannot even do that.
            remaining = last_event + timeout + 30 - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                child.kill()
                break
            chunk = pipe.read(65536)
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                event = json.loads(line)
                last_event = time.monotonic()
                if event.get("done"):
                    child.wait()
                    return True, None
                if "start" in event:
                    current, started = event["start"], time.monotonic()
                    continue
                results[event["id"]] = (event["outcome"], event["detail"])
                if event["id"] == current:
                    current = None
                if verbose:
                    print(f"  {event['outcome']:8} {event['id']}  {event['detail']}", flush=True)
    status = child.wait()
    if current is not None:
        elapsed = time.monotonic() - started
        what = "timeout" if elapsed >= timeout else f"the worker died (status {status})"
        results[current] = ("error", f"{what} after {elapsed:.0f} s")
        if verbose:
            print(f"  error    {current}  {what}", flush=True)
    return False, current


def summarize(results):
    """passed, failed, errors, skipped, excluded."""
    counts = {"pass": 0, "fail": 0, "error": 0, "skip": 0, "excluded": 0, "pending": 0}
    for outcome, _ in results.values():
        counts[outcome] += 1
    return counts


def failures(results):
    """{test id: detail} of the tests that failed or errored."""
    return {t: d for t, (o, d) in results.items() if o in ("fail", "error")}


# ---------------------------------------------------------------------------
# The expected-results file


def read_expected(path):
    """{test id: reason} from the expected file (``#`` comments)."""
    expected = {}
    if not os.path.exists(path):
        return expected
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            test_id, _, reason = line.partition(" ")
            expected[test_id] = reason.strip()
    return expected


EXPECTED_HEADER = """\
# CPython 3.11 test.test_asyncio tests that fail on evloop's loop, with why.
# `cargo xtask python-conformance --check` fails on a test that fails and is
# not listed here, and on a listed test that passes (or no longer runs);
# `--update` rewrites this file from a run, keeping the reasons.
# Reasons: "differs: ..." (a deliberate difference,
# python/README.md), "internals: ..." (the test pokes at SelectorEventLoop
# or asyncio internals), "open: ..." (a difference not fixed yet, and where
# the fix belongs), "pending: ..." (work that lands elsewhere; run --update
# when it has).
"""


EXPECTED_NATIVE_STREAMS_HEADER = """\
# CPython 3.11 test.test_asyncio tests that fail on evloop's loop with
# evloop.use_native_streams() (run.py --native-streams), with why: the
# failures of expected.txt that these modules share, and the tests that
# poke at the internals of asyncio's stream classes. Same format and
# reasons as expected.txt.
"""


def write_expected(path, expected):
    """Writes {test id: reason} under the header, grouped by module."""
    native = os.path.abspath(path) == EXPECTED_NATIVE_STREAMS
    with open(path, "w") as f:
        f.write(EXPECTED_NATIVE_STREAMS_HEADER if native else EXPECTED_HEADER)
        module = None
        for test_id in sorted(expected):
            if test_id.split(".")[0] != module:
                module = test_id.split(".")[0]
                f.write(f"\n# {module}\n")
            f.write(f"{test_id}  {expected[test_id]}\n")


def in_modules(test_id, modules):
    """Whether the test belongs to one of ``modules``."""
    return test_id.split(".")[0] in modules


def check(results, expected, modules):
    """The problems (unexpected failures, expected failures that passed,
    were skipped or excluded) and notes (listed tests this CPython does
    not have)."""
    failed = failures(results)
    problems, notes = [], []
    for test_id, detail in sorted(failed.items()):
        if test_id not in expected:
            problems.append(f"unexpected failure: {test_id}: {detail}")
    for test_id in sorted(expected):
        if not in_modules(test_id, modules) or test_id in failed:
            continue
        outcome = results.get(test_id, ("not run",))[0]
        if outcome == "pending":
            continue
        line = f"stale expected entry ({outcome}): {test_id}  {expected[test_id]}"
        # Another CPython 3.11.x may lack a test: worth a note, not a failure.
        (notes if outcome == "not run" else problems).append(line)
    return problems, notes


def update(expected, results, modules):
    """The new expected entries: this run's failures, old reasons kept."""
    new = {t: r for t, r in expected.items() if not in_modules(t, modules)}
    for test_id, detail in failures(results).items():
        new[test_id] = expected.get(test_id) or f"unexplained: {detail}"
    for test_id, (outcome, _) in results.items():
        if outcome == "pending":
            new[test_id] = expected[test_id]
    return new


# ---------------------------------------------------------------------------
# Saved results and the table


def load_results(results_dir, loop):
    """The saved {module: {test id: (outcome, detail)}} of ``loop``."""
    path = os.path.join(results_dir, f"{loop}.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {m: {t: tuple(v) for t, v in r.items()} for m, r in json.load(f).items()}


def save_results(results_dir, loop, by_module):
    """Merges this run's modules into the saved results of ``loop``."""
    saved = load_results(results_dir, loop)
    saved.update(by_module)
    with open(os.path.join(results_dir, f"{loop}.json"), "w") as f:
        json.dump(saved, f, indent=1, sort_keys=True)


def table(results_dir):
    """The per-module Markdown table of the saved results of every loop."""
    saved = {loop: load_results(results_dir, loop) for loop in LOOPS}
    modules = [m for m in MODULES if any(m in saved[loop] for loop in LOOPS)]
    lines = [
        "| module | evloop pass / fail / error / skip | uvloop | asyncio | excluded |",
        "|---|---|---|---|---|",
    ]
    totals = {loop: summarize({}) for loop in LOOPS}
    for module in modules:
        cells = []
        for loop in LOOPS:
            if module not in saved[loop]:
                cells.append("not run")
                continue
            c = summarize(saved[loop][module])
            for key in c:
                totals[loop][key] += c[key]
            cells.append(f"{c['pass']} / {c['fail']} / {c['error']} / {c['skip']}")
        excluded = summarize(saved["evloop"].get(module, {}))["excluded"]
        lines.append(f"| {module} | {' | '.join(cells)} | {excluded} |")
    total_cells = [
        f"{t['pass']} / {t['fail']} / {t['error']} / {t['skip']}" for t in totals.values()
    ]
    lines.append(f"| **total** | {' | '.join(total_cells)} | {totals['evloop']['excluded']} |")
    uv_pass = {t for r in saved["uvloop"].values() for t, (o, _) in r.items() if o == "pass"}
    ev_fail = {
        t: d for r in saved["evloop"].values() for t, (o, d) in r.items() if o in ("fail", "error")
    }
    both = sorted(set(ev_fail) & uv_pass)
    lines.append("")
    lines.append(f"Tests that pass on uvloop and fail on evloop: {len(both)}")
    expected = read_expected(EXPECTED)
    lines.extend(f"- `{t}`: {expected.get(t, ev_fail[t])}" for t in both)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", choices=LOOPS, default="evloop")
    parser.add_argument("--module", action="append", metavar="NAME",
                        help="a test_asyncio module (repeatable; default: all of MODULES)")
    parser.add_argument("--check", action="store_true",
                        help="fail on an unexpected failure or an unexpected pass")
    parser.add_argument("--update", action="store_true",
                        help="rewrite the expected file from this run, keeping reasons")
    parser.add_argument("--skip-pending", action="store_true",
                        help="do not run the tests listed as 'pending:' (a quick local check)")
    parser.add_argument("--expected", default=None,
                        help="the expected file (default: expected.txt, or "
                        "expected-native-streams.txt with --native-streams)")
    parser.add_argument("--native-streams", action="store_true",
                        help="evloop.use_native_streams() in each worker (evloop only)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per test")
    parser.add_argument("--results", default=RESULTS, help="where results and logs go")
    parser.add_argument("--table", action="store_true",
                        help="print the Markdown table of the saved results")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every test")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip", help=argparse.SUPPRESS)
    parser.add_argument("--report-fd", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv):
    """Runs the modules (or the worker, or --table); the exit status."""
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.table:
        sys.stdout.write(table(args.results))
        return 0
    try:
        importlib.import_module("test.test_asyncio.utils")
    except ImportError as e:
        print(
            f"run.py: CPython's test package is missing ({e}); on Debian: "
            "apt-get install libpython3-testsuite (or libpython3.11-testsuite)",
            file=sys.stderr,
        )
        return 2
    if args.native_streams and args.loop != "evloop":
        print("run.py: --native-streams needs --loop evloop", file=sys.stderr)
        return 2
    default_expected = EXPECTED_NATIVE_STREAMS if args.native_streams else EXPECTED
    if (args.check or args.update) and args.loop != "evloop" and args.expected is None:
        print("run.py: expected.txt lists evloop's failures; use --loop evloop", file=sys.stderr)
        return 2
    args.expected = args.expected or default_expected
    # The name results and logs are saved under.
    label = args.loop + ("-native-streams" if args.native_streams else "")
    modules = args.module or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        print(f"run.py: not a loop-generic module here: {', '.join(unknown)}", file=sys.stderr)
        return 2
    logs = os.path.join(args.results, label)
    os.makedirs(logs, exist_ok=True)
    expected = read_expected(args.expected)
    # By default everything runs, so that a pending entry whose part has
    # landed fails the check as stale; --skip-pending saves the minute the
    # TLS tests spend waiting for their peers' timeouts.
    not_run = {}
    if args.skip_pending and not args.update:
        not_run = {t: r for t, r in expected.items() if r.startswith("pending:")}
    print(
        f"{'module':22} {'passed':>6} {'failed':>6} {'errors':>6} {'skipped':>7} "
        f"{'excluded':>8} {'pending':>7} {'secs':>5}   ({label})"
    )
    by_module, everything = {}, {}
    for module in modules:
        log_path = os.path.join(logs, f"{module}.log")
        start = time.monotonic()
        results = run_module(
            args.loop, module, args.timeout, log_path, args.verbose, not_run, args.native_streams
        )
        by_module[module] = results
        everything.update(results)
        print_counts(module, summarize(results), time.monotonic() - start)
    if not not_run:
        save_results(args.results, label, by_module)
    print_counts("total", summarize(everything), None)
    print(f"logs (tracebacks): {logs}")
    if args.update:
        write_expected(args.expected, update(expected, everything, modules))
        print(f"rewrote {args.expected}")
    if args.check:
        problems, notes = check(everything, expected, modules)
        for line in notes + problems:
            print(line)
        if problems:
            print(f"conformance check failed: {len(problems)} problem(s) against {args.expected}")
            return 1
        print(f"conformance check passed: every failure is listed in {args.expected}")
    return 0


def print_counts(name, c, seconds):
    """One line of the per-module summary."""
    secs = "" if seconds is None else f"{seconds:5.0f}"
    print(
        f"{name:22} {c['pass']:6} {c['fail']:6} {c['error']:6} {c['skip']:7} "
        f"{c['excluded']:8} {c['pending']:7} {secs}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
