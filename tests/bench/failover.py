#!/usr/bin/env python3
"""Failover speed and spurious elections (issue 9, "Writes resume fast"); tests/bench/failover.sh
builds the release binaries and runs this.

Failover mode (default): 3 nodes + 1 gateway on loopback. Two writers, each 10 small PUTs a
second over one keep-alive connection (one PUTs a new key every time, the other overwrites one
key), record the time of every acknowledged PUT (201/204); a reader GETs an existing object
and a playlist through the gateway at 20/s in total and counts every answer that is not 200.
Then, --kills times: find the shard leader (gateway /status), SIGKILL it (--pause S: SIGSTOP
it, SIGCONT S seconds later instead of the restart), wait until both
writers have been acknowledged again, restart the killed node from its data dir, wait until
it caught up (lag 0, repair backlog 0), let one more second of acks pass. Per kill, the
longest gap between consecutive acknowledged PUTs of each writer from the last one before
the kill to the end of that window; p50/p99/max over the kills; reads that failed in those windows.

Soak mode (--soak SECONDS): no faults; --writers threads PUT objects of 64 KiB..2 MiB as fast
as they go (each over its own bounded set of keys, so the disk use stays bounded), while the
gateway /status is polled every 200 ms: every raft term change and leader change is counted
(must be 0: nothing caused one; the exit status is 1 otherwise).

Prints a markdown table on stdout (for docs/benchmarks.md); progress on stderr; --json FILE
also writes the raw figures. Node raft timing: --election-timeout-ms / --heartbeat-ms (the
nodes' defaults when not given). Env: HW_NODE_BIN, HW_GATEWAY_BIN (release build).
"""
import argparse
from struct import error as struct_error
import http.client
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from cluster import HOST, Cluster  # noqa: E402
import nodeproto  # noqa: E402

PLAYLIST = (b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            b"#EXTINF:2.0,\nseg_0.ts\n")
MIN_FREE_DISK = 10 << 30  # the soak stops early rather than fill the disk


