#!/usr/bin/env python3
"""Issue 2 cluster behaviour over real daemons: 3 nodes + 1 gateway on loopback.

Writes 100 objects of 1 KB - 8 MB, reads them back byte-exact, SIGKILLs the leader and keeps
writing and reading, restarts it and waits for it to catch up and repair, checks nothing
acknowledged was lost, survives a second failure, then loses quorum (503 + Retry-After within
3 s) and comes back by itself. Steps share one cluster and run in order."""
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import Cluster, sha256  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)

# What the gateway must answer for a PUT without Content-Type (issue 2's table).
TYPES = {
    "ts": "video/mp2t", "m4s": "video/mp4", "mp4": "video/mp4", "cmfv": "video/mp4",
    "cmfa": "audio/mp4", "m4a": "audio/mp4", "aac": "audio/aac", "vtt": "text/vtt",
    "m3u8": "application/vnd.apple.mpegurl", "mpd": "application/dash+xml",
}
EXPLICIT_TYPE = "application/x-headwater-test"
ELECTION_DEADLINE = 30.0   # seconds for a new leader after a SIGKILL
CATCH_UP_DEADLINE = 180.0  # seconds for a restarted node to reach lag 0 and repair everything
NO_QUORUM_BUDGET = 3.0     # issue 2: a write without quorum answers 503 within 3 s
SLACK = 1.0

rng = random.Random(20261126)
acked = {}  # key -> (sha256, size, content type) of every acknowledged write
state = {}


def media_type(v):
    return (v or "").split(";")[0].strip().lower()


def make_object(i, size):
    ext = ["ts", "m4s", "mp4", "bin", "aac", "cmfa", "vtt", "m3u8"][i % 8]
    key = f"/it/live/ch{i % 4}/obj_{i:04d}.{ext}"
    headers = {}
    ctype = TYPES.get(ext)
    if ext == "bin" or i % 11 == 0:
        ctype = EXPLICIT_TYPE
        headers["Content-Type"] = EXPLICIT_TYPE
    return key, os.urandom(size), headers, ctype


def sizes_100():
    sizes = [1024, 8 << 20]
    sizes += [rng.randint(1024, 64 << 10) for _ in range(55)]
    sizes += [rng.randint(64 << 10, 1 << 20) for _ in range(25)]
    sizes += [rng.randint(1 << 20, 8 << 20) for _ in range(18)]
    rng.shuffle(sizes)
    return sizes


def check_get(cl, key, retry_503=False):
    digest, size, ctype = acked[key]
    r = cl.get_retry(key) if retry_503 else cl.get(key)
    assert r.status == 200, f"GET {key}: {r}"
    assert len(r.body) == size, f"GET {key}: {len(r.body)} bytes, want {size}"
    assert sha256(r.body) == digest, f"GET {key}: content differs from what was acknowledged"
    assert r.header("content-length") == str(size), f"GET {key}: Content-Length {r.headers}"
    assert media_type(r.header("content-type")) == ctype, \
        f"GET {key}: Content-Type {r.header('content-type')!r}, want {ctype!r}"
    etag = r.header("etag")
    tag = etag[2:] if etag and etag.startswith("W/") else etag
    assert tag and len(tag) >= 3 and tag.startswith('"') and tag.endswith('"'), \
        f"GET {key}: ETag {etag!r} is not a quoted entity tag"
    return r


def put_new(cl, i, size, deadline=None):
    key, body, headers, ctype = make_object(i, size)
    r = cl.put_retry(key, body, headers, deadline) if deadline else cl.put(key, body, headers)
    assert r.status == 201, f"PUT {key} ({size} bytes): {r}"
    acked[key] = (sha256(body), size, ctype)
    return key


@test
def put_100_objects_mixed_sizes(cl):
    total = 0
    t0 = time.monotonic()
    for i, size in enumerate(sizes_100()):
        put_new(cl, i, size)
        total += size
    dt = time.monotonic() - t0
    print(f"  stored 100 objects, {total / 1e6:.1f} MB in {dt:.1f}s ({total / 1e6 / dt:.1f} MB/s)")
    state["next"] = 100


@test(needs=["put_100_objects_mixed_sizes"])
def read_back_byte_exact(cl):
    for key in list(acked):
        check_get(cl, key)
    r = cl.get("/it/live/never-written.ts")
    assert r.status == 404, f"GET of a key never written: {r}"
    assert r.json().get("error") == "not_found", r


@test(needs=["put_100_objects_mixed_sizes"])
def head_matches_get(cl):
    key = next(iter(acked))
    g = check_get(cl, key)
    h = cl.http("HEAD", key)
    assert h.status == 200 and h.body == b"", h
    for name in ("content-length", "content-type", "etag"):
        assert h.header(name) == g.header(name), \
            f"HEAD {name}: {h.header(name)} vs GET {g.header(name)}"


@test(needs=["put_100_objects_mixed_sizes"])
def overwrite_answers_204_and_changes_etag(cl):
    key = next(k for k in acked if k.endswith(".ts"))
    before = check_get(cl, key).header("etag")
    body = os.urandom(200 << 10)
    r = cl.put(key, body)
    assert r.status == 204, f"PUT over an existing key: {r}"
    acked[key] = (sha256(body), len(body), TYPES["ts"])
    # Read-your-writes: the gateway reads from the shard leader first, which applied the
    # commit before the 204 went out, so the very next GET sees the new content.
    r = cl.get(key)
    assert r.status == 200 and sha256(r.body) == acked[key][0], "stale read after overwrite"
    for _ in range(5):
        after = check_get(cl, key).header("etag")
    assert after != before, f"ETag unchanged after overwrite ({after})"


