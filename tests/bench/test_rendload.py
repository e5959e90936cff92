#!/usr/bin/env python3
"""Smoke test of the issue-10 load generator (tests/bench/rendload.c) so it cannot rot: 2 live
renditions for 3 s and 2 writers for 2 s against a one-node cluster + gateway. Asserts only that
it ran to the end and printed its START/END markers and a JSON report naming the work it did;
no timing is asserted (the benchmark itself is tests/bench/renditions.sh, never run in CI)."""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hwtest  # noqa: E402
from cluster import Cluster  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)


def rendload(cl, *args):
    argv = [os.environ["HW_RENDLOAD_BIN"], "--port", str(cl.gw_port)] + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"rendload exited {p.returncode}: {p.stderr[-2000:]}"
    lines = p.stdout.splitlines()
    assert lines[:2] == ["START", "END"], f"markers missing: {p.stdout[:500]}"
    return json.loads(lines[2])


@test
def renditions_run_and_report(cl):
    r = rendload(cl, "--renditions", "2", "--warmup", "1", "--duration", "3", "--prefix",
                 "/live/smoke", "--seg-bytes", "100000")
    assert r["mode"] == "renditions" and r["renditions"] == 2, r
    assert r["seg_puts"] > 0 and r["seg_gets"] > 0, r
    assert len(r["ack_max_per_second_ms"]) == 3, r
    got = cl.get("/live/smoke/r1/index.m3u8")
    assert got.status == 200 and b"#EXT-X-MEDIA-SEQUENCE" in got.body, got


@test
def writers_run_and_report(cl):
    r = rendload(cl, "--writers", "2", "--warmup", "0", "--duration", "2", "--prefix",
                 "/bench/smoke", "--keys", "2", "--obj-bytes", "20000")
    assert r["mode"] == "writers" and r["puts"] > 0 and r["acked_bytes"] > 0, r
    assert cl.get("/bench/smoke/w1/obj_0.bin").status == 200


@test
def bad_arguments_are_refused(cl):
    p = subprocess.run([os.environ["HW_RENDLOAD_BIN"], "--port", "0", "--renditions", "2"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "usage" in p.stderr, (p.returncode, p.stderr)


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=lambda: Cluster(nodes=1, name="hw-rendload"))
