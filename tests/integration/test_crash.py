"""Crash test (issue 10): an acknowledged object is durable on a quorum of replicas.

3 nodes + 1 gateway. Writer threads PUT objects of 1 KB .. 3 MB (content re-derivable from
(seed, key, version counter)) over new keys and overwrites of a bounded key set each writer
owns, plus DELETEs, while a killer SIGKILLs nodes (the leader, a follower, two in quick
succession) every 50-800 ms and restarts them 0.2-2 s later, and SIGKILLs + restarts the
gateway twice. Per key the test keeps the set of states it may hold afterwards: an
acknowledged PUT (201/204) or DELETE (204/404) makes it exactly that; a request that failed or
timed out adds its outcome as a candidate, and the writer never touches that key again (a
commit the gateway still retries could otherwise land after a later write).

At the end, a final crash of every daemon, then two checks:
 1. Through the gateway: everything restarted, repair drained (gateway /status: lag 0,
    repair_backlog 0 on every node), a GET of every key must match the expected state
    byte-exact; the state read is each key's decided state.
 2. Each node's own copy: all daemons SIGKILLed, then each node started ALONE (its peers down:
    no repair, no relayed read) and read with the node RPC (LIST for the metadata, FETCH for
    the local bytes). Every key's decided state must be byte-exact on at least 2 of the 3
    nodes from the write path itself: copies that repair wrote (the nodes log each,
    bg/repair.c) do not count. Repair cannot be paused, so this is how "before repair" is told
    apart; checking after the whole log was applied lets a node that lost an unsynced apply
    replay it first.
PUT answers of 204 for a key that never existed (issue 10's known bug) are listed, not
failed. Knobs: HW_CRASH_SECONDS (chaos duration, default 30), HW_CRASH_SEED, HW_CRASH_WRITERS,
HW_CRASH_POWERCUT=1 (root: each node's data dir on its own loop-mounted ext4, every kill a
power cut that loses what was not fsynced; see PowerCutCluster and docs/durability.md).
"""
import fcntl
import hashlib
import http.client
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import HOST, Cluster, poll  # noqa: E402
from nodeproto import T, NodeClient, dec, one  # noqa: E402

SECONDS = float(os.environ.get("HW_CRASH_SECONDS", "30"))
SEED = int(os.environ.get("HW_CRASH_SEED", str(random.randrange(1 << 30))))
WRITERS = int(os.environ.get("HW_CRASH_WRITERS", "4"))
POWERCUT = os.environ.get("HW_CRASH_POWERCUT") == "1"
OWNED_KEYS = 10          # overwrite keys per writer
MIN_SIZE, MAX_SIZE = 1024, 3 * 1024 * 1024
CLIENT_TIMEOUT = 20.0
PREFIX = "/crash/"
ABSENT = None            # the "no object" state

TESTS = []
test = hwtest.collector(TESTS)


# ---- content ----------------------------------------------------------------------------
def content(key, ver):
    """The bytes of version `ver` of `key`: seeded, so any of them can be re-derived."""
    rng = random.Random(f"{SEED}:{key}:{ver}")
    size = int(MIN_SIZE * (MAX_SIZE / MIN_SIZE) ** rng.random())  # log-uniform 1 KB .. 3 MB
    return rng.randbytes(size)


def digest(b):
    return hashlib.sha256(b).hexdigest()


# ---- one HTTP request, with the outcome classified ---------------------------------------
class NotSent(Exception):
    """The connection was refused: the request never reached a gateway (nothing changed)."""


def send(port, method, path, body=None):
    conn = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT)
    try:
        try:
            conn.connect()
        except ConnectionRefusedError as e:
            raise NotSent(str(e)) from e
        conn.request(method, path, body=body)
        r = conn.getresponse()
        data = r.read()
        return r.status, data
    finally:
        conn.close()


def refused(status, data):
    """An answer that says the write did not happen (DESIGN: "committed":false)."""
    if status is None or status < 400:
        return False
    try:
        return json.loads(data.decode("utf-8")).get("committed") is False
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False


