"""An authenticated cluster (issue 8 section 4): 3 nodes + gateway sharing a cluster secret.
Raw clients without the secret, or with a wrong one, get nothing from the node RPC port and
cannot make raft do anything (the audit's packets: an AppendEntries with an invalid entry type,
a RequestVote with term 2^64-1, a forged AppendEntries claiming the leader's id, a handshake
announcing a 64 MiB address); after them the cluster keeps its leader and term and serves
every object. The legitimate cluster survives SIGKILL + restart; a node with a wrong secret
cannot join.

HW_AUTH_INSECURE=1 runs the same attacks against a cluster started with --insecure (raft's stock
TCP transport, no RPC handshake): they must fail there, which is how these tests were shown to
catch the old behaviour."""
import os
import socket
import struct
import subprocess
import time

import hwtest
from cluster import HOST, Cluster, free_ports
from nodeproto import (CHAN_RAFT, CHAN_RPC, HELLO_FIXED, ROLE_NODE, T, NodeClient, auth_hello,
                       auth_mac, crc32c, dec, enc, handshake, one, recv_exact)

TESTS = []
test = hwtest.collector(TESTS)
INSECURE = os.environ.get("HW_AUTH_INSECURE") == "1"
WRONG = b"this-is-not-the-cluster-secret-0123456789"
OBJECTS = {f"/auth/obj{i}.ts": os.urandom(3000 + i) for i in range(4)}
OBJECTS["/private/secret.bin"] = b"private bytes " * 100


class AuthCluster(Cluster):
    def __init__(self):
        flags = ["--insecure"] if INSECURE else []
        # Small snapshots: a node that was down catches up by InstallSnapshot (through the
        # raft guard) in a_killed_node_restarts_and_rejoins.
        super().__init__(nodes=3, name="hw-auth", node_args=flags + ["--snapshot-threshold", "16"],
                         gateway_args=flags)

    def secret(self):
        with open(self.secret_file, "rb") as f:
            return f.read().rstrip(b"\r\n\t ")

    def client(self, nid):
        return NodeClient(self.nodes[nid].address, secret=None if INSECURE else "env")

    def rpc_status(self, nid):
        c = self.client(nid)
        try:
            return c.status()
        finally:
            c.close()

    def shard(self, nid):
        return dec(one(self.rpc_status(nid), 7, b""))

    def terms(self, skip=()):
        return {nid: one(self.shard(nid), 5) for nid, n in self.nodes.items()
                if n.alive() and nid not in skip}

    def refusals(self, nid):
        st = self.rpc_status(nid)
        out = {}
        for r in st.get(12, []):
            d = dec(r)
            out[one(d, 1, b"").decode()] = one(d, 2)
        return out


def frame(typ, field, body, req=1, payload=b""):
    env = enc([(1, typ), (2, req), (3, 0)] + ([(field, body)] if field else []))
    return struct.pack(">II", 4 + len(env) + len(payload), len(env)) + env + payload


HELLO = frame(T["HELLO"], 10, [(1, 2), (2, 0)])
FORGED_UPLOAD = os.urandom(16)
ATTACKS = {
    "hello": HELLO,
    "status": HELLO + frame(T["STATUS"], 0, None, 2),
    "list": HELLO + frame(T["LIST"], 27, [(1, "/")], 2),
    "get": HELLO + frame(T["GET"], 18, [(1, "/private/secret.bin")], 2),
    "head": HELLO + frame(T["HEAD"], 20, [(1, "/private/secret.bin")], 2),
    "fetch": HELLO + frame(T["FETCH"], 24, [(1, "/private/secret.bin")], 2),
    "stage": HELLO + frame(T["STAGE"], 12, [(1, FORGED_UPLOAD), (2, "/auth/obj0.ts"), (3, 0)], 2,
                           b"forged"),
    "commit": HELLO + frame(T["COMMIT"], 16, [(1, "/auth/obj0.ts"), (2, FORGED_UPLOAD), (3, 6),
                                              (4, crc32c(b"forged")), (5, "text/html"),
                                              (6, [1, 2, 3])], 2),
    "commit_fake_holders": HELLO + frame(T["COMMIT"], 16, [(1, "/auth/forged.ts"),
                                                           (2, FORGED_UPLOAD), (3, 6),
                                                           (4, 1), (6, [77, 78, 79])], 2),
    "delete": HELLO + frame(T["DELETE"], 22, [(1, "/auth/obj1.ts")], 2),
}