@test
def delete_then_404(cl):
    key = "/it/live/del/once.ts"
    body = os.urandom(4096)
    assert cl.put(key, body).status == 201
    r = cl.http("DELETE", key)
    assert r.status == 204, f"DELETE: {r}"
    # Read-your-writes, as for overwrites: the next GET already answers 404.
    assert cl.get(key).status == 404
    r = cl.http("DELETE", key)
    assert r.status == 404, f"second DELETE: {r}"


@test(needs=["put_100_objects_mixed_sizes"])
def sigkill_leader_keep_writing_and_reading(cl):
    leader = cl.leader_id()
    state["killed"] = leader
    print(f"  leader is node {leader}; SIGKILL")
    t0 = time.monotonic()
    cl.kill(leader)
    first = None
    keys = list(acked)
    for n in range(20):
        i = state["next"]
        state["next"] += 1
        size = rng.choice([1024, 30 << 10, 300 << 10, 1 << 20, 3 << 20])
        key = put_new(cl, i, size, deadline=ELECTION_DEADLINE)
        if first is None:
            first = time.monotonic() - t0
            print(f"  first write after the kill acknowledged in {first:.1f}s")
        check_get(cl, key, retry_503=True)
        check_get(cl, rng.choice(keys), retry_503=True)
    new_leader = cl.leader_id()
    assert new_leader != leader, "the killed node is still reported as leader"
    print(f"  new leader: node {new_leader}")


@test(needs=["sigkill_leader_keep_writing_and_reading"])
def restarted_node_catches_up_and_repairs(cl):
    nid = state["killed"]
    t0 = time.monotonic()
    cl.restart(nid)
    cl.wait_for(lambda: cl.caught_up(nid), CATCH_UP_DEADLINE,
                f"node {nid}: reachable, lag 0, repair_backlog 0")
    print(f"  node {nid} caught up and repaired in {time.monotonic() - t0:.1f}s")
    for other in cl.nodes:
        cl.wait_for(lambda: cl.caught_up(other), CATCH_UP_DEADLINE, f"node {other} caught up")


@test(needs=["restarted_node_catches_up_and_repairs"])
def nothing_acknowledged_lost(cl):
    for key in list(acked):
        check_get(cl, key, retry_503=True)


@test(needs=["restarted_node_catches_up_and_repairs"])
def second_failure_after_repair_loses_nothing(cl):
    cl.ensure_all_up()
    # The repaired node must now be able to stand in for another: kill one of the others.
    repaired = state["killed"]
    leader = cl.leader_id()
    victim = leader if leader != repaired else next(n for n in cl.nodes if n != repaired)
    print(f"  SIGKILL node {victim} (repaired node {repaired} stays)")
    cl.kill(victim)
    for key in list(acked):
        check_get(cl, key, retry_503=True)
    cl.restart(victim)
    for nid in cl.nodes:
        cl.wait_for(lambda: cl.caught_up(nid), CATCH_UP_DEADLINE, f"node {nid} caught up")


@test
def no_quorum_put_answers_503_fast(cl):
    cl.ensure_all_up()
    survivor = cl.leader_id()  # keep the leader: the hardest case (it still thinks it leads)
    down = [n for n in cl.nodes if n != survivor]
    state["down"] = down
    for nid in down:
        cl.kill(nid)
    print(f"  killed nodes {down}; node {survivor} alone")
    for attempt in range(3):
        key = f"/it/noquorum/refused_{attempt}.ts"
        state.setdefault("refused", []).append(key)
        r = cl.put(key, os.urandom(64 << 10), timeout=NO_QUORUM_BUDGET + 10)
        print(f"  PUT without quorum: {r.status} in {r.elapsed:.2f}s")
        assert r.status == 503, f"PUT without quorum: {r}"
        assert r.elapsed <= NO_QUORUM_BUDGET + SLACK, f"503 took {r.elapsed:.2f}s"
        ra = r.header("retry-after")
        assert ra is not None and ra.strip().isdigit(), f"Retry-After missing/bad: {r.headers}"
        body = r.json()
        assert body.get("error") == "no_quorum", body
        assert body.get("committed") is False, f"refused write must say committed:false: {body}"
        time.sleep(1.0)
    cl.wait_for(lambda: cl.admin("GET", "/readyz").status != 200, 10.0, "/readyz != 200")


@test(needs=["no_quorum_put_answers_503_fast"])
def service_resumes_when_a_node_returns(cl):
    back = state["down"][0]
    cl.restart(back)
    t0 = time.monotonic()
    i = state["next"]
    state["next"] += 1
    key = put_new(cl, i, 100 << 10, deadline=60.0)
    print(f"  node {back} restarted; a PUT succeeded after {time.monotonic() - t0:.1f}s")
    check_get(cl, key, retry_503=True)
    for refused in state["refused"]:
        r = cl.get_retry(refused)
        assert r.status == 404, f"a write refused with 503 is visible: {refused}: {r}"


@test(needs=["put_100_objects_mixed_sizes"])
def all_back_consistent(cl):
    cl.ensure_all_up()
    for nid in cl.nodes:
        cl.wait_for(lambda: cl.caught_up(nid), CATCH_UP_DEADLINE, f"node {nid} caught up")
    for key in list(acked):
        check_get(cl, key, retry_503=True)
    print(f"  {len(acked)} acknowledged objects all readable byte-exact")


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=lambda: Cluster(nodes=3, name="hw-cluster"))
