"""A tiny test runner for Headwater's Python suites (stdlib only).

    import hwtest
    TESTS = []
    test = hwtest.collector(TESTS)

    @test
    def put_and_get(cl): ...

    hwtest.main(TESTS, fixture=lambda: Cluster(...))

Each test runs in order and gets the fixture (created once, started before the first test and
stopped after the last). Prints `PASS name` / `FAIL name` + traceback per test, the fixture's
diagnostics (log tails) after the first failure, and ends with exactly one line
`hwtest: N passed, N failed` (scripts/test-summary.py counts it). Exit status 1 on any failure.

`@test(needs=["other_test"])` marks a test that depends on state earlier tests produce: when one
of them failed or did not run, it is reported as failed without running.
"""
import os
import signal
import sys
import time
import traceback


class Skip(Exception):
    """Raise to report a test as skipped (counted neither passed nor failed)."""


def collector(registry):
    def test(fn=None, *, needs=()):
        def add(f):
            f.hw_needs = tuple(needs)
            registry.append(f)
            return f
        return add(fn) if fn is not None else add
    return test


def _on_sigterm(signum, frame):
    # meson's timeout sends SIGTERM: unwind so the fixture's cleanup kills our daemons.
    raise KeyboardInterrupt(f"signal {signum}")


def main(tests, fixture=None):
    signal.signal(signal.SIGTERM, _on_sigterm)
    only = set(a for a in sys.argv[1:] if not a.startswith("-"))
    passed = failed = 0
    dumped = False
    fx = None
    failed_names = set()
    fixture_broken = False
    t_start = time.monotonic()
    try:
        if fixture is not None:
            fx = fixture()
            try:
                fx.start()
            except BaseException:
                traceback.print_exc()
                print("FAIL fixture_start", flush=True)
                if hasattr(fx, "dump_logs"):
                    fx.dump_logs()
                    dumped = True
                failed += 1
                fixture_broken = True
        for fn in tests:
            name = fn.__name__
            if only and name not in only:
                continue
            missing = [n for n in fn.hw_needs if n in failed_names]
            if fixture_broken or missing:
                why = "fixture_start" if fixture_broken else ", ".join(missing)
                print(f"FAIL {name} (not run: {why} failed)", flush=True)
                failed += 1
                failed_names.add(name)
                continue
            t0 = time.monotonic()
            print(f"---- {name}", flush=True)
            try:
                fn(fx) if fixture is not None else fn()
            except Skip as e:
                print(f"SKIP {name}: {e}", flush=True)
            except KeyboardInterrupt:
                traceback.print_exc()
                print(f"FAIL {name} (interrupted)", flush=True)
                failed += 1
                raise
            except BaseException:
                traceback.print_exc()
                print(f"FAIL {name} [{time.monotonic() - t0:.1f}s]", flush=True)
                failed += 1
                failed_names.add(name)
                if fx is not None and hasattr(fx, "dump_logs") and not dumped:
                    fx.dump_logs()
                    dumped = True
            else:
                print(f"PASS {name} [{time.monotonic() - t0:.1f}s]", flush=True)
                passed += 1
    except KeyboardInterrupt as e:
        print(f"hwtest: interrupted ({e})", flush=True)
        failed += 1
    finally:
        if fx is not None:
            try:
                problems = fx.stop()
            except BaseException:
                traceback.print_exc()
                problems = ["fixture stop raised"]
            if problems:
                for p in problems:
                    print(f"hwtest: {p}", flush=True)
                print("FAIL fixture_stop (daemon problems above)", flush=True)
                failed += 1
                if hasattr(fx, "dump_logs") and not dumped:
                    fx.dump_logs()
            if hasattr(fx, "cleanup"):
                fx.cleanup(keep=bool(failed) and os.environ.get("HW_KEEP_TMP") == "1")
    print(f"hwtest: total time {time.monotonic() - t_start:.1f}s", flush=True)
    print(f"hwtest: {passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
