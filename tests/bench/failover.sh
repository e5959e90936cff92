#!/usr/bin/env bash
# Failover speed (20 leader SIGKILLs: write gap p50/p99/max, read failures) and, with --soak
# [SECONDS], spurious leader changes under full write load with no faults. Release build, like
# tests/bench/bench.sh; options go to tests/bench/failover.py (see its --help):
#
#   tests/bench/failover.sh > /tmp/failover.md
#   tests/bench/failover.sh --election-timeout-ms 300 --heartbeat-ms 50
#   tests/bench/failover.sh --soak 600 --election-timeout-ms 300 --heartbeat-ms 50
#
# Env: HW_BUILD_DIR (build-release). Markdown on stdout (docs/benchmarks.md), progress on
# stderr. Daemons run on free loopback ports in a temp dir removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/bench/release-build.sh
exec python3 tests/bench/failover.py "$@"
