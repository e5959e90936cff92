#!/usr/bin/env python3
"""Issue 9 coherence over real daemons: 3 nodes + 2 caching gateways on loopback.

Each step is a property a CDN would notice: a write or delete acknowledged through gateway A is
seen by the very next read through gateway B, although B cached the old version (segment kinds
included); a paused gateway cannot serve its cached copy after it resumes; a playlist is served
from B's cache until a write replaces it (no node reads while it does not change), and the
replacement is what B serves next; a listing started after an acknowledged create or delete
reflects it. Before issue 9, B served its cached copy of an overwritten or deleted segment until
LRU evicted it (docs/chaos.md)."""
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import HOST, Proc, TwoGateways, free_ports, request  # noqa: E402
from nodeproto import T, NodeClient, one  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)
GW_ARGS = ["--threads", "2", "--cache-size", "64M"]
PREFIX = "/live/coh"


def put_ok(cl, key, body):
    r = cl.a("PUT", key, body)
    assert r.status in (201, 204), f"PUT {key}: {r}"


def b_reads(cl, key, want, what):
    r = cl.b("GET", key)
    got = r.body if r.status == 200 else r.status
    assert got == want, f"{what}: gateway B answered {got!r} for {key}, want {want!r}"


@test
def overwrite_is_seen_through_the_other_cache(cl):
    for kind in ("ts", "m4s", "m3u8", "mpd"):
        key = f"{PREFIX}/ow/seg.{kind}"
        put_ok(cl, key, b"version-1 " + kind.encode())
        b_reads(cl, key, b"version-1 " + kind.encode(), "first read")
        b_reads(cl, key, b"version-1 " + kind.encode(), "cached read")
        put_ok(cl, key, b"version-2 " + kind.encode())
        b_reads(cl, key, b"version-2 " + kind.encode(), "the read after the acknowledged overwrite")
        r = cl.b("GET", key, headers={"Range": "bytes=0-8"})
        assert r.status == 206 and r.body == b"version-2", f"Range after overwrite: {r}"
        r = cl.b("HEAD", key)
        assert r.status == 200 and r.header("content-length") == str(len(b"version-2 " + kind.encode())), r


@test
def delete_is_seen_through_the_other_cache(cl):
    key = f"{PREFIX}/del/seg_7.ts"
    put_ok(cl, key, b"soon gone")
    b_reads(cl, key, b"soon gone", "first read")
    b_reads(cl, key, b"soon gone", "cached read")
    r = cl.a("DELETE", key)
    assert r.status == 204, f"DELETE: {r}"
    b_reads(cl, key, 404, "the read after the acknowledged delete")
    put_ok(cl, key, b"back again")  # a restarted encoder reuses the name
    b_reads(cl, key, b"back again", "the read after re-creating it")


@test
def a_paused_gateway_does_not_serve_its_cache_after_resuming(cl):
    key = f"{PREFIX}/pause/seg_1.m4s"
    put_ok(cl, key, b"old")
    b_reads(cl, key, b"old", "first read")
    b_reads(cl, key, b"old", "cached read")
    cl.gw_b.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        put_ok(cl, key, b"new")  # acknowledged once B's lease ran out
        print(f"  overwrite acknowledged {time.monotonic() - t0:.2f}s after B was paused")
    finally:
        cl.gw_b.signal(signal.SIGCONT)
    b_reads(cl, key, b"new", "the first read after resuming")


@test
def a_delete_that_finds_nothing_is_held_like_the_one_that_did(cl):
    """A DELETE answered 404 tells its client the object is gone, so it is answered only once
    every lease holder knows the delete that removed it, exactly as that delete is. Two DELETEs
    race through A while B (holding the object in its cache and a lease) is paused: the one that
    finds the object is held until B's lease runs out. Before, the other's 404 came at once; in
    the chaos run a client then read the deleted object from B's cache after its own 404."""
    key = f"{PREFIX}/del404/seg_3.ts"
    put_ok(cl, key, b"deleted twice")
    b_reads(cl, key, b"deleted twice", "first read")
    b_reads(cl, key, b"deleted twice", "cached read")
    done = {}

    def delete(n):
        r = cl.a("DELETE", key)
        done[n] = (r.status, time.monotonic())

    threads = [threading.Thread(target=delete, args=(n,)) for n in range(2)]
    cl.gw_b.signal(signal.SIGSTOP)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        cl.gw_b.signal(signal.SIGCONT)
    answers = {status: at for status, at in done.values()}
    assert sorted(answers) == [204, 404], f"two DELETEs answered {sorted(done.values())}"
    early = answers[204] - answers[404]
    print(f"  the 404 came {early * 1000:.0f} ms before the 204")
    assert early < 0.05, (f"the 404 DELETE was answered {early * 1000:.0f} ms before the delete "
                          "it reveals was known to the paused gateway B")
    b_reads(cl, key, 404, "the read after resuming")


@test
def a_playlist_is_served_from_cache_until_replaced(cl):
    key = f"{PREFIX}/pl/index.m3u8"
    put_ok(cl, key, b"#EXTM3U\n#one\n")
    b_reads(cl, key, b"#EXTM3U\n#one\n", "first read")
    before = cl.b_metric("headwater_gateway_node_reads_total")
    for _ in range(50):
        b_reads(cl, key, b"#EXTM3U\n#one\n", "polling")
    reads = cl.b_metric("headwater_gateway_node_reads_total") - before
    assert reads == 0, f"{reads} node reads for 50 polls of an unchanged playlist"
    put_ok(cl, key, b"#EXTM3U\n#two\n")
    b_reads(cl, key, b"#EXTM3U\n#two\n", "the poll after the acknowledged replacement")


