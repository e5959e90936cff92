#!/usr/bin/env python3
"""A bounded history-checking workload against a real cluster (issue 9; Python 3 stdlib only).

3 nodes + 2 gateways on loopback (chaoscluster.py; with --own-uids, the default as root, each
daemon as its own system user so netfault.py can cut it off), K client threads doing random
PUT (self-describing unique values like `c3-17`) / GET / DELETE on a few keys (segment-like
`.ts`/`.m4s` keys and a playlist-like `.m3u8` key), each request through a random gateway, every
operation's interval recorded with time.monotonic(); a live encoder and players checking that
every segment a playlist names is servable through every gateway (live.py); a nemesis of node
kills, SIGSTOPs, gateway kills and partitions, one at a time (nemesis.py); after the faults heal,
one read of every key through every gateway; then the register linearizability checker
(linearize.py) per key.

The history (operations, nemesis events, verdict, anomalies, listed-means-servable result) is
written as JSON to --out (default: <build dir>/chaos/history-<time>.json, else a temp dir); its
path is printed. Exit status (--enforce yes, the default): 0 linearizable and no listed segment
unservable, 1 anomaly or violation found, 2 checker gave up ("unknown"), 3 setup failed. With
--enforce env the verdict decides the status only when HW_CHAOS_ENFORCE=1; otherwise it is 0
unless setup failed (the meson test `chaos_linearizable` until issue 9's core lands).

    python3 tests/chaos/workload.py --seconds 30 --clients 6 --keys 3 --nemesis mixed

Binaries: HW_NODE_BIN / HW_GATEWAY_BIN / HW_CTL_BIN, else <--build-dir>/{node,gateway,ctl}/...
(default build dir: build-test at the repository root).
"""
import argparse
import http.client
import json
import os
import random
import shutil
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
import nemesis  # noqa: E402
import netfault  # noqa: E402

SUFFIXES = [".ts", ".m4s", ".m3u8"]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="workload duration")
    ap.add_argument("--clients", type=int, default=4, help="client threads")
    ap.add_argument("--keys", type=int, default=3, help="keys (.ts, .m4s, .m3u8 in turn)")
    ap.add_argument("--nemesis", choices=nemesis.CHOICES, default="none")
    ap.add_argument("--nemesis-gap", type=float, default=3.0,
                    help="seconds between a fault's heal (and a leader again) and the next")
    ap.add_argument("--fault-seconds", type=float, default=3.0,
                    help="how long a kill or partition lasts")
    ap.add_argument("--stop-max", type=float, default=10.0,
                    help="a SIGSTOP lasts a random 1..STOP_MAX seconds")
    ap.add_argument("--readers", type=int, default=2,
                    help="listed-means-servable players (0: no live encoder either)")
    ap.add_argument("--inject-list-early", action="store_true",
                    help="self-test: the encoder lists a segment before writing it (every "
                    "run must then report listed-means-servable violations)")
    ap.add_argument("--own-uids", choices=["auto", "yes", "no"], default="auto",
                    help="each daemon as its own user hwchaosN (auto: when partitions can be "
                    "made here)")
    ap.add_argument("--enforce", choices=["yes", "no", "env"], default="yes",
                    help="whether the verdict decides the exit status (env: HW_CHAOS_ENFORCE=1)")
    ap.add_argument("--cache-size", default="256M", help="--cache-size of both gateways")
    ap.add_argument("--out", help="history JSON file")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-test"))
    ap.add_argument("--max-states", type=int, default=1000000,
                    help="checker search bound per key")
    ap.add_argument("--timeout", type=float, default=5.0, help="client request timeout (s)")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    if a.seconds <= 0 or a.clients < 1 or a.keys < 1 or a.readers < 0:
        ap.error("--seconds, --clients and --keys must be positive")
    if a.stop_max < 1 or a.fault_seconds <= 0 or a.nemesis_gap < 0:
        ap.error("--stop-max must be >= 1, --fault-seconds > 0, --nemesis-gap >= 0")
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
    except ConnectionRefusedError:
        return None  # nothing was sent (the gateway is down): certainly no effect
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


def start_cluster(args):
    from chaoscluster import ChaosCluster
    gw_common = ["--threads", "2", "--cache-size", str(args.cache_size)]
    cc = ChaosCluster(gateway_args=gw_common, own_uids=args.own_uids_on)
    try:
        cc.start()
    except BaseException:
        cc.dump_logs()
        cc.cleanup()
        raise
    return cc


def default_out(args):
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    d = os.path.join(args.build_dir, "chaos") if os.path.isdir(args.build_dir) else \
        tempfile.mkdtemp(prefix="hw-chaos-out-")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"history-{stamp}-{os.getpid()}.json")


