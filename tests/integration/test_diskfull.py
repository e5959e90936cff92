#!/usr/bin/env python3
"""Issue 10: a full disk kills nothing. 3 nodes + 1 gateway; each node's data dir is its own
small loop-mounted ext4 (tmpfs with size= when loop mounts are not possible), filled with a
filler file that leaves almost nothing free.

One follower full: writes keep answering 201 and the full node keeps serving reads; the leader
full: writes still 201 (it steps down, the commit is retried on a new leader); two of three full:
PUT answers 507 with the JSON error and committed:false while reads stay 200; space returning
(the filler deleted): writes resume within seconds with no restart and the full nodes catch up
until every object is readable from each of them. A node restarted while its disk is full stays
up (its store cannot open: it waits for space, retrying) and starts and catches up by itself once
space returns. Steps share one cluster and run in order."""
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import Cluster, poll  # noqa: E402
from nodeproto import NodeClient  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)

IMAGE_MB = 320          # the store preallocates ~70 MB of WAL and raft 8 MB segments
KEEP_FREE = 64 * 1024  # what a filler leaves free
OBJ = 200 * 1024       # bytes per object: never fits on a full disk
PRESS = 1 << 20        # objects that use up the store's own reserve on a full disk
FILL_DEADLINE = 90.0
RESUME_DEADLINE = 10.0  # writes resume after space returns (issue: "within a few seconds")
CATCH_UP_DEADLINE = 60.0

acked = {}  # key -> bytes of every acknowledged write (this case)
state = {"n": 0}


class DiskCluster(Cluster):
    """A Cluster whose nodes' data dirs are small file systems of their own."""

    def __init__(self, **kw):
        super().__init__(name="hw-diskfull", **kw)
        self.mounts = []
        self.kind = None
        try:
            for n in self.nodes.values():
                self._mount(n.data_dir, os.path.join(self.tmp, f"n{n.id}.img"))
        except BaseException:
            self._unmount_all()
            raise

    def _mount(self, ddir, image):
        if self.kind in (None, "ext4"):
            try:
                with open(image, "wb") as f:
                    f.truncate(IMAGE_MB << 20)
                subprocess.run(["mkfs.ext4", "-F", "-q", "-m", "0", image], check=True,
                               capture_output=True, timeout=60)
                subprocess.run(["mount", "-o", "loop", image, ddir], check=True,
                               capture_output=True, timeout=60)
                self.kind = "ext4"
                self.mounts.append(ddir)
                return
            except (OSError, subprocess.SubprocessError) as e:
                if self.kind == "ext4":
                    raise
                print(f"hwtest: loop mount failed ({e}); using tmpfs", flush=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={IMAGE_MB}m", "tmpfs", ddir],
                       check=True, capture_output=True, timeout=60)
        self.kind = "tmpfs"
        self.mounts.append(ddir)

    def _unmount_all(self):
        for d in reversed(self.mounts):
            r = subprocess.run(["umount", d], capture_output=True, timeout=60)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", d], capture_output=True, timeout=60)
        self.mounts = []

    def cleanup(self, keep=False):
        for p in self.procs():
            if p.alive():
                p.signal(9)
                p.wait(5.0)
        self._unmount_all()
        super().cleanup(keep)

    # ---- filling ----
    def filler(self, nid):
        return os.path.join(self.nodes[nid].data_dir, "filler")

    def fill(self, nid):
        path = self.filler(nid)
        st = os.statvfs(self.nodes[nid].data_dir)
        free = st.f_bavail * st.f_frsize
        have = os.path.getsize(path) if os.path.exists(path) else 0
        size = have + free - KEEP_FREE
        subprocess.run(["fallocate", "-l", str(size), path], check=True, timeout=60)
        st = os.statvfs(self.nodes[nid].data_dir)
        assert st.f_bavail * st.f_frsize <= 2 * KEEP_FREE, "the disk is not full"

    def unfill(self, nid):
        os.unlink(self.filler(nid))


def fresh():
    """Each case gets its own cluster on fresh disks: filling one takes the store's own
    reserve too (RocksDB preallocates ~70 MB of WAL), which later cases could not get back."""
    acked.clear()
    cl = DiskCluster(nodes=3)
    try:
        cl.start()
    except BaseException:
        cl.dump_logs()
        cl.stop()
        cl.cleanup()
        raise
    return cl


class case:
    def __enter__(self):
        self.cl = fresh()
        return self.cl

    def __exit__(self, typ, val, tb):
        if typ is not None:
            self.cl.dump_logs()
        problems = self.cl.stop()
        self.cl.cleanup()
        if typ is None:
            assert not problems, problems


