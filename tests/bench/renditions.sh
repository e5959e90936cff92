#!/usr/bin/env bash
# Issue 10 benchmarks, Headwater side by side with a peer in one run (docs/benchmarks.md,
# "Issue 10 — storage at the durability floor"):
#   1. renditions per box vs nginx WebDAV: a ramp of live renditions, steps alternating, with a
#      self-check that a 0.7 s stall fails a step (tests/bench/renditions.py);
#   2. 2 MB PUT vs the durability floor, and 3. 16 writers of 200 KB vs the floor's bandwidth
#      (tests/bench/floor.py).
#
#   tests/bench/renditions.sh > /tmp/issue10.md        all three (about 12 minutes)
#   tests/bench/renditions.sh --ramp > /tmp/rend.md    1 only (ramp + self-check)
#   tests/bench/renditions.sh --self-check             the self-check alone; exit 1 if missed
#   tests/bench/renditions.sh --floor > /tmp/floor.md  2 and 3 only
#
# Env: HW_BUILD_DIR (build-release: the daemons), HW_BENCH_DIR (build-bench: a release build
#      with tests enabled, of which only the load generator tests/bench/rendload is built),
#      RAMP, STEP_S, WARMUP_S (renditions.py), FLOOR_ROUNDS, FLOOR_PER_ROUND, BW_ROUNDS,
#      BW_ROUND_S (floor.py), HW_BENCH_COMMIT (the commit the report names: set it when
#      HW_BUILD_DIR holds another tree's build), HW_SKIP_DEPS=1 to skip scripts/deps.
# Markdown on stdout, progress on stderr. Free loopback ports, temp dirs removed on exit (also
# on Ctrl-C); the daemons, nginx and the load generator die with the Python driver.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ "${HW_SKIP_DEPS:-0}" != 1 ]]; then
    scripts/deps --bench
fi
source tests/bench/release-build.sh
BENCH=${HW_BENCH_DIR:-build-bench}
if [[ ! -f "$BENCH/build.ninja" ]]; then
    meson setup "$BENCH" --buildtype=release -Dtests=true >&2
fi
ninja -C "$BENCH" tests/bench/rendload >&2
export HW_RENDLOAD_BIN=$(cd "$BENCH" && pwd)/tests/bench/rendload
case "${1:-}" in
--ramp) exec python3 tests/bench/renditions.py ;;
--self-check) exec python3 tests/bench/renditions.py --self-check ;;
--floor) exec python3 tests/bench/floor.py ;;
"")
    rc=0
    python3 tests/bench/renditions.py || rc=1
    echo
    python3 tests/bench/floor.py || rc=1
    exit $rc
    ;;
*) echo "usage: $0 [--ramp|--self-check|--floor]" >&2; exit 2 ;;
esac
