#!/usr/bin/env python3
"""Issue 10, benchmark 1: live renditions per box, Headwater vs nginx WebDAV, one run.

How to run: `tests/bench/renditions.sh` (builds the release binaries and the load generator and
runs all three issue-10 benchmarks), or by hand with HW_NODE_BIN, HW_GATEWAY_BIN and
HW_RENDLOAD_BIN set: `python3 tests/bench/renditions.py > /tmp/rend.md`.

A ramp of rendition counts, steps alternating between the peers (Headwater step at count N,
nginx step at N, Headwater at the next count...). A step runs tests/bench/rendload (C, libuv):
each rendition PUTs a 500 KB segment every second, then its playlist (6-segment window), then
DELETEs the segment that left the window; two readers per rendition poll the playlist every
0.5 s and GET every newly listed segment. After a warm-up the step is measured for STEP_S
seconds and passes when: segment PUT p99 < 500 ms, no segment PUT over 1 s, every PUT and
DELETE answered 2xx, no writer started a second late, every listed segment was answered 200,
and no reader fell behind (each listed segment fetched before the next one is due, i.e. within
1 s of the second its writer was scheduled to PUT it; none left the window unfetched; no poll
skipped because the previous poll and its fetches were still running 0.5 s later). A peer stops
after failing two steps in a row.

Self-check (every run, also alone with --self-check): the first count is run once more on each
peer with the gateway (or every nginx process) SIGSTOPped for 0.7 s in the middle of the
measured window; the rule must fail both steps, or the benchmark's rule is worthless.

Env: RAMP (8,16,32,48,64,96,128,160,192,224,256,288,320,384,448,512), STEP_S (20), WARMUP_S (4), NGINX (nginx).
Markdown on stdout, progress on stderr; everything on free loopback ports in temp dirs that are
removed on exit (also on Ctrl-C); the daemons die with this process.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
from bench import Nginx, commit, machine, nginx_version  # noqa: E402
from cluster import Cluster, _die_with_parent  # noqa: E402

RAMP = [int(x) for x in
        os.environ.get("RAMP", "8,16,32,48,64,96,128,160,192,224,256,288,320,384,448,512").split(",")]
STEP_S = float(os.environ.get("STEP_S", "20"))
WARMUP_S = float(os.environ.get("WARMUP_S", "4"))
STALL_S = 0.7
TICK = os.sysconf("SC_CLK_TCK")


LOAD_START = os.getloadavg()[0]


def load_note():
    """The 1-minute load average at the start and now: other work on the shared machine."""
    return f"load average {LOAD_START:.1f} at start, {os.getloadavg()[0]:.1f} at the end"


def log(msg):
    print(f"[renditions] {msg}", file=sys.stderr, flush=True)


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


class Peer:
    """One system under load: its HTTP port, the processes whose CPU is reported, the ones a
    stall stops."""

    def __init__(self, name, port, cpu_groups, stall_pids):
        self.name, self.port = name, port
        self.cpu_groups = cpu_groups  # label -> function returning pids
        self.stall_pids = stall_pids  # function returning pids
        self.fails_in_row = 0
        self.best = None  # (count, result) of the highest passing step
        self.steps = []


def passes(r):
    why = []
    if r["seg_put_p99_ms"] >= 500:
        why.append(f"seg PUT p99 {r['seg_put_p99_ms']:.0f} ms")
    if r["seg_put_over_1s"]:
        why.append(f"{r['seg_put_over_1s']} seg PUTs > 1 s")
    for k, what in (("seg_put_fail", "seg PUT non-2xx"), ("playlist_put_fail", "playlist PUT "
                    "non-2xx"), ("delete_fail", "DELETE non-2xx"), ("writer_late", "writer late"),
                    ("seg_get_fail", "listed seg GET non-200"), ("playlist_get_fail",
                    "playlist GET non-200"), ("reader_behind", "reader behind"),
                    ("reader_missed", "segments missed by readers"),
                    ("reader_poll_skipped", "reader polls skipped")):
        if r[k]:
            why.append(f"{r[k]} {what}")
    expect = r["renditions"] * r["duration_s"]
    if r["seg_puts"] < 0.9 * expect:
        why.append(f"only {r['seg_puts']} of {expect:.0f} segments written")
    return not why, why


def run_step(peer, count, prefix, stall=False):
    argv = [os.environ["HW_RENDLOAD_BIN"], "--port", str(peer.port), "--renditions", str(count),
            "--warmup", str(WARMUP_S), "--duration", str(STEP_S), "--prefix", prefix]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=_die_with_parent)
    groups = dict(peer.cpu_groups)
    groups["load generator"] = lambda: [p.pid]
    cpu0, cpu, t0, lines, timer = {}, {}, 0.0, [], None
    for line in p.stdout:
        line = line.strip()
        if line == "START":
            t0 = time.monotonic()
            cpu0 = {k: sum(cpu_ticks(x) for x in f()) for k, f in groups.items()}
            if stall:
                timer = threading.Timer(STEP_S / 2, stall_peer, args=(peer,))
                timer.daemon = True
                timer.start()
        elif line == "END":
            dt = time.monotonic() - t0
            cpu = {k: 100.0 * (sum(cpu_ticks(x) for x in f()) - cpu0.get(k, 0)) / TICK / dt
                   for k, f in groups.items()}
        else:
            lines.append(line)
    if timer is not None:
        timer.join()
    err = p.stderr.read()
    if p.wait() != 0 or not lines:
        raise RuntimeError(f"rendload failed ({p.returncode}): {err[-2000:]}")
    r = json.loads(lines[-1])
    r["cpu"] = cpu
    return r


def signal_all(pids, sig):
    for x in pids:
        try:
            os.kill(x, sig)
        except ProcessLookupError:
            pass  # the run is being torn down


def stall_peer(peer):
    pids = peer.stall_pids()
    try:
        signal_all(pids, signal.SIGSTOP)
        time.sleep(STALL_S)  # the injected fault itself: a 0.7 s stall
    finally:
        signal_all(pids, signal.SIGCONT)  # also when the run is interrupted meanwhile
    log(f"{peer.name}: stalled {len(pids)} process(es) for {STALL_S} s")


def clean_headwater(port, prefix, count):
    """Deletes what a step left (each rendition's playlist and last window) so that disk use
    stays bounded across the ramp."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for r in range(count):
            paths = [f"{prefix}/r{r}/index.m3u8"]
            paths += [f"{prefix}/r{r}/seg_{k}.ts" for k in range(int(STEP_S + WARMUP_S) + 8)]
            for path in paths:
                conn.request("DELETE", path)
                conn.getresponse().read()
    finally:
        conn.close()


def step_line(peer, count, r, ok, why):
    cpu = ", ".join(f"{k} {v:.0f}%" for k, v in r["cpu"].items())
    log(f"{peer.name} {count:>4}: {'PASS' if ok else 'FAIL'} seg PUT p50 "
        f"{r['seg_put_p50_ms']:.1f} p99 {r['seg_put_p99_ms']:.1f} max {r['seg_put_max_ms']:.0f}"
        f" ms, gets {r['seg_gets']}, put {r['put_mb_s']:.0f} MB/s, get {r['get_mb_s']:.0f} MB/s"
        f"; cpu {cpu}{'; ' + '; '.join(why) if why else ''}")


def headwater_peer(cl):
    return Peer("Headwater", cl.gw_port,
                {"nodes": lambda: [n.proc.pid for n in cl.nodes.values()],
                 "gateway": lambda: [cl.gateway.proc.pid]},
                lambda: [cl.gateway.proc.pid])


def nginx_peer(ng, tmp):
    pids = lambda: [ng.proc.pid] + children(ng.proc.pid)  # noqa: E731 - master + workers
    peer = Peer("nginx", ng.port, {"nginx": pids}, pids)
    peer.www = os.path.join(tmp, "www")
    return peer


def one_step(peer, count, prefix, stall=False):
    r = run_step(peer, count, prefix, stall)
    ok, why = passes(r)
    step_line(peer, count, r, ok, why)
    if hasattr(peer, "www"):
        shutil.rmtree(os.path.join(peer.www, prefix.strip("/")), ignore_errors=True)
    else:
        clean_headwater(peer.port, prefix, count)
    return r, ok, why


def ramp(peers):
    n = 0
    for count in RAMP:
        for peer in peers:
            if peer.fails_in_row >= 2:
                continue
            n += 1
            r, ok, why = one_step(peer, count, f"/live/s{n}")
            peer.steps.append((count, ok, r, why))
            if ok:
                peer.fails_in_row = 0
                peer.best = (count, r)
            else:
                peer.fails_in_row += 1
        if all(p.fails_in_row >= 2 for p in peers):
            break


def self_check(peers):
    out = []
    count = RAMP[0]
    for i, peer in enumerate(peers):
        r, ok, why = one_step(peer, count, f"/live/check{i}", stall=True)
        out.append((peer, r, ok, why))
    return out


def report(peers, checks, seconds):
    hw, ng = peers
    print(f"### Renditions per box — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"commit {os.environ.get('HW_BENCH_COMMIT') or commit()}")
    print()
    print(f"Machine: {machine()}. One run, steps alternating: 3 `headwater-node` + 1 "
          f"`headwater-gateway` (release build) vs nginx {nginx_version()} WebDAV "
          f"(`dav_methods PUT DELETE`, one file per PUT, no fsync). Ramp {RAMP}, "
          f"{WARMUP_S:.0f} s warm-up + {STEP_S:.0f} s measured per step; run took "
          f"{seconds / 60:.1f} min; {load_note()}.")
    print()
    print("| count | Headwater | nginx |")
    print("| ---: | --- | --- |")
    for count in RAMP:
        cells = []
        for p in peers:
            st = [s for s in p.steps if s[0] == count]
            if not st:
                cells.append("—")
                continue
            _, ok, r, why = st[0]
            cells.append(f"{'pass' if ok else 'FAIL'} p99 {r['seg_put_p99_ms']:.0f} ms, max "
                         f"{r['ack_max_ms']:.0f} ms" + ("" if ok else f" ({'; '.join(why)})"))
        if any(c != "—" for c in cells):
            print(f"| {count} | {cells[0]} | {cells[1]} |")
    print()
    hb = hw.best[0] if hw.best else 0
    nb = ng.best[0] if ng.best else 0
    ratio = f"{hb / nb:.3f}x" if nb else "n/a"
    print("| at each peer's highest passing step | Headwater | nginx | Headwater / nginx |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| renditions sustained | {hb} | {nb} | {ratio} |")

    def cell(p, f):
        return f(p.best[1]) if p.best else "n/a"
    for label, f in (("segment PUT p50 (ms)", lambda r: f"{r['seg_put_p50_ms']:.1f}"),
                     ("segment PUT p99 (ms)", lambda r: f"{r['seg_put_p99_ms']:.1f}"),
                     ("max ack of any second (ms)", lambda r: f"{r['ack_max_ms']:.0f}"),
                     ("PUT / GET MB/s", lambda r: f"{r['put_mb_s']:.0f} / {r['get_mb_s']:.0f}"),
                     ("CPU (% of one core)", lambda r: ", ".join(
                         f"{k} {v:.0f}" for k, v in r["cpu"].items()))):
        print(f"| {label} | {cell(hw, f)} | {cell(ng, f)} | |")
    print()
    worked = all(not ok for _, _, ok, _ in checks)
    print(f"Self-check ({'the rule works' if worked else 'THE RULE DID NOT CATCH A STALL'}): "
          f"count {RAMP[0]} with a {STALL_S} s SIGSTOP mid-step — " + "; ".join(
              f"{p.name} ({'gateway' if p is hw else 'all nginx processes'}) "
              f"{'FAIL' if not ok else 'pass'}: {'; '.join(why) or 'nothing caught'}"
              for p, _, ok, why in checks) + ".")
    print()
    print("A step's cell: pass/FAIL, segment PUT p99, the largest ack (any write) of any second, "
          "and why it failed. CPU = utime+stime from /proc/PID/stat over the measured window "
          "(nodes summed, nginx master+workers summed; the load generator's own CPU shown so "
          "that a saturated generator is visible). Load generator: tests/bench/rendload.c "
          "(C, libuv). Command: "
          "`tests/bench/renditions.sh --ramp`.")
    sys.stdout.flush()
    return worked


def main():
    if shutil.which(os.environ.get("NGINX", "nginx")) is None:
        sys.exit("renditions: nginx not found (scripts/deps installs it)")
    t_begin = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="hw-rend-")
    cl, ng, rc = None, Nginx(tmp), 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        log("starting 3 nodes + gateway, and nginx")
        cl = Cluster(nodes=3, name="hw-rend")
        cl.start(ready_timeout=60)
        ng.start()
        peers = [headwater_peer(cl), nginx_peer(ng, tmp)]
        if "--self-check" not in sys.argv:
            ramp(peers)
        checks = self_check(peers)
        if "--self-check" in sys.argv:
            rc = 0 if all(not ok for _, _, ok, _ in checks) else 1
            for p, _, ok, why in checks:
                print(f"self-check {p.name}: {'FAIL (caught)' if not ok else 'pass (missed)'}"
                      f" {'; '.join(why)}")
        else:
            rc = 0 if report(peers, checks, time.monotonic() - t_begin) else 1
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - diagnostics, then clean up
        log(f"FAILED: {type(e).__name__}: {e}")
        if cl is not None:
            cl.dump_logs(20)
    finally:
        ng.stop()
        if cl is not None:
            for p in cl.stop():
                log(f"daemon: {p}")
            cl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