class KeyState:
    def __init__(self):
        self.cands = {ABSENT}   # states the key may hold now
        self.tainted = False    # an unknown outcome: never written again
        self.refused = set()    # contents of PUTs answered "committed":false
        self.history = []       # (op, version, status) for the failure report


class Ledger:
    """What every key must hold afterwards; each key is owned by one writer thread."""

    def __init__(self):
        self.keys = {}
        self.lock = threading.Lock()
        self.counts = {"put_ack": 0, "del_ack": 0, "unknown": 0, "refused": 0,
                       "not_sent": 0}
        self.status_bugs = []   # PUTs answered 204 on a key that never existed, and vice versa
        self.odd = []           # answers that are neither an ack nor a plausible failure

    def state(self, key):
        with self.lock:
            return self.keys.setdefault(key, KeyState())

    def count(self, what):
        with self.lock:
            self.counts[what] += 1


def do_put(cl, led, key, ver):
    st = led.state(key)
    body = content(key, ver)
    d = digest(body)
    try:
        status, data = send(cl.gw_port, "PUT", key, body)
    except NotSent:
        led.count("not_sent")
        return
    except (OSError, http.client.HTTPException) as e:
        status, data = None, repr(e).encode()
    st.history.append(("PUT", ver, status))
    if status in (201, 204):
        if status == 204 and st.cands == {ABSENT}:
            led.status_bugs.append(f"PUT {key} v{ver}: 204 (replaced) for a key that never "
                                   "existed")
        if status == 201 and ABSENT not in st.cands:
            led.status_bugs.append(f"PUT {key} v{ver}: 201 (created) for a key that existed")
        st.cands = {d}
        led.count("put_ack")
        return
    if refused(status, data):
        st.refused.add(d)
        led.count("refused")
        return
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        led.odd.append(f"PUT {key} v{ver}: {status} {data[:200]!r}")
    st.cands.add(d)
    st.tainted = True
    led.count("unknown")


def do_delete(cl, led, key):
    st = led.state(key)
    try:
        status, data = send(cl.gw_port, "DELETE", key)
    except NotSent:
        led.count("not_sent")
        return
    except (OSError, http.client.HTTPException) as e:
        status, data = None, repr(e).encode()
    st.history.append(("DELETE", None, status))
    if status in (204, 404):
        st.cands = {ABSENT}
        led.count("del_ack")
        return
    if refused(status, data):
        led.count("refused")
        return
    st.cands.add(ABSENT)
    st.tainted = True
    led.count("unknown")


def writer(cl, led, wid, stop):
    rng = random.Random(f"{SEED}:writer:{wid}")
    owned = [f"{PREFIX}w{wid}/k{j}.ts" for j in range(OWNED_KEYS)]
    ver = 0
    fresh = 0
    while not stop.is_set():
        ver += 1
        live = [k for k in owned if not led.state(k).tainted]
        r = rng.random()
        if r < 0.3 or not live:
            fresh += 1
            do_put(cl, led, f"{PREFIX}w{wid}/n{fresh}.ts", ver)
        elif r < 0.85:
            do_put(cl, led, rng.choice(live), ver)
        else:
            do_delete(cl, led, rng.choice(live))
        if stop.is_set():
            break
        time.sleep(rng.uniform(0.0, 0.05))


# ---- the killer -------------------------------------------------------------------------
def leader_or_none(cl):
    try:
        lid = cl.status().get("leader")
        return lid if lid in cl.nodes and cl.nodes[lid].alive() else None
    except (OSError, http.client.HTTPException, ValueError):
        return None