def drain(s, timeout=5.0):
    """Everything the peer sends until it closes (or timeout: then None marks 'still open')."""
    s.settimeout(timeout)
    got = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            return got
        except socket.timeout:
            return None
        if not b:
            return got
        got += b
    return None


def only_an_auth_hello(got):
    """The node's own HELLO of the cluster handshake is all a refused peer ever receives."""
    return got is not None and (got == b"" or (got[:4] == b"HWA1" and
                                               len(got) == HELLO_FIXED + got[7]))


def attack_rpc(port, data, secret=None):
    s = socket.create_connection((HOST, port), timeout=5)
    try:
        if secret is not None:  # a well-formed handshake, the wrong secret, frames right after
            mine = auth_hello(2, CHAN_RPC)
            s.sendall(mine)
            head = recv_exact(s, HELLO_FIXED)
            theirs = head + recv_exact(s, head[7])
            s.sendall(auth_mac(secret, b"I", mine, theirs) + data)
            return theirs + (drain(s) or b"")
        s.sendall(data)
        return drain(s)
    finally:
        s.close()


@test
def the_legitimate_cluster_serves_writes(cl):
    for k, v in OBJECTS.items():
        r = cl.put_retry(k, v, {"Content-Type": "video/mp2t"})
        assert r.status in (200, 201), (k, r)
    for k, v in OBJECTS.items():
        r = cl.get_retry(k)
        assert r.status == 200 and r.body == v, (k, r)


def assert_cluster_intact(cl, leader, terms):
    for n in cl.nodes.values():
        assert n.alive(), f"{n.name} died"
    assert cl.leader_id() == leader, "the leader changed"
    now = cl.terms()
    assert now == terms, f"terms moved: before {terms}, after {now}"
    for k, v in OBJECTS.items():
        r = cl.get_retry(k)
        assert r.status == 200 and r.body == v, (k, r.status)
    assert cl.get("/auth/forged.ts").status == 404, "a forged commit was served"


@test(needs=["the_legitimate_cluster_serves_writes"])
def rpc_without_the_secret_gets_nothing(cl):
    leader, terms = cl.leader_id(), cl.terms()
    for nid, n in cl.nodes.items():
        for what, data in ATTACKS.items():
            got = attack_rpc(n.rpc_port, data)
            assert only_an_auth_hello(got), f"node{nid} {what}: answered {(got or b'')[:80]!r}"
    assert_cluster_intact(cl, leader, terms)
    assert cl.refusals(1).get("bad_hello", 0) >= len(ATTACKS), cl.refusals(1)


@test(needs=["the_legitimate_cluster_serves_writes"])
def rpc_with_a_wrong_secret_gets_nothing(cl):
    if INSECURE:
        raise AssertionError("no handshake to fail: the node answers frames from anyone")
    leader, terms = cl.leader_id(), cl.terms()
    for nid, n in cl.nodes.items():
        s = socket.create_connection((HOST, n.rpc_port), timeout=5)
        try:
            handshake(s, WRONG)
            raise AssertionError(f"node{nid} accepted a wrong secret")
        except ConnectionError:
            pass
        finally:
            s.close()
        for what, data in ATTACKS.items():
            got = attack_rpc(n.rpc_port, data, secret=WRONG)
            assert only_an_auth_hello(got), f"node{nid} {what}: answered {(got or b'')[:80]!r}"
    assert_cluster_intact(cl, leader, terms)
    assert cl.refusals(2).get("bad_proof", 0) >= len(ATTACKS), cl.refusals(2)


