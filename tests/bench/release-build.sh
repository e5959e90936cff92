# Sourced by the benchmark scripts (from the repository root): build the release binaries in
# HW_BUILD_DIR (default build-release) and export HW_NODE_BIN, HW_GATEWAY_BIN and HW_CTL_BIN.
BUILD=${HW_BUILD_DIR:-build-release}
if [[ ! -f "$BUILD/build.ninja" ]]; then
    meson setup "$BUILD" --buildtype=release -Dtests=false >&2
fi
ninja -C "$BUILD" >&2
BUILD_ABS=$(cd "$BUILD" && pwd)
export HW_NODE_BIN=$BUILD_ABS/node/headwater-node
export HW_GATEWAY_BIN=$BUILD_ABS/gateway/headwater-gateway
export HW_CTL_BIN=$BUILD_ABS/ctl/headwaterctl