def make_threads(args, rnd, cc, rec, keys, stop_at, nem, lv, done):
    """-> (threads that end by stop_at, the nemesis thread or None: it ends once `done`)."""
    threads = [threading.Thread(target=client_loop, daemon=True,
                                args=(rec, cc.gateways, keys, c, stop_at, args.timeout,
                                      rnd.randrange(1 << 30)))
               for c in range(args.clients)]
    nt = None
    if nem is not None:
        nt = threading.Thread(target=nem.run, args=(stop_at, done), daemon=True)
    if lv is not None:
        threads.append(threading.Thread(target=lv.writer, args=(stop_at,), daemon=True))
        threads += [threading.Thread(target=lv.reader, args=(i, stop_at), daemon=True)
                    for i in range(args.readers)]
    return threads, nt


def keep_logs(cc, out):
    """Copy every daemon's log next to the artifact (<out>.logs/): the temp dir goes away."""
    d = out + ".logs"
    os.makedirs(d, exist_ok=True)
    for p in cc.procs():
        try:
            shutil.copy(p.log_path, d)
        except OSError as e:
            print(f"workload: could not keep {p.log_path}: {e}", flush=True)
    print(f"workload: daemon logs kept in {d}", flush=True)
    return d


def run(args, rnd, nf, out):
    """-> (ops, nemesis events, keys, live report or None, extra facts). Raises on setup
    failure."""
    import live
    from nemesis import Nemesis
    cc = start_cluster(args)
    run_id = f"{int(time.time())}-{os.getpid()}"
    keys = [f"/chaos/{run_id}/k{i}{SUFFIXES[i % len(SUFFIXES)]}" for i in range(args.keys)]
    if args.keys >= 1 and not any(k.endswith(".m3u8") for k in keys):
        keys[-1] = f"/chaos/{run_id}/index.m3u8"
    rec = Recorder()
    nem = None
    if args.nemesis != "none":
        nem = Nemesis(cc, args.nemesis, nf, random.Random(rnd.randrange(1 << 30)),
                      fault_s=args.fault_seconds, stop_max=args.stop_max, gap_s=args.nemesis_gap,
                      log=lambda m: print(f"workload: {m}", flush=True))
    lv = live.Live(cc.gateways, f"/chaos/{run_id}", args.timeout,
                   random.Random(rnd.randrange(1 << 30)),
                   list_early=args.inject_list_early) if args.readers > 0 else None
    done = threading.Event()
    t0 = time.monotonic()
    stop_at = t0 + args.seconds
    threads, nt = make_threads(args, rnd, cc, rec, keys, stop_at, nem, lv, done)
    facts, late = {}, []
    try:
        for t in threads + ([nt] if nt else []):
            t.start()
        for t in threads:
            t.join()
        while nt is not None and nem.busy:  # the last fault's heal
            time.sleep(0.1)
        if nf is not None:
            nf.heal()
        late = [{"daemon": name, "status": rc, "seen": time.monotonic(), "after": "the run"}
                for name, rc in cc.revive_dead()]
        cc.ensure_all_up(60)
        time.sleep(1.5)  # let caches' max-age and replicas settle: healed-state reads
        for gw in cc.gateways:
            for k in keys:
                one_op(rec, gw, -1, 0, k, "read", args.timeout)
    except BaseException:
        cc.dump_logs()
        raise
    finally:
        facts["daemon_problems"] = cc.stop()
        done.set()  # only now: the daemons the nemesis thread restarted die with it
        for p in facts["daemon_problems"]:
            print(f"workload: daemon problem: {p}", flush=True)
        facts["restarts"] = {p.name: p.starts - 1 for p in cc.procs()}
        if facts["daemon_problems"]:
            facts["logs"] = keep_logs(cc, out)
        cc.cleanup()
    for op in rec.ops:  # times relative to the start, for reading the JSON
        op["invoke"] -= t0
        if op["complete"] is not None:
            op["complete"] -= t0
    events = nem.events if nem is not None else []
    for ev in events:
        ev["start"] -= t0
        ev["end"] -= t0
    facts["skipped_faults"] = nem.skipped if nem is not None else []
    facts["crashes"] = (nem.crashes if nem is not None else []) + late
    for c in facts["crashes"]:
        c["seen"] -= t0
    return rec.ops, events, keys, (lv.report(t0) if lv is not None else None), facts


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


def summarize_live(lv):
    if lv is None:
        return
    print(f"workload: live: {lv['segments_written']} segments and {lv['playlists_written']} "
          f"playlists written, {lv['segments_deleted']} deleted; {lv['playlist_reads']} "
          f"playlist and {lv['segment_reads']} segment reads; {len(lv['stale_playlists'])} "
          f"stale playlists; unavailable {lv['unavailable']}", flush=True)
    for v in lv["violations"][:10]:
        pl = v["playlist"]
        print(f"workload: LISTED-NOT-SERVABLE {v['segment']} via {v['gateway']} at "
              f"[{v['invoke']:.3f}, {v['complete']:.3f}]: {v['why']} (listed by the playlist "
              f"read via {pl['gateway']} at {pl['complete']:.3f}s)", flush=True)
    print(f"workload: listed-means-servable violations: {len(lv['violations'])}", flush=True)