def body(i, size=OBJ):
    return (b"%08d" % i) * (size // 8)


def next_key():
    state["n"] += 1
    return state["n"], f"/full/seg{state['n']:05d}.ts"


def put_ok(cl, count, what):
    for _ in range(count):
        i, key = next_key()
        r = cl.put_retry(key, body(i), deadline=20.0)
        assert r.status == 201, f"{what}: PUT {key} -> {r}"
        acked[key] = body(i)


def reported_full(cl, nid):
    with open(cl.gateway.log_path, "r", errors="replace") as f:
        return f'"node out of space: uploads leave it out" node={nid} ' in f.read()


def fill_until_refused(cl, nids):
    """Fill each node's disk, then write 1 MB objects until every one of them has refused a
    STAGE with NO_SPACE (the store's own preallocated reserve runs out first). Returns the
    statuses seen: 201 while a quorum has space, 507 after."""
    for n in nids:
        cl.fill(n)
    seen = set()
    end = time.monotonic() + FILL_DEADLINE
    while not all(reported_full(cl, n) for n in nids):
        assert time.monotonic() < end, f"nodes {nids} never refused a write on a full disk"
        i, key = next_key()
        data = body(i, PRESS)
        r = cl.put(key, data)
        assert r.status in (201, 507), f"filling {nids}: PUT {key} -> {r}"
        seen.add(r.status)
        if r.status == 201:
            acked[key] = data
        assert_alive(cl, cl.nodes, f"filling {nids}")
    return seen


def node_has(cl, nid, key, data):
    c = NodeClient(cl.nodes[nid].address, timeout=10.0)
    try:
        env, _, got = c.get(key)
    finally:
        c.close()
    return got == data


def all_readable_from(cl, nid):
    """Missing keys raise ValueError (poll's "not yet"), naming a few."""
    missing = [k for k, d in acked.items() if not node_has(cl, nid, k, d)]
    if missing:
        raise ValueError(f"node {nid} cannot serve {len(missing)} objects, e.g. {missing[:3]}")
    return True


def settled(cl, nid):
    """Wait until the node is caught up and serves every acknowledged object; fails at once
    when it died meanwhile."""
    def caught_up():
        assert_alive(cl, [nid], f"waiting for node {nid} to catch up")
        return cl.caught_up(nid)

    def serves_all():
        assert_alive(cl, [nid], f"waiting for node {nid} to serve everything")
        return all_readable_from(cl, nid)
    cl.wait_for(caught_up, CATCH_UP_DEADLINE, f"node {nid} caught up")
    cl.wait_for(serves_all, CATCH_UP_DEADLINE, f"node {nid} serves all")


def followers(cl, leader):
    return [n for n in cl.nodes if n != leader]


def assert_alive(cl, nids, what):
    for n in nids:
        assert cl.nodes[n].alive(), f"{what}: node {n} died (exit {cl.nodes[n].proc.returncode})"


@test
def one_follower_full_writes_keep_working_then_catch_up():
    with case() as cl:
        put_ok(cl, 3, "all disks have space")
        early = dict(acked)
        f = followers(cl, cl.leader_id())[0]
        # it holds them before its disk fills (a follower may apply an acknowledged write later)
        cl.wait_for(lambda: all(node_has(cl, f, k, d) for k, d in early.items()), 10.0,
                    f"node {f} serving what was written before the fill")
        fill_until_refused(cl, [f])
        put_ok(cl, 5, f"node {f} full")
        assert_alive(cl, cl.nodes, "one follower full")
        for k, d in early.items():  # written before it filled: it serves them itself
            assert node_has(cl, f, k, d), f"the full node does not serve {k}"
        cl.unfill(f)
        put_ok(cl, 2, "space returned")
        settled(cl, f)


@test
def leader_full_writes_keep_working():
    with case() as cl:
        put_ok(cl, 3, "all disks have space")
        leader = cl.leader_id()
        fill_until_refused(cl, [leader])
        put_ok(cl, 5, f"leader {leader} full")
        assert_alive(cl, cl.nodes, "leader full")
        cl.unfill(leader)
        settled(cl, leader)


@test
def two_full_answer_507_then_space_returns():
    with case() as cl:
        put_ok(cl, 3, "all disks have space")
        full = followers(cl, cl.leader_id())
        fill_until_refused(cl, full)
        _, key = next_key()
        r = cl.put(key, body(0))
        assert r.status == 507, f"two of three full: {r}"
        j = r.json()
        assert j.get("error") == "insufficient_storage" and j.get("committed") is False, j
        for k in list(acked)[:3]:
            g = cl.get(k)
            assert g.status == 200 and g.body == acked[k], f"read {k} with two disks full: {g}"
        assert_alive(cl, cl.nodes, "two full")
        for n in full:
            cl.unfill(n)
        i, key = next_key()
        t0 = time.monotonic()

        def written():
            r = cl.put(key, body(i))
            assert r.status in (201, 507, 503), r
            return r.status == 201
        poll(written, RESUME_DEADLINE, "a write after space returned", interval=0.2,
             check=lambda: assert_alive(cl, cl.nodes, "space returned"))
        print(f"hwtest: writes resumed {time.monotonic() - t0:.1f}s after space returned",
              flush=True)
        acked[key] = body(i)
        put_ok(cl, 2, "after space returned")
        for n in full:
            settled(cl, n)
        assert_alive(cl, cl.nodes, "space returned")


@test
def restart_while_full_starts_and_catches_up():
    with case() as cl:
        put_ok(cl, 3, "all disks have space")
        f = followers(cl, cl.leader_id())[0]
        # Filled while it is down: the store's first write after the restart (its WAL replay
        # at open) meets the full disk.
        cl.kill(f)
        cl.fill(f)
        cl.restart(f)

        # It stays up: serving what it holds (the store opened; writes wait for space), or, if
        # the store could not even open, waiting for space and retrying.
        some_key, some_data = next(iter(acked.items()))

        def up_while_full():
            assert cl.nodes[f].alive(), f"node {f} exited {cl.nodes[f].proc.returncode} (full)"
            with open(cl.nodes[f].log_path, "r", errors="replace") as fh:
                if "disk is full: retrying" in fh.read():
                    return "waiting for space"
            try:
                return "serving reads" if node_has(cl, f, some_key, some_data) else False
            except (OSError, AssertionError, ValueError):
                return False
        how = cl.wait_for(up_while_full, 30.0, f"node {f} up with its disk full")
        print(f"hwtest: node {f} restarted on a full disk: {how}", flush=True)
        put_ok(cl, 3, f"node {f} restarted full")
        assert_alive(cl, [f], "restarted full")
        cl.unfill(f)
        settled(cl, f)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("hwtest: SKIP test_diskfull needs root for its mounts", flush=True)
        print("hwtest: 0 passed, 0 failed", flush=True)
        sys.exit(77)
    hwtest.main(TESTS)
