"""headwater-node over its RPC port, 3 real node processes (no gateway): the raft-backed
commit path, leader redirection, idempotent commits, conditional commits decided at apply,
read-index on followers, repair of a replica that missed the fan-out, and malformed input that
must not hurt a node."""
import os
import socket
import struct
import threading
import time

import hwtest
from cluster import Cluster
from nodeproto import T, NodeClient, crc32c, dec, default_secret, enc, handshake, one

TESTS = []
test = hwtest.collector(TESTS)


class NodeCluster(Cluster):
    """The cluster without its gateway."""

    def __init__(self, **kw):
        os.environ.setdefault("HW_GATEWAY_BIN", os.environ["HW_NODE_BIN"])  # never started
        super().__init__(**kw)

    def start(self, ready_timeout=60.0):
        for n in self.nodes.values():
            n.start()
        self.leader(ready_timeout)

    def procs(self):
        return list(self.nodes.values())

    def client(self, nid):
        return NodeClient(self.nodes[nid].address)

    def shard(self, nid):
        c = self.client(nid)
        try:
            return dec(one(c.status(), 7, b""))
        finally:
            c.close()

    def leader(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for nid in self.nodes:
                try:
                    if one(self.shard(nid), 4, b"") == b"leader":
                        return nid
                except OSError:
                    pass
            time.sleep(0.1)
        raise AssertionError("no leader elected")


def stage_all(cl, nids, key, data):
    up = os.urandom(16)
    for nid in nids:
        c = cl.client(nid)
        c.put(key, data, upload=up)
        c.close()
    return up


@test
def status_reports_the_group(cl):
    leader = cl.leader()
    for nid in cl.nodes:
        c = cl.client(nid)
        st = c.status()
        c.close()
        assert one(st, 1) == nid
        nodes = [dec(b) for b in st.get(6, [])]
        assert sorted(one(n, 1) for n in nodes) == [1, 2, 3]
        assert all(one(n, 3, b"") for n in nodes), "raft addresses learned"
        assert one(dec(one(st, 7, b"")), 3) == leader


@test
def commit_needs_the_leader_and_is_idempotent(cl):
    leader = cl.leader()
    follower = next(n for n in cl.nodes if n != leader)
    data = os.urandom(300_000)
    up = stage_all(cl, cl.nodes, "/t/a/seg1.m4s", data)
    c = cl.client(follower)
    env = c.commit("/t/a/seg1.m4s", up, data, [1, 2, 3])
    assert one(env, 1) == T["ERROR"] and one(env, 4) == 2, env  # NOT_LEADER
    assert one(env, 7, b"").decode() == cl.nodes[leader].address
    assert one(env, 6) == leader
    c = cl.client(leader)
    ok = dec(one(c.commit("/t/a/seg1.m4s", up, data, [1, 2, 3], "video/mp4"), 17, b""))
    version = one(ok, 1)
    assert version > 0 and one(ok, 2) == 1
    again = dec(one(c.commit("/t/a/seg1.m4s", up, data, [1, 2, 3], "video/mp4"), 17, b""))
    assert one(again, 1) == version, "a retried commit made a new version"
    assert one(again, 2) == 1, "a retried commit must answer created as its first application did"
    env = c.commit("/t/a/seg2.m4s", os.urandom(16), data, [1])
    assert one(env, 4) == 4, "a commit without a quorum of holders must be refused"


PRECONDITION_FAILED = 12


@test
def a_retried_delete_deletes_nothing_twice(cl):
    """A gateway retries a DELETE whose answer it lost, with the same op id. If the first attempt
    was applied and the key written again in between, the retry must not delete that newer
    version: it is answered as the first attempt was. Before op ids (the chaos run: a DELETE
    retried across a partition), a PUT acknowledged between the attempts was lost."""
    leader = cl.leader()
    c = cl.client(leader)
    key, op = "/t/del/seg_9.ts", os.urandom(16)
    up = stage_all(cl, cl.nodes, key, b"first")
    assert one(c.commit(key, up, b"first", [1, 2, 3]), 1) == T["COMMIT_OK"]
    env = c.delete(key, op)
    assert one(env, 1) == T["DELETE_OK"], env
    first = dec(one(env, 23, b""))
    assert one(first, 1) == 1, "the first attempt found the key"
    up = stage_all(cl, cl.nodes, key, b"second")
    ok = dec(one(c.commit(key, up, b"second", [1, 2, 3]), 17, b""))
    assert one(ok, 2) == 1, "the key was created again"
    again = dec(one(c.delete(key, op), 23, b""))
    assert one(again, 1) == 1 and one(again, 2) == one(first, 2), \
        f"the retry was not answered as the first attempt: {again} vs {first}"
    wait_applied(cl, one(ok, 1))
    for nid in cl.nodes:
        _, _, body = cl.client(nid).get(key)
        assert body == b"second", f"node {nid}: the retried DELETE deleted the newer version"
    gone = dec(one(c.delete(key, os.urandom(16)), 23, b""))
    assert one(gone, 1) == 1, "a new DELETE (another op id) deletes"




def wait_applied(cl, index, timeout=10.0):
    """Every replica has applied the log up to index."""
    deadline = time.monotonic() + timeout
    for nid in cl.nodes:
        while one(cl.shard(nid), 7) < index:
            assert time.monotonic() < deadline, f"node {nid} did not apply up to {index}"
            time.sleep(0.05)


@test
def a_failed_precondition_changes_nothing_on_any_replica(cl):
    leader = cl.leader()
    key, v1, v2 = "/t/cas/index.m3u8", b"#EXTM3U\n#v1\n", b"#EXTM3U\n#v2\n"
    c = cl.client(leader)
    up1 = stage_all(cl, cl.nodes, key, v1)
    ok = dec(one(c.commit(key, up1, v1, [1, 2, 3], if_none_match="*"), 17, b""))
    version = one(ok, 1)
    assert version > 0 and one(ok, 2) == 1, ok
    etag = '"%x"' % version
    up2 = stage_all(cl, cl.nodes, key, v2)
    for pre in (dict(if_none_match="*"), dict(if_match='"%x"' % (version + 1000)),
                dict(if_match="W/" + etag), dict(if_none_match="W/" + etag),
                dict(if_match=etag, if_none_match=etag), dict(if_match="")):
        env = c.commit(key, up2, v2, [1, 2, 3], **pre)
        assert one(env, 1) == T["ERROR"] and one(env, 4) == PRECONDITION_FAILED, (pre, env)
    wait_applied(cl, one(cl.shard(leader), 7))
    for nid in cl.nodes:  # the failed entries were applied everywhere and changed nothing
        env, meta, body = cl.client(nid).get(key)
        assert body == v1 and one(meta, 7) == version, (nid, env, meta)
    # The same upload with the right ETag commits; a retry of it answers that same success
    # although the key's ETag is now its own version, no longer the one it named.
    ok = dec(one(c.commit(key, up2, v2, [1, 2, 3], if_match=etag), 17, b""))
    v2version = one(ok, 1)
    assert v2version > version and one(ok, 2) == 0, ok
    env = c.commit(key, up2, v2, [1, 2, 3], if_match=etag)
    assert one(env, 1) == T["COMMIT_OK"], env
    assert one(dec(one(env, 17, b"")), 1) == v2version, "a retry made a new version"
    env = c.commit(key, stage_all(cl, cl.nodes, key, b"x"), b"x", [1, 2, 3], if_match="*")
    assert one(env, 1) == T["COMMIT_OK"], "If-Match: * on an existing key"
    absent = "/t/cas/absent.m3u8"
    env = c.commit(absent, stage_all(cl, cl.nodes, absent, b"x"), b"x", [1, 2, 3], if_match="*")
    assert one(env, 4) == PRECONDITION_FAILED, env
    assert one(c.get(absent)[0], 4) == 1, "NOT_FOUND"
    env = c.commit(key, up2, v2, [1, 2, 3], if_match='"' + "a" * 2000 + '"')
    assert one(env, 4) == 4, "an oversized precondition is a BAD_REQUEST"


@test
def concurrent_conditional_commits_have_one_winner(cl):
    leader = cl.leader()
    key, n = "/t/cas/race.m3u8", 8
    c = cl.client(leader)
    base = one(dec(one(c.commit(key, stage_all(cl, cl.nodes, key, b"v0"), b"v0", [1, 2, 3]),
                       17, b"")), 1)
    for pre, k in ((dict(if_match='"%x"' % base), key),
                   (dict(if_none_match="*"), "/t/cas/fresh.m3u8")):
        bodies = [b"body %d" % i for i in range(n)]
        ups = [stage_all(cl, cl.nodes, k, b) for b in bodies]
        clients = [cl.client(leader) for _ in range(n)]
        answers = [None] * n
        go = threading.Barrier(n)

        def run(i):
            go.wait()
            answers[i] = clients[i].commit(k, ups[i], bodies[i], [1, 2, 3], **pre)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [i for i in range(n) if one(answers[i], 1) == T["COMMIT_OK"]]
        lost = [i for i in range(n) if one(answers[i], 4) == PRECONDITION_FAILED]
        assert len(won) == 1 and len(lost) == n - 1, (pre, answers)
        wait_applied(cl, one(cl.shard(leader), 7))
        for nid in cl.nodes:
            assert cl.client(nid).get(k)[2] == bodies[won[0]], (pre, nid)
        for x in clients:
            x.close()


@test
def followers_never_answer_404_for_a_committed_key(cl):
    leader = cl.leader()
    for i in range(5):
        key = f"/t/ri/seg{i}.ts"
        data = os.urandom(1000 + i)
        up = stage_all(cl, cl.nodes, key, data)
        c = cl.client(leader)
        assert one(c.commit(key, up, data, [1, 2, 3]), 1) == T["COMMIT_OK"]
        c.close()
        for nid in cl.nodes:  # straight after the commit, on every replica
            c = cl.client(nid)
            env, meta, body = c.get(key)
            c.close()
            assert body == data, (nid, env)
    c = cl.client(next(n for n in cl.nodes if n != leader))
    env, meta, body = c.get("/t/ri/absent.ts")
    assert one(env, 1) == T["ERROR"] and one(env, 4) == 1, env  # NOT_FOUND after read-index


@test
def a_replica_that_missed_the_fanout_serves_and_repairs(cl):
    leader = cl.leader()
    others = [n for n in cl.nodes if n != leader]
    key, data = "/t/rep/seg.ts", os.urandom(2_500_000)
    up = stage_all(cl, [leader, others[0]], key, data)
    c = cl.client(leader)
    assert one(c.commit(key, up, data, [leader, others[0]]), 1) == T["COMMIT_OK"]
    c = cl.client(others[1])
    env, meta, body = c.get(key)
    assert body == data, "served by relaying from a holder"
    deadline = time.monotonic() + 20
    while one(cl.shard(others[1]), 9) != 0:
        assert time.monotonic() < deadline, "repair backlog did not drain"
        time.sleep(0.1)
    env, meta, body = cl.client(others[1]).get(key)
    assert body == data and one(meta, 10) == 1, "bytes now local"


def volume_files(node):
    out = []
    for root, _, files in os.walk(node.data_dir):
        out += [os.path.join(root, f) for f in files if f.endswith(".vol")]
    return out


def find_in_volumes(node, needle):
    for path in volume_files(node):
        with open(path, "rb") as f:
            at = f.read().find(needle)
        if at >= 0:
            return path, at
    return None, -1


@test
def a_replica_never_serves_bytes_that_fail_their_checksum(cl):
    """Object bytes live in volume files (node/store/vol.h), written once when staged; a whole-
    object read checks the object's crc32c before its first byte: a flipped byte in a volume
    makes that replica refuse the read (UNAVAILABLE, before any byte), while the other replicas
    still serve the object."""
    leader = cl.leader()
    victim = next(n for n in cl.nodes if n != leader)
    key, data = "/t/crc/seg.ts", os.urandom(3_000_000)
    up = stage_all(cl, cl.nodes, key, data)
    assert one(cl.client(leader).commit(key, up, data, [1, 2, 3]), 1) == T["COMMIT_OK"]
    path, at = find_in_volumes(cl.nodes[victim], data[1_500_000:1_500_064])
    assert path is not None, "the object's bytes are not in a volume file"
    with open(path, "r+b") as f:
        f.seek(at + 10)
        b = f.read(1)
        f.seek(at + 10)
        f.write(bytes([b[0] ^ 0x5A]))
    env, meta, body = cl.client(victim).get(key)
    assert body is None and one(env, 1) == T["ERROR"], "a corrupted replica served the object"
    for nid in cl.nodes:
        if nid != victim:
            _, _, good = cl.client(nid).get(key)
            assert good == data, f"node {nid} did not serve the intact object"


@test
def listing_pages_through_keys_in_order(cl):
    leader = cl.leader()
    keys = [f"/t/list/seg{i:03d}.ts" for i in range(25)]
    for k in keys:
        up = stage_all(cl, cl.nodes, k, k.encode())
        assert one(cl.client(leader).commit(k, up, k.encode(), [1, 2, 3]), 1) == T["COMMIT_OK"]
    c = cl.client(leader)
    seen, cursor = [], ""
    while True:
        page, cursor = c.list("/t/list/", cursor, 10)
        assert len(page) <= 10
        seen += [one(m, 1, b"").decode() for m in page]
        if not cursor:
            break
    assert seen == keys, seen
    assert c.list("/t/nothing/")[0] == []


@test
def expired_objects_vanish_everywhere(cl):
    leader = cl.leader()
    data = b"x" * 5000
    up = stage_all(cl, cl.nodes, "/t/ttl/seg.ts", data)
    c = cl.client(leader)
    assert one(c.commit("/t/ttl/seg.ts", up, data, [1, 2, 3], ttl=1), 1) == T["COMMIT_OK"]
    assert c.get("/t/ttl/seg.ts")[2] == data
    deadline = time.monotonic() + 10
    while True:
        answers = [cl.client(n).get("/t/ttl/seg.ts")[0] for n in cl.nodes]
        if all(one(a, 4) == 1 for a in answers):  # NOT_FOUND on every replica
            break
        assert time.monotonic() < deadline, answers
        time.sleep(0.2)
    assert [one(m, 1, b"") for m in c.list("/t/ttl/")[0]] == []
    # The leader's sweep replicates the deletion (an EXPIRE entry in the log).
    deadline = time.monotonic() + 10
    while not any("expiring objects count=1" in line for line in cl.nodes[leader].tail(400)):
        assert time.monotonic() < deadline, "no replicated expiry"
        time.sleep(0.2)


@test
def staged_uploads_that_never_commit_are_collected(cl):
    # The fixture runs nodes with --staged-ttl 5: GC passes every 2.5 s.
    data = os.urandom(200_000)
    up = stage_all(cl, [1], "/t/gc/orphan.ts", data)
    c = cl.client(1)
    c.send(T["FETCH"], 24, [(1, "/t/gc/orphan.ts"), (2, up)])
    env, payload = c.recv()
    assert one(env, 1) == T["DATA"], "a finished staged upload is held"
    while not one(dec(one(env, 19, b"")), 3):
        env, more = c.recv()
        payload += more
    assert payload == data
    deadline = time.monotonic() + 20
    while True:
        c.send(T["FETCH"], 24, [(1, "/t/gc/orphan.ts"), (2, up)])
        env, _ = c.recv()
        while one(env, 1) == T["DATA"] and not one(dec(one(env, 19, b"")), 3):
            env, _ = c.recv()
        if one(env, 1) == T["ERROR"] and one(env, 4) == 1:
            break
        assert time.monotonic() < deadline, "the orphaned upload was never collected"
        time.sleep(0.5)
    assert any("gc dropped staged uploads" in line for line in cl.nodes[1].tail(400))


@test
def bad_uploads_are_refused(cl):
    c = cl.client(1)
    up = os.urandom(16)
    c.send(T["STAGE"], 12, [(1, up), (2, "/t/bad/x.ts"), (3, 100)], b"abc")
    env, _ = c.recv()
    assert one(env, 1) == T["ERROR"], "a first chunk at offset 100"
    c.send(T["STAGE"], 12, [(1, up), (2, "/t/bad/x.ts"), (3, 0)], b"abc")
    assert one(c.recv()[0], 1) == T["STAGE_OK"]
    c.send(T["FINISH"], 14, [(1, up), (2, "/t/bad/x.ts"), (3, 3), (4, crc32c(b"abd"))])
    env, _ = c.recv()
    assert one(env, 4) == 5, env  # CHECKSUM
    c.send(T["FETCH"], 24, [(1, "/t/bad/x.ts"), (2, os.urandom(16))])
    env, _ = c.recv()
    assert one(env, 4) == 1, env  # NOT_FOUND


@test
def garbage_and_wrong_versions_close_only_that_connection(cl):
    addr = ("127.0.0.1", cl.nodes[2].rpc_port)
    junks = (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096),
             struct.pack(">II", 0x7FFFFFFF, 10), struct.pack(">II", 20, 16) + b"\xff" * 16)
    for authenticated, junk in [(a, j) for a in (False, True) for j in junks]:
        s = socket.create_connection(addr, timeout=5)
        if authenticated:  # garbage frames from a peer that holds the secret
            handshake(s, default_secret())
        try:  # the node may refuse (close) at the first byte: before we finish
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        got = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            got += b
        s.close()
    s = socket.create_connection(addr, timeout=5)
    handshake(s, default_secret())  # authenticated, then a HELLO of the wrong version
    env = enc([(1, T["HELLO"]), (2, 1), (10, [(1, 99)])])
    s.sendall(struct.pack(">II", 4 + len(env), len(env)) + env)
    head = s.recv(8)
    flen, hlen = struct.unpack(">II", head)
    reply = dec(s.recv(hlen))
    assert one(reply, 4) == 10, reply  # CODE_VERSION
    s.close()
    c = cl.client(2)
    assert one(c.status(), 1) == 2, "the node still serves"
    assert cl.nodes[2].alive()


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=lambda: NodeCluster(name="hw-node", node_args=["--staged-ttl", "5"]))