@test
def what_a_gateway_wrote_is_read_from_its_cache_and_stays_current(cl):
    """Write-through: B's own PUT puts the object in B's cache, so its first reader needs no
    node; a later write or delete through A still replaces it at once."""
    for kind in ("ts", "m3u8"):
        key = f"{PREFIX}/wt/obj.{kind}"
        body = os.urandom(300_000) if kind == "ts" else b"#EXTM3U\n#wt-one\n"
        wt0 = cl.b_metric("headwater_gateway_cache_write_through_total")
        r = cl.b("PUT", key, body)
        assert r.status == 201, f"PUT via B: {r}"
        assert cl.b_metric("headwater_gateway_cache_write_through_total") == wt0 + 1
        reads0 = cl.b_metric("headwater_gateway_node_reads_total")
        r = cl.b("GET", key)
        assert r.status == 200 and r.body == body, f"first read via B: {r.status}"
        assert r.header("etag") is not None and r.header("last-modified") is not None
        reads = cl.b_metric("headwater_gateway_node_reads_total") - reads0
        assert reads == 0, f"{reads} node reads for the first read of what B just wrote"
        r = cl.b("GET", key, headers={"Range": "bytes=5-9"})
        assert r.status == 206 and r.body == body[5:10], f"range via B: {r.status}"
        put_ok(cl, key, b"version-2 through A")
        b_reads(cl, key, b"version-2 through A", "the read after A replaced it")
        assert cl.b("PUT", key, body).status == 204
        assert cl.a("DELETE", key).status == 204
        b_reads(cl, key, 404, "the read after A deleted it")


@test
def a_listing_reflects_acknowledged_creates_and_deletes(cl):
    base = f"{PREFIX}/ls"
    for i in range(3):
        put_ok(cl, f"{base}/s{i}.ts", b"x")
    r = cl.b("GET", base + "/?list")
    assert r.status == 200, r
    keys = [o["key"] for o in r.json()["objects"]]
    assert keys == [f"{base}/s{i}.ts" for i in range(3)], keys
    assert cl.a("DELETE", f"{base}/s1.ts").status == 204
    put_ok(cl, f"{base}/s3.ts", b"y")
    keys = [o["key"] for o in cl.b("GET", base + "/?list").json()["objects"]]
    assert keys == [f"{base}/s0.ts", f"{base}/s2.ts", f"{base}/s3.ts"], keys


@test
def a_follower_relays_a_write_to_the_leader(cl):
    """What a gateway cut off from the leader does (gateway/cluster/leader.c): the COMMIT goes
    to a follower with relay set, which forwards it; without relay the follower refuses."""
    leader = cl.leader_id(30)
    follower = next(n for n in cl.nodes if n != leader)
    key, data = f"{PREFIX}/relay/seg_1.ts", b"relayed bytes"
    upload = os.urandom(16)
    for nid in cl.nodes:
        c = NodeClient(cl.nodes[nid].address)
        c.put(key, data, upload=upload)
        c.close()
    c = NodeClient(cl.nodes[follower].address)
    env = c.commit(key, upload, data, list(cl.nodes))
    assert one(env, 1) == T["ERROR"] and one(env, 4) == 2, f"no relay: NOT_LEADER, got {env}"
    env = c.commit(key, upload, data, list(cl.nodes), relay=True)
    c.close()
    assert one(env, 1) == T["COMMIT_OK"], f"relayed COMMIT: {env}"
    b_reads(cl, key, data, "the relayed write")


@test
def reads_stay_available_and_current_while_the_leader_dies(cl):
    """A playlist and a segment read through B 50 times a second while the writer replaces the
    playlist through A and the leader is SIGKILLed: every read is 200, and no read returns a
    playlist older than one acknowledged before it began (the node is restarted after)."""
    pl, seg = f"{PREFIX}/fail/index.m3u8", f"{PREFIX}/fail/seg_1.ts"
    put_ok(cl, seg, b"segment bytes")
    put_ok(cl, pl, b"#EXTM3U\n#0\n")
    acked = [0]  # the highest playlist number acknowledged so far
    stop = threading.Event()
    bad = []

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            r = cl.a("PUT", pl, f"#EXTM3U\n#{i}\n".encode())
            if r.status in (201, 204):
                acked[0] = max(acked[0], i)
            time.sleep(0.05)

    def reader():
        while not stop.is_set():
            floor = acked[0]
            for key in (pl, seg):
                r = cl.b("GET", key)
                if r.status != 200:
                    bad.append(f"GET {key}: {r.status} {r.body[:120]!r}")
                elif key == pl and int(r.body.split(b"#")[2]) < floor:
                    bad.append(f"GET {key}: playlist {r.body!r} older than #{floor}")
            time.sleep(0.02)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        leader = cl.leader_id(30)
        cl.kill(leader)
        t0 = time.monotonic()
        cl.leader_id(30)  # a live one: the killed node is not
        print(f"  node {leader} killed; new leader after {time.monotonic() - t0:.2f}s")
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        cl.restart(leader)
    assert not bad, f"{len(bad)} bad reads, first: {bad[:3]}"
    assert acked[0] > 10, f"the writer got only {acked[0]} acknowledgements"
    cl.wait_for(lambda: cl.caught_up(leader), 60, f"node {leader} caught up")


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=lambda: TwoGateways(GW_ARGS, name="hw-coherence"))