# ---- raft: raft_uv's own wire format (what the stock transport accepts) ----
def raft_uv_handshake(server_id, address, addr_len=None):
    a = address.encode() + b"\0"
    a += b"\0" * (-len(a) % 8)
    return struct.pack("<QQQ", 1, server_id, len(a) if addr_len is None else addr_len) + \
        (a if addr_len is None else b"")


def append_entries(term, prev_index, prev_term, commit, entries):
    """entries: list of (term, type, data)."""
    hdr = struct.pack("<QQQQQ", term, prev_index, prev_term, commit, len(entries))
    payload = b""
    for et, ty, data in entries:
        data += b"\0" * (-len(data) % 8)
        hdr += struct.pack("<QB3xI", et, ty, len(data))
        payload += data
    hdr += b"\0" * 8  # raft 0.15 sizes the header one u64 larger than it fills
    return struct.pack("<QQ", 1, len(hdr)) + hdr + payload


def request_vote(term, candidate, last_index, last_term, flags=1):
    body = struct.pack("<QQQQQ", term, candidate, last_index, last_term, flags)
    return struct.pack("<QQ", 3, len(body)) + body


def delete_entry(key):
    e = enc([(1, 2), (2, 0), (3, [(1, key)])])
    return struct.pack(">I", len(e)) + e


def raft_send(port, data, keep_open=0.0):
    """Send; True when the node closed the connection on us (within 5 s)."""
    s = socket.create_connection((HOST, port), timeout=5)
    try:
        s.sendall(data)
        got = drain(s, 5.0)
        return got is not None and only_an_auth_hello(got)
    except (BrokenPipeError, ConnectionResetError):
        return True
    finally:
        s.close()


def raft_setup(cl):
    leader = cl.leader_id()
    sh = cl.shard(leader)
    members = {nid: f"{HOST}:{n.raft_port}" for nid, n in cl.nodes.items()}
    followers = [nid for nid in cl.nodes if nid != leader]
    return leader, cl.terms(), one(sh, 5), one(sh, 8), members, followers


def other_member(nid, followers):
    return followers[0] if nid != followers[0] else followers[1]


@test(needs=["the_legitimate_cluster_serves_writes"])
def raft_request_vote_with_the_largest_term_is_refused(cl):
    leader, terms, term, last, members, followers = raft_setup(cl)
    for nid, n in cl.nodes.items():
        o = other_member(nid, followers)
        for flags in (1, 3):  # disrupt-leader vote, then pre-vote
            vote = raft_uv_handshake(o, members[o]) + request_vote(2**64 - 1, o, 2**62, 2**62,
                                                                   flags)
            assert raft_send(n.raft_port, vote), f"node{nid} kept a RequestVote connection"
    assert_cluster_intact(cl, leader, terms)


@test(needs=["the_legitimate_cluster_serves_writes"])
def raft_forged_append_entries_from_the_leader_id_is_refused(cl):
    leader, terms, term, last, members, followers = raft_setup(cl)
    for f in followers:  # the leader's id, a DELETE nobody proposed, committed at once
        forged = raft_uv_handshake(leader, members[leader]) + append_entries(
            term, last, term, last + 1, [(term, 1, delete_entry("/auth/obj2.ts"))])
        assert raft_send(cl.nodes[f].raft_port, forged), f"node{f} took a forged leader"
    assert_cluster_intact(cl, leader, terms)
    for f in followers:  # the object is still on the followers themselves
        c = cl.client(f)
        try:
            env, meta, body = c.get("/auth/obj2.ts")
            assert body == OBJECTS["/auth/obj2.ts"], (f, env)
        finally:
            c.close()


@test(needs=["the_legitimate_cluster_serves_writes"])
def raft_handshake_announcing_a_64mib_address_is_refused(cl):
    leader, terms, term, last, members, followers = raft_setup(cl)
    for nid, n in cl.nodes.items():
        big = raft_uv_handshake(other_member(nid, followers), "", addr_len=64 << 20)
        assert raft_send(n.raft_port, big + b"A" * (1 << 20)), \
            f"node{nid} is still reading a 64 MiB address"
        # The cluster handshake's own address is one length byte: at most 255 bytes.
        hello = auth_hello(ROLE_NODE, CHAN_RAFT, 0, 1, b"x" * 255)
        assert raft_send(n.raft_port, hello + b"\0" * 32), f"node{nid}: wrong proof kept"
    assert_cluster_intact(cl, leader, terms)