def killer(cl, stop, log, end):
    rng = random.Random(f"{SEED}:killer")
    down = {}                       # node id -> restart time
    last_kill = 0.0
    gw_kills = [end - SECONDS * 2 / 3, end - SECONDS / 3]
    gw_back = None
    while not stop.is_set() and time.monotonic() < end:
        now = time.monotonic()
        for nid, at in list(down.items()):
            if now >= at:
                cl.restart(nid)
                del down[nid]
                log.append(f"{now:.1f} restart node{nid}")
        if gw_back is not None and now >= gw_back:
            cl.gateway.start()
            gw_back = None
            log.append(f"{now:.1f} restart gateway")
        if gw_kills and now >= gw_kills[0] and gw_back is None:
            gw_kills.pop(0)
            cl.gateway.signal(signal.SIGKILL)
            cl.gateway.wait(10.0)
            gw_back = now + rng.uniform(0.2, 1.0)
            log.append(f"{now:.1f} SIGKILL gateway")
        up = [n for n in cl.nodes if cl.nodes[n].alive() and n not in down]
        quick = len(up) == 2 and now - last_kill < 0.5 and rng.random() < 0.3
        if len(up) == 3 or quick:
            kind = rng.random()
            lid = leader_or_none(cl) if kind < 0.4 else None
            victim = lid if lid in up else rng.choice(up)
            cl.kill(victim)
            last_kill = time.monotonic()
            down[victim] = last_kill + rng.uniform(0.2, 2.0)
            log.append(f"{now:.1f} {'POWERCUT' if POWERCUT else 'SIGKILL'} node{victim}{' (leader)' if victim == lid else ''}")
        time.sleep(rng.uniform(0.05, 0.8))
    stop.set()
    for nid in list(down):
        cl.restart(nid)
    if not cl.gateway.alive():
        cl.gateway.start()


# ---- a node's own copy ------------------------------------------------------------------
def node_list(c):
    metas, cursor = [], ""
    while True:
        page, cursor = c.list(PREFIX, cursor)
        metas += page
        if not cursor:
            return metas


def node_fetch(c, key, upload):
    """FETCH: the node's local bytes of that upload only (never relayed); None when absent."""
    c.send(T["FETCH"], 24, [(1, key), (2, upload)])
    out = bytearray()
    while True:
        env, pl = c.recv()
        if one(env, 1) != T["DATA"]:
            return None
        out += pl
        if one(dec(one(env, 19, b"")), 3):
            return bytes(out)


def node_view(cl, nid):
    """{key: (sha256 of the bytes this node holds locally for the key's current version, or
    'not-local' when its meta says repair pending; the version)}, read with only this node
    running."""
    n = cl.nodes[nid]
    n.start()
    try:
        def alive():
            if not n.alive():
                raise AssertionError(f"node{nid} exited when started alone")
        c = poll(lambda: NodeClient(n.address, timeout=10.0), 30, f"node{nid} RPC alone",
                 check=alive)
        view = {}
        for m in node_list(c):
            key, upload = one(m, 1, b"").decode(), one(m, 2, b"")
            body = node_fetch(c, key, upload) if one(m, 10) else None
            view[key] = (digest(body) if body is not None else "not-local", one(m, 7))
        c.close()
        return view
    finally:
        Cluster.kill(cl, nid)


def all_applied(cl):
    st = cl.status()
    ns = st.get("nodes", [])
    return st.get("quorum") and len(ns) == 3 and all(n.get("lag") == 0 for n in ns)


def all_repaired(cl):
    st = cl.status()
    ns = st.get("nodes", [])
    return st.get("quorum") and len(ns) == 3 and all(
        n.get("lag") == 0 and n.get("repair_backlog") == 0 and n.get("reachable") for n in ns)


def short(cands):
    return sorted("absent" if c is ABSENT else c[:12] for c in cands)


def judge_gateway(cl, led):
    """GET every key through the gateway; returns ({key: state read}, [problems])."""
    seen, bad = {}, []
    for key, st in sorted(led.keys.items()):
        r = cl.get_retry(key, deadline=5.0)
        if r.status == 200:
            seen[key] = digest(r.body)
        elif r.status == 404:
            seen[key] = ABSENT
        else:
            bad.append(f"{key}: GET answered {r.status} {r.body[:120]!r}")
            continue
        if seen[key] not in st.cands:
            what = "present after an acknowledged DELETE" if st.cands == {ABSENT} else (
                "missing" if seen[key] is ABSENT else "different bytes")
            if seen[key] in st.refused:
                what = "holds a PUT that was answered committed:false"
            bad.append(f"{key}: {what}: read {short([seen[key]])}, allowed {short(st.cands)}, "
                       f"history {st.history[-4:]}")
    return seen, bad


