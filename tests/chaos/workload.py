#!/usr/bin/env python3
"""A bounded history-checking workload against a real cluster (issue 9; Python 3 stdlib only).

3 nodes + 2 gateways on loopback (tests/integration/cluster.py), K client threads doing random
PUT (self-describing unique values like `c3-17`) / GET / DELETE on a few keys (segment-like
`.ts`/`.m4s` keys and a playlist-like `.m3u8` key), each request through a random gateway, every
operation's interval recorded with time.monotonic(); an optional nemesis (SIGKILL of a node then
restart, or SIGSTOP then SIGCONT) on a schedule; after the faults heal, one read of every key
through every gateway; then the register linearizability checker (linearize.py) per key.

The history (operations, nemesis events, verdict, anomalies) is written as JSON to --out
(default: <build dir>/chaos/history-<time>.json, else a temp dir); its path is printed.
Exit status: 0 linearizable, 1 anomaly found, 2 checker gave up ("unknown") or setup failed.

    python3 tests/chaos/workload.py --seconds 30 --clients 6 --keys 3 --nemesis kill

Binaries: HW_NODE_BIN / HW_GATEWAY_BIN / HW_CTL_BIN, else <--build-dir>/{node,gateway,ctl}/...
(default build dir: build-test at the repository root).
"""
import argparse
import http.client
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)

import linearize  # noqa: E402

SUFFIXES = [".ts", ".m4s", ".m3u8"]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="workload duration")
    ap.add_argument("--clients", type=int, default=4, help="client threads")
    ap.add_argument("--keys", type=int, default=3, help="keys (.ts, .m4s, .m3u8 in turn)")
    ap.add_argument("--nemesis", choices=["none", "kill", "stop"], default="none")
    ap.add_argument("--nemesis-interval", type=float, default=5.0,
                    help="seconds between the start of two faults")
    ap.add_argument("--fault-seconds", type=float, default=2.5, help="how long a fault lasts")
    ap.add_argument("--cache-size", default="256M", help="--cache-size of both gateways")
    ap.add_argument("--out", help="history JSON file")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-test"))
    ap.add_argument("--max-states", type=int, default=1000000,
                    help="checker search bound per key")
    ap.add_argument("--timeout", type=float, default=5.0, help="client request timeout (s)")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    if a.seconds <= 0 or a.clients < 1 or a.keys < 1:
        ap.error("--seconds, --clients and --keys must be positive")
    return a


def set_binaries(build_dir):
    for var, rel in (("HW_NODE_BIN", "node/headwater-node"),
                     ("HW_GATEWAY_BIN", "gateway/headwater-gateway"),
                     ("HW_CTL_BIN", "ctl/headwaterctl")):
        if not os.environ.get(var):
            os.environ[var] = os.path.join(build_dir, rel)


def committed_false(resp):
    try:
        return resp.json().get("committed") is False
    except (ValueError, AttributeError):
        return False


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []

    def add(self, op):
        with self.lock:
            self.ops.append(op)


def one_op(rec, gw, client, seq, key, kind, timeout):
    """Run one operation and record it (or not, when it certainly had no effect/no result)."""
    from cluster import request
    name, port = gw
    value = f"c{client}-{seq}" if kind == "write" else None
    method = {"write": "PUT", "delete": "DELETE", "read": "GET"}[kind]
    body = value.encode() if value is not None else None
    op = {"key": key, "op": kind, "value": value, "client": client, "gateway": name}
    op["invoke"] = time.monotonic()
    try:
        r = request(port, method, key, body, None, timeout)
        status, resp = r.status, r
    except (OSError, http.client.HTTPException) as e:
        status, resp = None, None
        op["error"] = f"{type(e).__name__}: {e}"
    done = time.monotonic()
    op["status"] = status
    if kind == "read":
        if status == 200:
            op["value"] = resp.body.decode("utf-8", "replace")
        elif status == 404:
            op["value"] = None
        else:
            return op["status"]  # no result: nothing learned
        op["complete"] = done
    elif status in (200, 201, 204) or (kind == "delete" and status == 404):
        op["complete"] = done
    elif status == 412 or (resp is not None and committed_false(resp)):
        return status  # known not to have taken effect
    else:
        op["complete"] = None  # 504, timeout, lost connection: unknown outcome
    rec.add(op)
    return status


def client_loop(rec, gateways, keys, client, stop_at, timeout, seed):
    rnd = random.Random(seed)
    seq = 0
    while time.monotonic() < stop_at:
        seq += 1
        kind = rnd.choices(["read", "write", "delete"], weights=[5, 4, 1])[0]
        one_op(rec, rnd.choice(gateways), client, seq, rnd.choice(keys), kind, timeout)


def nemesis_loop(cl, mode, stop_at, interval, fault_s, events, rnd):
    t_next = time.monotonic() + min(interval, 2.0)
    while True:
        now = time.monotonic()
        if t_next + fault_s > stop_at:
            return
        if now < t_next:
            time.sleep(min(0.1, t_next - now))
            continue
        nid = rnd.choice(sorted(cl.nodes))
        ev = {"fault": mode, "node": nid, "start": time.monotonic()}
        if mode == "kill":
            cl.kill(nid)
        else:
            cl.nodes[nid].signal(signal.SIGSTOP)
        time.sleep(fault_s)
        if mode == "kill":
            cl.restart(nid)
        else:
            cl.nodes[nid].signal(signal.SIGCONT)
        ev["end"] = time.monotonic()
        events.append(ev)
        t_next += interval