@test(needs=["the_legitimate_cluster_serves_writes"])
def raft_crash_packet_is_refused(cl):
    """An AppendEntries with an invalid entry type (it crashed libraft behind the old
    transport), sent to every node, with and without a well-formed cluster hello first."""
    leader, terms, term, last, members, followers = raft_setup(cl)
    before = {nid: cl.refusals(nid) for nid in cl.nodes}
    for nid, n in cl.nodes.items():
        o = other_member(nid, followers)
        crash = append_entries(term, 0, 0, 0, [(term, 255, b"\xff" * 8)])
        assert raft_send(n.raft_port, raft_uv_handshake(o, members[o]) + crash), \
            f"node{nid} kept a crash-packet connection"
        hello = auth_hello(ROLE_NODE, CHAN_RAFT, 0, o, members[o].encode())
        assert raft_send(n.raft_port, hello + b"\0" * 32 + crash), f"node{nid}: wrong secret"
    assert_cluster_intact(cl, leader, terms)
    for nid in cl.nodes:
        r, b = cl.refusals(nid), before[nid]
        assert r.get("bad_hello", 0) > b.get("bad_hello", 0), (nid, b, r)
        assert r.get("bad_proof", 0) > b.get("bad_proof", 0), (nid, b, r)


@test(needs=["the_legitimate_cluster_serves_writes"])
def even_a_peer_with_the_secret_cannot_feed_raft_a_crash_packet(cl):
    """Behind the handshake, every inbound byte passes node/shard/raft_guard before raft."""
    if INSECURE:
        raise AssertionError("no handshake, no guard")
    leader, terms, term, last, members, followers = raft_setup(cl)
    secret = cl.secret()
    for nid, n in cl.nodes.items():
        o = other_member(nid, followers)
        for bad in (append_entries(term, 0, 0, 0, [(term, 255, b"\xff" * 8)]),
                    struct.pack("<QQ", 3, 1 << 60)):
            s = socket.create_connection((HOST, n.raft_port), timeout=5)
            try:
                _, peer_id, _ = handshake(s, secret, role=ROLE_NODE, channel=CHAN_RAFT,
                                          node_id=o, addr=members[o].encode())
                assert peer_id == nid
                s.sendall(bad)
                assert drain(s) == b"", f"node{nid} kept the connection"
            finally:
                s.close()
    assert_cluster_intact(cl, leader, terms)
    for nid in cl.nodes:
        assert cl.refusals(nid).get("bad_raft_message", 0) >= 2, (nid, cl.refusals(nid))


@test(needs=["the_legitimate_cluster_serves_writes"])
def a_killed_node_restarts_and_rejoins(cl):
    follower = next(n for n in cl.nodes if n != cl.leader_id())
    for victim, puts in ((follower, 40), (cl.leader_id(), 1)):
        cl.kill(victim)
        for i in range(puts):  # 40 > --snapshot-threshold: it catches up from a snapshot
            r = cl.put_retry(f"/auth/after-kill-{victim}-{i}.ts", b"x" * (500 + i))
            assert r.status in (200, 201), r
        cl.restart(victim)

        def has_the_last_write():
            c = cl.client(victim)
            try:
                return c.get(f"/auth/after-kill-{victim}-{puts - 1}.ts")[2] == \
                    b"x" * (500 + puts - 1)
            finally:
                c.close()
        cl.wait_for(lambda: has_the_last_write() and cl.caught_up(victim), 60.0,
                    f"node{victim} back, caught up, holding the last write")
    for k, v in OBJECTS.items():
        r = cl.get_retry(k)
        assert r.status == 200 and r.body == v, (k, r.status)