def repaired_by_log(cl):
    """{(node id, key, version)} that a node's repair wrote (bg/repair.c logs each one)."""
    out = set()
    pat = re.compile(r"repaired key=(\S+) version=(\d+)")
    for nid, n in cl.nodes.items():
        with open(n.log_path, "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                m = pat.search(line)
                if m:
                    out.add((nid, m.group(1), int(m.group(2))))
    return out


def log_counts(cl, marks=("snapshot taken", "snapshot restored", "repaired key=")):
    """How often each mark appears in the node logs (what the run exercised)."""
    out = dict.fromkeys(marks, 0)
    for n in cl.nodes.values():
        with open(n.log_path, "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                for m in marks:
                    out[m] += m in line
    return out


def judge_nodes(led, views, seen, repaired):
    """Every key's decided state (what the gateway read, itself checked against the ledger)
    must be held locally by at least 2 nodes that got it from the write path itself: bytes
    a node's repair fetched later do not count (they are listed)."""
    bad, via_repair = [], 0
    for key in sorted(led.keys):
        want = seen.get(key, "?")
        if want == "?":
            continue
        per = {nid: v.get(key, (ABSENT, 0)) for nid, v in views.items()}
        exact = [nid for nid, (d, _) in per.items() if d == want]
        own = [nid for nid in exact if (nid, key, per[nid][1]) not in repaired]
        via_repair += len(exact) - len(own)
        if len(own) < 2:
            got = {nid: f"{(d or 'absent')[:12]}@v{ver}" +
                   (" (repaired)" if (nid, key, ver) in repaired else "")
                   for nid, (d, ver) in per.items()}
            bad.append(f"{key}: want {short([want])} on >= 2 nodes from the write path, "
                       f"per node {got}")
    return bad, via_repair


@test
def acknowledged_objects_survive_random_sigkills(cl):
    led, stop, log = Ledger(), threading.Event(), []
    end = time.monotonic() + SECONDS
    print(f"crash: seed {SEED} (HW_CRASH_SEED), {SECONDS:.0f}s, {WRITERS} writers", flush=True)
    errors = []

    def guarded(wid):
        try:
            writer(cl, led, wid, stop)
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(f"writer {wid}: {type(e).__name__}: {e}")
            stop.set()
    ws = [threading.Thread(target=guarded, args=(w,), daemon=True) for w in range(WRITERS)]
    for t in ws:
        t.start()
    try:
        # In this thread: a daemon gets SIGKILL when the thread that started it ends
        # (PR_SET_PDEATHSIG), so every start happens here.
        killer(cl, stop, log, end)
    finally:
        stop.set()
        for t in ws:
            t.join(CLIENT_TIMEOUT + 30)
    print(f"crash: {len(log)} kill/restart events; requests {led.counts}", flush=True)
    print("crash: events " + "; ".join(log), flush=True)
    assert not errors, errors
    assert led.counts["put_ack"] >= 20, f"too few acknowledged PUTs to judge: {led.counts}"

    # The final crash (a power cut in that mode), wherever apply and repair are.
    cl.gateway.signal(signal.SIGKILL)
    cl.gateway.wait(10.0)
    for nid in cl.nodes:
        cl.kill(nid)

    # Check 2 first: everything back, every entry applied, repair drained, then GET.
    cl.gateway.start()
    cl.ensure_all_up(90.0)
    problems = []
    try:
        cl.wait_for(lambda: all_repaired(cl), 60, "lag 0 and repair_backlog 0 on every node")
    except AssertionError as e:  # judged below all the same: the list says what is missing
        problems.append(f"repair: {e}")
    seen, bad = judge_gateway(cl, led)

    # Check 1: each node's own copy, read with the node alone; what repair wrote is excluded.
    cl.gateway.signal(signal.SIGKILL)
    cl.gateway.wait(10.0)
    for nid in cl.nodes:
        Cluster.kill(cl, nid)  # a plain SIGKILL, also in power-cut mode
    views = {nid: node_view(cl, nid) for nid in cl.nodes}
    pending = {nid: sum(1 for s, _ in v.values() if s == "not-local")
               for nid, v in views.items()}
    print(f"crash: per node, keys still without local bytes: {pending}", flush=True)
    bad_nodes, via_repair = judge_nodes(led, views, seen, repaired_by_log(cl))
    print(f"crash: {via_repair} byte-exact node copies came from repair (not counted); "
          f"node logs: {log_counts(cl)}", flush=True)
    if led.status_bugs:
        print(f"crash: REPORTED (not failed), {len(led.status_bugs)} wrong PUT status codes:",
              flush=True)
        for s in led.status_bugs:
            print(f"  {s}", flush=True)
    for s in led.odd:
        print(f"crash: odd answer: {s}", flush=True)
    problems += [f"gateway: {b}" for b in bad] + [f"quorum: {b}" for b in bad_nodes]
    assert not problems, f"{len(problems)} durability problems (seed {SEED}):\n  " + \
        "\n  ".join(problems[:60])
    print(f"crash: {len(led.keys)} keys byte-exact through the gateway and on >= 2 nodes each",
          flush=True)


# ---- power-cut mode ---------------------------------------------------------------------
FS_IOC_SHUTDOWN = 0x8004587D    # _IOR('X', 125, __u32): EXT4_IOC_SHUTDOWN / XFS_IOC_GOINGDOWN
SHUTDOWN_NOLOGFLUSH = 2         # flush neither dirty data nor the journal: a power cut
POWERCUT_IMAGE = 4 << 30        # sparse


def run(*argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[:300]}")
    return r.stdout.strip()


class PowerCutCluster(Cluster):
    """Each node's data dir is its own ext4 on a loop device (root only). power_cut(nid):
    SIGKILL the node, shut its filesystem down without flushing anything (the ioctl xfstests'
    "godown" uses), unmount and mount again: what was not fsynced (page cache, journal not
    committed) is gone, as after a power cut; what was fsynced is back after journal replay.
    Mounted data=writeback,commit=60: an fsync of one file does not carry other files' data
    along (ordered mode would), and unsynced data stays unwritten for long."""

    MOUNT_OPTS = "data=writeback,commit=60"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.loops = {}

    def start(self, ready_timeout=60.0):
        for nid, n in self.nodes.items():
            img = os.path.join(self.tmp, f"n{nid}.img")
            with open(img, "wb") as f:
                f.truncate(POWERCUT_IMAGE)
            self.loops[nid] = run("losetup", "-f", "--show", img)
            run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1", self.loops[nid])
            self.mount(nid)
        super().start(ready_timeout)

    def mount(self, nid):
        run("mount", "-t", "ext4", "-o", self.MOUNT_OPTS, self.loops[nid],
            self.nodes[nid].data_dir)

    def kill(self, node_id, sig=signal.SIGKILL):
        super().kill(node_id, sig)
        if sig == signal.SIGKILL:
            self.power_cut(node_id)

    def power_cut(self, nid):
        d = self.nodes[nid].data_dir
        fd = os.open(d, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, FS_IOC_SHUTDOWN, struct.pack("I", SHUTDOWN_NOLOGFLUSH))
        finally:
            os.close(fd)
        run("umount", d)
        self.mount(nid)

    def cleanup(self, keep=False):
        for p in self.procs():
            if p.alive():
                p.signal(signal.SIGKILL)
                p.wait(5.0)
        for nid, dev in self.loops.items():
            subprocess.run(["umount", self.nodes[nid].data_dir], capture_output=True)
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        super().cleanup(keep)


def fixture():
    # Snapshots every 128 entries: kills also land around snapshots (the store sync before
    # one, fsm.c) and restarted nodes install them.
    args = dict(nodes=3, name="hw-crash", node_args=["--snapshot-threshold", "128"])
    if POWERCUT:
        if os.geteuid() != 0:
            raise RuntimeError("HW_CRASH_POWERCUT=1 needs root (loop devices, mount)")
        return PowerCutCluster(**args)
    return Cluster(**args)


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=fixture)