def setup_netfault(args):
    """-> (NetFault or None, whether daemons get their own uids). Raises SystemExit(3) when
    the nemesis asked for can only be done with partitions and they cannot be made here."""
    why = netfault.available()
    own = args.own_uids == "yes" or (args.own_uids == "auto" and why is None)
    if args.own_uids == "yes" and why:
        print(f"workload: --own-uids yes impossible: {why}", flush=True)
        raise SystemExit(3)
    if not nemesis.needs_netfault(args.nemesis):
        return None, own
    if why is None and own:
        nf = netfault.NetFault()
        if nf.removed_stale:
            print(f"workload: removed leftover chains {nf.removed_stale}", flush=True)
        return nf, own
    why = why or "--own-uids no"
    if args.nemesis != "mixed":
        print(f"workload: nemesis {args.nemesis} needs partitions: {why}", flush=True)
        raise SystemExit(3)
    print(f"workload: WARNING: no partitions in the mixed nemesis: {why}", flush=True)
    return None, own


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # meson's timeout: unwind, kill the daemons


def sanitizer_reports(facts):
    return [p for p in facts["daemon_problems"] if "Sanitizer" in p or "runtime error" in p]


def exit_status(args, verdict, lv, facts):
    enforce = args.enforce == "yes" or (args.enforce == "env" and
                                        os.environ.get("HW_CHAOS_ENFORCE") == "1")
    violations = len(lv["violations"]) if lv else 0
    if verdict is False or violations or sanitizer_reports(facts) or facts["crashes"]:
        status = 1
    else:
        status = 0 if verdict is True else 2
    if not enforce and status:
        print(f"workload: not enforced (set HW_CHAOS_ENFORCE=1): would exit {status}",
              flush=True)
        return 0
    return status


def main(argv):
    args = parse_args(argv)
    set_binaries(args.build_dir)
    signal.signal(signal.SIGTERM, _on_sigterm)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    out = args.out or default_out(args)
    nf, args.own_uids_on = setup_netfault(args)
    print(f"workload: seed {seed}, {args.clients} clients, {args.keys} keys, "
          f"{args.readers} players, {args.seconds:.0f}s, nemesis {args.nemesis}, cache-size "
          f"{args.cache_size}, own uids {args.own_uids_on}", flush=True)
    t_start = time.monotonic()
    try:
        ops, events, keys, lv, facts = run(args, random.Random(seed), nf, out)
    except (Exception, KeyboardInterrupt) as e:
        print(f"workload: setup or recovery failed: {type(e).__name__}: {e}", flush=True)
        return 3
    finally:
        if nf is not None:
            nf.close()
    t_check = time.monotonic()
    result = linearize.check(ops, max_states=args.max_states)
    bad_reads = linearize.impossible_reads(ops)
    summarize(ops, result, bad_reads, events)
    summarize_live(lv)
    for c in facts["crashes"]:
        print(f"workload: DAEMON DIED {c['daemon']} (exit status {c['status']}), seen at "
              f"{c['seen']:.1f}s after {c['after']}", flush=True)
    for sk in facts["skipped_faults"]:
        print(f"workload: fault not done: {sk}", flush=True)
    doc = {"args": vars(args), "seed": seed, "keys": keys, "nemesis": events, "facts": facts,
           "valid": result["valid"], "per_key": result["keys"], "anomalies": result["anomalies"],
           "impossible_reads": len(bad_reads), "live": lv, "history": ops}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    verdict = result["valid"]
    bad_keys = sum(1 for k in result["keys"].values() if k["valid"] is False)
    print(f"workload: history written to {out}", flush=True)
    print(f"workload: {len(ops)} ops, {len(events)} faults "
          f"({', '.join(sorted(set(e['fault'] for e in events))) or 'none'}), "
          f"{bad_keys} of {len(result['keys'])} keys non-linearizable, {len(bad_reads)} "
          f"impossible reads, {len(lv['violations']) if lv else 'no'} listed-means-servable "
          f"violations, {len(sanitizer_reports(facts))} sanitizer reports, "
          f"{len(facts['crashes'])} daemons died; run "
          f"{t_check - t_start:.0f}s, check {time.monotonic() - t_check:.0f}s", flush=True)
    print(f"workload: verdict: {'linearizable' if verdict is True else verdict}", flush=True)
    return exit_status(args, verdict, lv, facts)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
