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
BUILD=${HW_BUILD_DIR:-build-release}
if [[ ! -f "$BUILD/build.ninja" ]]; then
    meson setup "$BUILD" --buildtype=release -Dtests=false >&2
fi
ninja -C "$BUILD" >&2
BUILD_ABS=$(cd "$BUILD" && pwd)
export HW_NODE_BIN=$BUILD_ABS/node/headwater-node
export HW_GATEWAY_BIN=$BUILD_ABS/gateway/headwater-gateway
export HW_CTL_BIN=$BUILD_ABS/ctl/headwaterctl
exec python3 tests/bench/failover.py "$@"
