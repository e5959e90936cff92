#!/usr/bin/env bash
# Benchmark Headwater against nginx (WebDAV PUT, sendfile GET) on this machine, in one run:
#   2 MB PUT ack latency p50/p99 and 1 MB GET throughput (wrk -t2 -c64 -d10s).
# Prints a markdown table on stdout (paste it into docs/benchmarks.md); progress on stderr.
#
#   tests/bench/bench.sh > /tmp/bench.md           issue 2: PUT latency, one-object GET
#   tests/bench/bench.sh --reads > /tmp/reads.md   issue 3: hot/cold segment reads, herd
#   tests/bench/bench.sh --idle > /tmp/idle.md     issue 8: memory per idle keep-alive conn
#
# Env: HW_BUILD_DIR (build-release), BENCH_PUTS (200), BENCH_WRK_DURATION (10s),
#      BENCH_WRK_CONNECTIONS (64), BENCH_WRK_THREADS (2), HW_SKIP_DEPS=1 to skip scripts/deps.
# Everything runs on free loopback ports in temp dirs that are removed on exit (also on
# Ctrl-C: the Python driver stops nginx and the daemons, which also die with it).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ "${HW_SKIP_DEPS:-0}" != 1 ]]; then
    scripts/deps --bench
fi
source tests/bench/release-build.sh
if [[ "${1:-}" == "--reads" ]]; then
    exec python3 tests/bench/bench_reads.py
fi
if [[ "${1:-}" == "--idle" ]]; then
    exec python3 tests/bench/bench_idle.py
fi
exec python3 tests/bench/bench.py