@test(needs=["the_legitimate_cluster_serves_writes"])
def a_node_with_a_wrong_secret_cannot_join(cl):
    if INSECURE:
        raise AssertionError("no secret to get wrong")
    leader = cl.leader_id()
    victim = next(n for n in cl.nodes if n != leader)
    path = os.path.join(cl.tmp, "wrong.secret")
    with open(path, "wb") as f:
        f.write(WRONG + b"\n")
    n = cl.nodes[victim]
    good_argv = list(n.argv)
    cl.kill(victim)
    before = cl.refusals(leader).get("bad_proof", 0)
    n.argv = good_argv + ["--cluster-secret-file", path]
    cl.restart(victim)
    r = cl.put_retry("/auth/while-wrong.ts", b"w" * 4000)
    assert r.status in (200, 201), r
    # Its raft connections and its RPC calls are refused by the others, again and again...
    cl.wait_for(lambda: cl.refusals(leader).get("bad_proof", 0) >= before + 3, 30.0,
                "the leader refusing the wrong-secret node")
    terms = cl.terms(skip=(victim,))
    assert not cl.caught_up(victim), "a node with the wrong secret caught up"
    st = cl.status()
    assert cl.node_status(victim, st).get("reachable") is not True, "the gateway reached it"
    assert cl.leader_id() == leader and cl.terms(skip=(victim,)) == terms, "it moved the leader"
    # ... and with the right secret it joins again.
    cl.kill(victim)
    n.argv = good_argv
    cl.restart(victim)
    cl.wait_for(lambda: cl.caught_up(victim), 60.0, f"node{victim} caught up")
    assert cl.get_retry("/auth/while-wrong.ts").status == 200


@test(needs=["a_node_with_a_wrong_secret_cannot_join"])
def the_gateway_exports_its_refusals(cl):
    """The gateway's own refusals (its handshakes with the wrong-secret node) on /metrics."""
    r = cl.admin("GET", "/metrics")
    assert r.status == 200
    line = [ln for ln in r.body.decode().splitlines()
            if ln.startswith('headwater_gateway_cluster_auth_refusals_total{reason="bad_proof"}')]
    assert line and int(line[0].split()[-1]) > 0, r.body[-800:]


@test(needs=["the_legitimate_cluster_serves_writes"])
def refusals_are_logged_once_a_minute_per_peer(cl):
    """Dozens of refusals from 127.0.0.1 per node, a few log lines (every test here takes
    well under a minute per daemon run; a run may straddle one minute boundary)."""
    for p in cl.procs():
        with open(p.log_path, encoding="utf-8", errors="replace") as f:
            runs = f.read().split("==== start #")[1:]
        for i, run in enumerate(runs):
            n = run.count('msg="refused peer"')
            assert n <= 2, f"{p.name} run {i + 1}: {n} refusal lines"
        assert p is cl.gateway or 'msg="refused peer"' in runs[0], f"{p.name} logged none"


@test
def daemons_refuse_to_start_without_a_secret(cl):
    env = {k: v for k, v in os.environ.items() if k != "HEADWATER_CLUSTER_SECRET_FILE"}
    ddir = os.path.join(cl.tmp, "never-created")
    short = os.path.join(cl.tmp, "short.secret")
    with open(short, "wb") as f:
        f.write(b"tooshort\n")
    gp, ap = free_ports(2)
    runs = [([cl.node_bin, "--id", "1", "--data-dir", ddir, "--peers", "1=127.0.0.1:1"], "FILE"),
            ([cl.node_bin, "--id", "1", "--data-dir", ddir, "--peers", "1=127.0.0.1:1",
              "--cluster-secret-file", short], "at least 16 bytes"),
            ([cl.gateway_bin, "--nodes", "127.0.0.1:1", "--listen", f"{HOST}:{gp}",
              "--admin-listen", f"{HOST}:{ap}"], "FILE")]
    for argv, want in runs:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        out = p.stdout + p.stderr
        assert p.returncode != 0, f"{argv[0]} started without a usable secret"
        assert "--cluster-secret-file" in out and want in out, out[-500:]
    assert not os.path.exists(ddir), "a node without a secret created its data directory"


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=AuthCluster)
