#!/usr/bin/env bash
# Build deploy/Containerfile with podman, offline, and run headwater-node --help and
# headwater-gateway --help from the image.
#
# No registry is reachable here, so the Containerfile's base (docker.io/library/debian:bookworm)
# is made locally: mmdebstrap from this machine's apt sources -> a tarball cached at
# $HW_BASE_TAR (default /var/tmp/headwater-base-bookworm.tar) -> `podman import`, tagged as the
# base. The Containerfile itself is the standard one operators build (its build stage compiles
# the project with meson: under a minute on 2 cores; podman caches the apt layers).
# `podman run` is refused by this sandbox's rlimits, so the binaries run through
# `podman image mount` + chroot. Nothing is skipped: if podman cannot build, this fails.
# Measured on 2 shared cores: first run ~140 s (mmdebstrap ~50 s, apt + compile ~90 s); a rerun
# after a source change ~25 s (compile only); unchanged sources ~5 s. Tags kept:
# localhost/headwater:test, localhost/headwater:test-build, the base; `podman image prune` drops
# the untagged layers of earlier runs.
# Ends with `hwtest: N passed, N failed` like the Python suites.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE_TAR=${HW_BASE_TAR:-/var/tmp/headwater-base-bookworm.tar}
BASE_TAG=docker.io/library/debian:bookworm
IMAGE=localhost/headwater:test
passed=0
failed=0
tmp=$(mktemp -d /tmp/hw-image-XXXXXX)
mounted=""
cleanup() {
    if [[ -n "$mounted" ]]; then podman image unmount "$IMAGE" >/dev/null 2>&1; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# podman reads /etc/containers/policy.json; on a machine where containers-common is not
# configured, pass the same accept-anything policy explicitly (local images only).
cat >"$tmp/policy.json" <<'JSON'
{"default": [{"type": "insecureAcceptAnything"}]}
JSON
POLICY=(--signature-policy "$tmp/policy.json")

step() { # name command...
    local name=$1
    shift
    echo "---- $name"
    local t0=$SECONDS
    if "$@"; then
        echo "PASS $name [$((SECONDS - t0))s]"
        passed=$((passed + 1))
        return 0
    fi
    echo "FAIL $name [$((SECONDS - t0))s]"
    failed=$((failed + 1))
    return 1
}

make_base() {
    if [[ ! -s "$BASE_TAR" ]]; then
        local sources=/etc/apt/sources.list.d/debian.sources
        [[ -f $sources ]] || sources=/etc/apt/sources.list
        echo "making $BASE_TAR with mmdebstrap from $sources"
        mmdebstrap --quiet --variant=minbase --mode=auto --format=tar bookworm "$BASE_TAR.part" "$sources" &&
            mv "$BASE_TAR.part" "$BASE_TAR" || return 1
    fi
    # Re-import only when the tag is missing (the import is cheap, the tarball is the cache).
    podman image exists "$BASE_TAG" ||
        podman import "${POLICY[@]}" --change 'CMD ["/bin/bash"]' "$BASE_TAR" "$BASE_TAG" \
            >/dev/null
}

build_image() {
    # The build stage is tagged too so that pruning keeps its cached apt layer (reruns then
    # only compile); the full build reuses every cached build-stage step.
    local b=(podman build --isolation chroot "${POLICY[@]}" -f "$ROOT/deploy/Containerfile")
    "${b[@]}" --target build -t "$IMAGE-build" "$ROOT" >"$tmp/build.log" 2>&1 &&
        "${b[@]}" -t "$IMAGE" "$ROOT" >>"$tmp/build.log" 2>&1 || {
        tail -40 "$tmp/build.log"
        return 1
    }
    # Each run leaves the previous run's layers untagged: drop them (tagged images keep theirs).
    podman image prune -f >/dev/null
}

mount_image() {
    [[ -n "$mounted" ]] || mounted=$(podman image mount "$IMAGE") || return 1
    mnt=$mounted
}

run_help() { # binary pattern
    local mnt out
    mount_image || return 1
    out=$(chroot "$mnt" "/usr/bin/$1" --help) || {
        echo "$1 --help failed in the image"
        return 1
    }
    grep -q -- "$2" <<<"$out" || {
        echo "$1 --help does not list $2:"
        echo "$out"
        return 1
    }
}

image_config() {
    local user entry
    user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE") || return 1
    entry=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE") || return 1
    [[ $user == 10001:10001 ]] || {
        echo "image user is '$user', want 10001:10001 (non-root)"
        return 1
    }
    [[ $entry == '["/usr/bin/headwater-node"]' ]] || {
        echo "entrypoint $entry"
        return 1
    }
    local mnt
    mount_image || return 1
    # only the runtime: no compiler, no headers, no build tree in the final image
    for f in usr/bin/gcc usr/include/uv.h src build; do
        [[ ! -e "$mnt/$f" ]] || {
            echo "runtime image contains /$f"
            return 1
        }
    done
    # every shared library the binaries need resolves inside the image
    for b in headwater-node headwater-gateway headwaterctl; do
        if chroot "$mnt" /usr/bin/ldd "/usr/bin/$b" | grep -q "not found"; then
            chroot "$mnt" /usr/bin/ldd "/usr/bin/$b"
            return 1
        fi
    done
}

t_start=$SECONDS
if step base_image make_base && step podman_build build_image; then
    step node_help_in_image run_help headwater-node "--admin-listen"
    step gateway_help_in_image run_help headwater-gateway "--tls-listen"
    step image_runtime_only image_config
else
    for n in node_help_in_image gateway_help_in_image image_runtime_only; do
        echo "FAIL $n (not run: the image did not build)"
        failed=$((failed + 1))
    done
fi
echo "hwtest: total time $((SECONDS - t_start))s"
echo "hwtest: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