def log(msg):
    print(f"[failover] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))]


class Client:
    """One keep-alive HTTP connection to the gateway; reconnects after any error."""

    def __init__(self, port, timeout=15.0):
        self.port, self.timeout, self.conn = port, timeout, None

    def request(self, method, path, body=None):
        """Returns the status, or None when the connection failed (counted as a failure)."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            self.conn.request(method, path, body=body)
            r = self.conn.getresponse()
            r.read()
            if r.getheader("connection", "").lower() == "close":
                self.close()
            return r.status
        except (OSError, http.client.HTTPException):
            self.close()
            return None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Paced(threading.Thread):
    """Calls self.once() `rate` times a second on a fixed schedule (a late call is not made up
    by a burst: the schedule restarts after it)."""

    def __init__(self, name, rate, stop):
        super().__init__(name=name, daemon=True)
        self.period, self.stop = 1.0 / rate, stop

    def run(self):
        nxt = time.monotonic()
        while not self.stop.is_set():
            self.once()
            nxt += self.period
            now = time.monotonic()
            if nxt < now:
                nxt = now
            self.stop.wait(nxt - now)


class Writer(Paced):
    def __init__(self, port, kind, stop):
        super().__init__(f"writer-{kind}", 10, stop)
        self.cl, self.kind, self.n = Client(port), kind, 0
        self.acks, self.failures = [], []  # monotonic times; (time, status)

    def once(self):
        self.n += 1
        key = f"/fo/new/k{self.n:06d}.ts" if self.kind == "new" else "/fo/over/key.ts"
        st = self.cl.request("PUT", key, b"x" * 188 + str(self.n).encode())
        if st in (201, 204):
            self.acks.append(time.monotonic())
        else:
            self.failures.append((time.monotonic(), st))


class Reader(Paced):
    def __init__(self, port, stop):
        super().__init__("reader", 20, stop)
        self.cl, self.i = Client(port, timeout=5.0), 0
        self.ok, self.failures = 0, []  # (time, path, status)

    def once(self):
        self.i += 1
        path = "/fo/read/seg_0.ts" if self.i % 2 else "/fo/read/index.m3u8"
        st = self.cl.request("GET", path)
        if st == 200:
            self.ok += 1
        else:
            self.failures.append((time.monotonic(), path, st))


class NodeWatch(threading.Thread):
    """Polls every node's STATUS directly (node RPC) every `period` s and records each change
    of (role, term, leader) per node: when a new leader was elected, and every term change,
    at a finer grain than the gateway's own 500 ms polls."""

    def __init__(self, cl, stop, period=0.025):
        super().__init__(name="nodewatch", daemon=True)
        self.cl, self.stop, self.period = cl, stop, period
        self.conns, self.last, self.events, self.polls = {}, {}, [], 0
        self.slow = []  # (seconds, time, node): STATUS answers slower than 100 ms (loop stalls)
        self.lock = threading.Lock()

    def poll(self, nid, node):
        try:
            if nid not in self.conns:
                self.conns[nid] = nodeproto.NodeClient(node.address, timeout=1.0)
            t0 = time.monotonic()
            st = self.conns[nid].status()
            dt = time.monotonic() - t0
            if dt > 0.1:
                with self.lock:
                    self.slow.append((dt, t0, nid))
        except (OSError, ValueError, AssertionError, struct_error):
            c = self.conns.pop(nid, None)
            if c is not None:
                c.close()
            return
        for raw in st.get(7, []):
            sh = nodeproto.dec(raw)
            if nodeproto.one(sh, 1) != 0:
                continue
            cur = (nodeproto.one(sh, 4, b"").decode(), nodeproto.one(sh, 5),
                   nodeproto.one(sh, 3))
            with self.lock:
                self.polls += 1
                if self.last.get(nid) != cur:
                    self.last[nid] = cur
                    self.events.append((time.monotonic(), nid) + cur)

    def run(self):
        while not self.stop.is_set():
            for nid, node in self.cl.nodes.items():
                self.poll(nid, node)
            self.stop.wait(self.period)
        for c in self.conns.values():
            c.close()

    def elected_after(self, t, term0):
        """Monotonic time a node first reported itself leader in a term above term0 after t."""
        with self.lock:
            for ev in self.events:
                if ev[0] > t and ev[2] == "leader" and ev[3] > term0:
                    return ev[0]
        return None

    def max_term(self):
        with self.lock:
            return max((v[1] for v in self.last.values()), default=0)


def max_gap(acks, t0, t1):
    """Longest gap between consecutive acks that touch [t0, t1] (the last ack before t0 and
    the first after t1 included, so the gap spanning the kill at t0 counts). Windows of
    successive kills do not overlap: the next kill comes after t1."""
    sel = [t for t in acks if t0 <= t <= t1]
    before = [t for t in acks if t < t0]
    after = [t for t in acks if t > t1]
    if before:
        sel.insert(0, before[-1])
    if after:
        sel.append(after[0])
    return max((b - a for a, b in zip(sel, sel[1:])), default=float("inf"))


def node_args(args):
    extra = []
    if args.election_timeout_ms:
        extra += ["--election-timeout-ms", str(args.election_timeout_ms)]
    if args.heartbeat_ms:
        extra += ["--heartbeat-ms", str(args.heartbeat_ms)]
    return extra + ["--log-level", args.node_log_level]


def raft_caught_up(cl, nid, target):
    """The restarted node applied at least `target` (the commit index when it came back) and
    is within 20 entries (2 s of this workload; the gateway polls nodes at different moments,
    so an exact 0 is rare under constant writes) of the leader. Its repair backlog (objects
    whose bytes it still pulls) is not waited for: raft-wise it is a full voter again."""
    n = cl.node_status(nid)
    return n.get("reachable") is True and (n.get("applied_index") or 0) >= target \
        and n.get("lag") is not None and n["lag"] <= 20


def one_kill(cl, writers, watch, i, pause):
    lid = cl.leader_id(timeout=30.0)
    term0 = watch.max_term()
    t_kill = time.monotonic()
    if pause:
        cl.nodes[lid].signal(signal.SIGSTOP)
    else:
        cl.kill(lid)
    cl.wait_for(lambda: all(w.acks and w.acks[-1] > t_kill for w in writers), 30.0,
                f"writes acknowledged after killing node {lid}", interval=0.02)
    t_resumed = time.monotonic()
    t_elected = watch.elected_after(t_kill, term0)
    st = cl.status()
    target = max(n.get("commit_index") or 0 for n in st.get("nodes", []))
    if pause:
        time.sleep(max(0.0, t_kill + pause - time.monotonic()))
        cl.nodes[lid].signal(signal.SIGCONT)
    else:
        cl.restart(lid)
    cl.wait_for(lambda: raft_caught_up(cl, lid, target), 60.0, f"node {lid} caught up",
                interval=0.1)
    t_caught = time.monotonic()
    time.sleep(1.0)  # a second of acks after the window, so a stall at its end shows
    row = {"kill": i + 1, "leader": lid, "new_leader": cl.status().get("leader"),
           "terms": watch.max_term() - term0, "resume_s": t_resumed - t_kill,
           "elect_s": (t_elected - t_kill) if t_elected else None,
           "catchup_s": t_caught - t_kill, "t0": t_kill, "t1": t_caught + 1.0}
    for w in writers:
        row[f"gap_{w.kind}"] = max_gap(w.acks, row["t0"], row["t1"])
    el = f"{row['elect_s']:.2f}s" if row["elect_s"] is not None else "?"
    log(f"kill {i + 1}: node {lid} -> {row['new_leader']}, +{row['terms']} term(s), elected "
        f"after {el}, writes back after {row['resume_s']:.2f}s, gaps new {row['gap_new']:.3f}s "
        f"over {row['gap_over']:.3f}s, caught up after {row['catchup_s']:.1f}s")
    return row


def run_failover(cl, args):
    for path, body in (("/fo/read/seg_0.ts", os.urandom(64 << 10)),
                       ("/fo/read/index.m3u8", PLAYLIST), ("/fo/over/key.ts", b"0")):
        r = cl.put_retry(path, body)
        if r.status not in (201, 204):
            raise RuntimeError(f"seeding {path}: {r.status}")
    stop = threading.Event()
    writers = [Writer(cl.gw_port, "new", stop), Writer(cl.gw_port, "over", stop)]
    reader = Reader(cl.gw_port, stop)
    watch = NodeWatch(cl, stop)
    for t in writers + [reader, watch]:
        t.start()
    rows = []
    try:
        time.sleep(3.0)
        for i in range(args.kills):
            rows.append(one_kill(cl, writers, watch, i, args.pause))
    finally:
        stop.set()
        for t in writers + [reader, watch]:
            t.join(20.0)
    for r in rows:
        r["read_failures"] = sum(1 for t, _, _ in reader.failures if r["t0"] <= t <= r["t1"])
        r["write_failures"] = sum(1 for w in writers for t, _ in w.failures
                                  if r["t0"] <= t <= r["t1"])
    return {"rows": rows, "reads_ok": reader.ok, "read_failures": reader.failures,
            "write_failures": [f for w in writers for f in w.failures],
            "acks": {w.kind: len(w.acks) for w in writers}}


def print_failover(res, args):
    rows = res["rows"]
    timing = (f"election timeout {args.election_timeout_ms or 'default'} ms, "
              f"heartbeat {args.heartbeat_ms or 'default'} ms")
    what = f"{args.pause:g} s leader SIGSTOPs" if args.pause else "leader SIGKILLs"
    print(f"\n### Failover: {len(rows)} {what} ({timing})\n")
    print("| writer | gap p50 | gap p99 | gap max |")
    print("| --- | ---: | ---: | ---: |")
    for kind, name in (("new", "new key each PUT"), ("over", "overwrite one key")):
        g = [r[f"gap_{kind}"] * 1000 for r in rows]
        print(f"| {name} | {pct(g, 50):.0f} ms | {pct(g, 99):.0f} ms | {max(g):.0f} ms |")
    rs = [r["resume_s"] * 1000 for r in rows]
    es = [r["elect_s"] * 1000 for r in rows if r["elect_s"] is not None] or [float("nan")]
    print(f"\nkill -> a node reports itself leader (direct STATUS polls every 25 ms): p50 "
          f"{pct(es, 50):.0f} ms, p99 {pct(es, 99):.0f} ms, max {max(es):.0f} ms; "
          f"kill -> both writers acknowledged again: p50 {pct(rs, 50):.0f} ms, "
          f"p99 {pct(rs, 99):.0f} ms, max {max(rs):.0f} ms; term changes per kill: "
          f"{sorted(set(r['terms'] for r in rows))}")
    rf = sum(r["read_failures"] for r in rows)
    kinds = sorted({f"{p}={s}" for _, p, s in res["read_failures"]})
    print(f"reads during the kill windows: {rf} not 200 (all run: {len(res['read_failures'])} "
          f"failed, {res['reads_ok']} ok{'; ' + ', '.join(kinds) if kinds else ''}); "
          f"failed PUTs (retried by the writer): {len(res['write_failures'])}; "
          f"acknowledged PUTs: {res['acks']}")


class Loader(threading.Thread):
    def __init__(self, port, idx, stop, stats):
        super().__init__(name=f"loader-{idx}", daemon=True)
        self.cl, self.idx, self.stop, self.stats = Client(port, 60.0), idx, stop, stats
        self.rng = random.Random(idx)
        self.pool = os.urandom(2 << 20)

    def run(self):
        n = 0
        while not self.stop.is_set():
            size = self.rng.randint(64 << 10, 2 << 20)
            key = f"/soak/w{self.idx}/k{n % 16:02d}.m4s"
            t0 = time.monotonic()
            st = self.cl.request("PUT", key, self.pool[:size])
            dt = time.monotonic() - t0
            with self.stats["lock"]:
                if st in (201, 204):
                    self.stats["ok"] += 1
                    self.stats["bytes"] += size
                    self.stats["lat"].append(dt)
                else:
                    self.stats["failed"].append((time.monotonic(), st))
            n += 1


def run_soak(cl, args):
    stop = threading.Event()
    stats = {"lock": threading.Lock(), "ok": 0, "bytes": 0, "lat": [], "failed": []}
    loaders = [Loader(cl.gw_port, i, stop, stats) for i in range(args.writers)]
    for t in loaders:
        t.start()
    watch = NodeWatch(cl, stop, period=0.1)
    watch.start()
    cl.wait_for(lambda: len(watch.last) == len(cl.nodes), 10.0, "first STATUS of every node")
    t0 = time.monotonic()
    term0 = watch.max_term()
    next_report, stopped = t0 + 60, None
    try:
        while time.monotonic() - t0 < args.soak:
            time.sleep(0.5)
            if time.monotonic() >= next_report:
                next_report += 60
                log(f"soak {time.monotonic() - t0:.0f}s: {stats['ok']} PUTs "
                    f"({stats['bytes'] / (time.monotonic() - t0) / 1e6:.1f} MB/s), "
                    f"term changes {watch.max_term() - term0}")
                if shutil.disk_usage(cl.tmp).free < MIN_FREE_DISK:
                    stopped = "stopped early: disk nearly full"
                    break
    finally:
        stop.set()
        for t in loaders:
            t.join(90.0)
    elapsed = time.monotonic() - t0
    watch.join(5.0)
    with watch.lock:
        evs = [e for e in watch.events if e[0] >= t0]
    wall = time.time() - time.monotonic()  # monotonic -> wall clock, to match node logs
    events = [(e[0] - t0, f"{time.strftime('%H:%M:%S', time.gmtime(e[0] + wall))}"
               f".{int((e[0] + wall) % 1 * 1000):03d}Z node {e[1]}: {e[2]} term {e[3]} "
               f"leader {e[4]}") for e in evs]
    if stopped:
        events.append((elapsed, stopped))
    return {"seconds": elapsed, "puts": stats["ok"], "mb_s": stats["bytes"] / elapsed / 1e6,
            "lat": stats["lat"], "failed": stats["failed"], "term_changes": watch.max_term() - term0,
            "leader_changes": sum(1 for e in evs if e[2] == "leader"), "polls": watch.polls,
            "events": events, "load": os.getloadavg(),
            "slow_status": [(round(d, 3), round(t - t0, 1), n) for d, t, n in watch.slow]}


def print_soak(res, args):
    timing = (f"election timeout {args.election_timeout_ms or 'default'} ms, "
              f"heartbeat {args.heartbeat_ms or 'default'} ms")
    lat = [x * 1000 for x in res["lat"]] or [float("nan")]
    print(f"\n### Soak: {res['seconds']:.0f} s, {args.writers} writers of 64 KiB..2 MiB, "
          f"no faults ({timing})\n")
    print("| PUTs ok | failed | MB/s | PUT p50 | PUT p99 | term changes | leader changes | "
          "node STATUS polls |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {res['puts']} | {len(res['failed'])} | {res['mb_s']:.1f} | {pct(lat, 50):.0f} ms "
          f"| {pct(lat, 99):.0f} ms | {res['term_changes']} | {res['leader_changes']} | "
          f"{res['polls']} |")
    slow = sorted(res["slow_status"], reverse=True)
    print(f"\nnode STATUS answers slower than 100 ms (a node's loop stalled): {len(slow)}; "
          f"slowest: " + ", ".join(f"{d * 1000:.0f} ms (node {n}, at {t:.0f} s)"
                                   for d, t, n in slow[:5]))
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in res['load'])}\n")
    for t, what in res["events"][:30]:
        print(f"- at {t:.1f} s: {what}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--pause", type=float, default=0.0, metavar="SECONDS",
                    help="SIGSTOP the leader for SECONDS (then SIGCONT) instead of SIGKILL")
    ap.add_argument("--soak", type=float, nargs="?", const=600.0, default=None,
                    metavar="SECONDS", help="no faults, full write load (default 600 s)")
    ap.add_argument("--writers", type=int, default=4, help="soak: concurrent writers")
    ap.add_argument("--election-timeout-ms", type=int, default=0)
    ap.add_argument("--heartbeat-ms", type=int, default=0)
    ap.add_argument("--node-log-level", default="warn",
                    help="nodes' --log-level (info logs each snapshot taken)")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures here")
    ap.add_argument("--keep", action="store_true", help="keep the cluster's temp dir")
    args = ap.parse_args()
    cl = Cluster(nodes=3, node_args=node_args(args), name="hw-failover")
    ok, rc = False, 0
    try:
        cl.start()
        log(f"cluster up in {cl.tmp} (node flags: {' '.join(node_args(args))})")
        if args.soak is not None:
            res = run_soak(cl, args)
            print_soak(res, args)
            if res["term_changes"] or res["leader_changes"]:
                log(f"FAIL: {res['term_changes']} term change(s) with no fault")
                rc = 1
        else:
            res = run_failover(cl, args)
            print_failover(res, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "result": res}, f, default=str, indent=1)
        ok = True
    finally:
        if not ok:
            cl.dump_logs(20)
        cl.stop()
        cl.cleanup(keep=args.keep)
    return rc


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