def start_cluster(args):
    from cluster import HOST, Cluster, Proc, free_ports, request
    gw_common = ["--threads", "2", "--cache-size", str(args.cache_size)]
    cl = Cluster(nodes=3, gateway_args=gw_common, name="hw-chaos")
    cl.start()
    port, admin = free_ports(2)
    argv = [cl.gateway_bin, "--listen", f"{HOST}:{port}", "--admin-listen", f"{HOST}:{admin}",
            "--nodes", ",".join(n.address for n in cl.nodes.values())] + gw_common
    gw2 = Proc("gateway2", argv, os.path.join(cl.tmp, "gateway2.log"), dict(os.environ))
    gw2.start()
    cl.wait_for(lambda: request(admin, "GET", "/readyz", timeout=2).status == 200, 60,
                "second gateway ready")
    cl.leader_id(60)
    return cl, gw2, [("gw1", cl.gw_port), ("gw2", port)]


def default_out(args):
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    d = os.path.join(args.build_dir, "chaos") if os.path.isdir(args.build_dir) else \
        tempfile.mkdtemp(prefix="hw-chaos-out-")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"history-{stamp}-{os.getpid()}.json")


def run(args, rnd):
    cl, gw2, gateways = start_cluster(args)
    run_id = f"{int(time.time())}-{os.getpid()}"
    keys = [f"/chaos/{run_id}/k{i}{SUFFIXES[i % len(SUFFIXES)]}" for i in range(args.keys)]
    if args.keys >= 1 and not any(k.endswith(".m3u8") for k in keys):
        keys[-1] = f"/chaos/{run_id}/index.m3u8"
    rec, events = Recorder(), []
    t0 = time.monotonic()
    stop_at = t0 + args.seconds
    threads = [threading.Thread(target=client_loop, daemon=True,
                                args=(rec, gateways, keys, c, stop_at, args.timeout,
                                      rnd.randrange(1 << 30)))
               for c in range(args.clients)]
    if args.nemesis != "none":
        threads.append(threading.Thread(
            target=nemesis_loop, daemon=True,
            args=(cl, args.nemesis, stop_at, args.nemesis_interval, args.fault_seconds, events,
                  random.Random(rnd.randrange(1 << 30)))))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cl.ensure_all_up(60)
        time.sleep(1.5)  # let caches' max-age and replicas settle: healed-state reads
        for gw in gateways:
            for k in keys:
                one_op(rec, gw, -1, 0, k, "read", args.timeout)
    finally:
        gw2.signal(signal.SIGTERM)
        gw2.wait(10)
        problems = cl.stop()
        for p in problems:
            print(f"workload: daemon problem: {p}", flush=True)
        cl.cleanup()
    for op in rec.ops:  # times relative to the start, for reading the JSON
        op["invoke"] -= t0
        if op["complete"] is not None:
            op["complete"] -= t0
    for ev in events:
        ev["start"] -= t0
        ev["end"] -= t0
    return rec.ops, events, keys


def summarize(ops, result, bad_reads, events):
    kinds = {}
    for o in ops:
        k = o["op"] + ("?" if o["complete"] is None else "")
        kinds[k] = kinds.get(k, 0) + 1
    print(f"workload: {len(ops)} ops recorded {kinds}; faults: {len(events)}", flush=True)
    for key, kr in result["keys"].items():
        print(f"workload: key {key}: {kr['ops']} ops, {kr['states']} states, "
              f"valid={kr['valid']}", flush=True)
    for a in result["anomalies"]:
        print(f"workload: ANOMALY {linearize.describe(a)}", flush=True)
    by_key = {}
    for b in bad_reads:
        by_key.setdefault(b["key"], []).append(b)
    for key, bs in sorted(by_key.items()):
        deleted = sum(1 for b in bs if b["could_have_seen"] and
                      all(v is None for v in b["could_have_seen"]))
        missing = sum(1 for b in bs if b["read"]["value"] is None)
        other_gw = sum(1 for b in bs if b["superseded_by"] and
                       b["superseded_by"].get("gateway") != b["read"].get("gateway"))
        print(f"workload: key {key}: {len(bs)} reads impossible by real-time order alone "
              f"({deleted} served a deleted object, {missing} answered 404 for an existing one, "
              f"{len(bs) - deleted - missing} served an overwritten value; {other_gw} with the "
              f"newer write made through the other gateway; first at "
              f"{bs[0]['read']['invoke']:.3f}s)", flush=True)
    healed = {}
    for o in ops:
        if o["client"] == -1:
            healed.setdefault(o["key"], {})[o["gateway"]] = o["value"]
    for key, vals in sorted(healed.items()):
        same = "agree" if len(set(vals.values())) == 1 else "DISAGREE"
        print(f"workload: after the run, gateways {same} on {key}: {vals}", flush=True)


def main(argv):
    args = parse_args(argv)
    set_binaries(args.build_dir)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    out = args.out or default_out(args)
    print(f"workload: seed {seed}, {args.clients} clients, {args.keys} keys, "
          f"{args.seconds:.0f}s, nemesis {args.nemesis}, cache-size {args.cache_size}",
          flush=True)
    ops, events, keys = run(args, random.Random(seed))
    result = linearize.check(ops, max_states=args.max_states)
    bad_reads = linearize.impossible_reads(ops)
    summarize(ops, result, bad_reads, events)
    doc = {"args": vars(args), "seed": seed, "keys": keys, "nemesis": events,
           "valid": result["valid"], "per_key": result["keys"], "anomalies": result["anomalies"],
           "impossible_reads": len(bad_reads), "history": ops}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"workload: history written to {out}", flush=True)
    verdict = result["valid"]
    print(f"workload: verdict: {'linearizable' if verdict is True else verdict}", flush=True)
    return 0 if verdict is True else (1 if verdict is False else 2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
