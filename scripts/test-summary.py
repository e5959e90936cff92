#!/usr/bin/env python3
"""Count every test of a `meson test` run from meson-logs/testlog.json.

Criterion suites report `Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N`;
our Python harnesses report `hwtest: N passed, N failed`. A meson test that reports neither
counts as one test (its exit status decides). A suite whose process failed but whose own
counts show no failure (a crash, a leak report at exit, a timeout) adds one failure.
Prints `N passed, N failed` and exits non-zero when anything failed."""
import json
import re
import sys

SYN = re.compile(r"Synthesis: Tested: +(\d+) \| Passing: +(\d+) \| Failing: +(\d+) \| Crashing: +(\d+)")
HW = re.compile(r"^hwtest: (\d+) passed, (\d+) failed", re.M)


def main(path):
    passed = failed = 0
    for line in open(path, encoding="utf-8", errors="replace"):
        d = json.loads(line)
        out = (d.get("stdout") or "") + (d.get("stderr") or "")
        ok = d.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
        m = SYN.findall(out)
        h = HW.findall(out)
        if m:
            t, p, f, c = map(int, m[-1])
            p_, f_ = p, t - p
        elif h:
            p_, f_ = map(int, h[-1])
        else:
            p_, f_ = (1, 0) if ok else (0, 1)
        if not ok and f_ == 0:
            f_ = 1
            print(f"test-summary: {d['name']} {d.get('result')} (exit {d.get('returncode')})",
                  file=sys.stderr)
        passed += p_
        failed += f_
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
