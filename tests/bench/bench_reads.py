#!/usr/bin/env python3
"""Issue 3 read benchmark: the gateway (hot-object cache) vs nginx (sendfile), one run, same
machine, same objects (100 x 1 MB segments + a playlist):

  hot   wrk -c64 over random segments, gateway cache warm        (goal: >= 1.0x nginx rps,
                                                                    p99 <= 1.5x nginx)
  cold  the same against a second gateway with --cache-size 0     (every read hits a node)
  herd  256 clients GET a segment that was just written, at once: node reads counted through
        the nodes' STATUS (coalescing: 1 per gateway)
  poll  wrk -c256 GETs one live playlist that a writer replaces every second (through the same
        server), gateway vs nginx (issue 9: >= 1.0x; the gateway serves it from its cache until
        the commit watch invalidates it, so every answer is the latest acknowledged version)

nginx, hot and cold take turns for BENCH_ROUNDS rounds (3); each metric reported is the median
of its rounds, and every round's hot/nginx ratios are listed (run-to-run spread is ~5% here).

Run through tests/bench/bench.sh --reads (release build). Prints a markdown section."""
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from bench import (Nginx, commit, fmt, log, machine, nginx_version, parse_wrk,  # noqa: E402
                   put_one, ratio, WRK, WRK_C, WRK_D, WRK_T)
from cluster import Cluster, Proc, free_ports  # noqa: E402
from nodeproto import NodeClient, dec, one  # noqa: E402

SEGMENTS = 100
SEG_SIZE = 1 << 20
HERD = 256
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))

LUA = """\
request = function()
  return wrk.format("GET", string.format("/bench/live/seg_%03d.ts", math.random(0, 99)))
end
"""


POLL_C = 256
POLL_LUA = """\
request = function()
  return wrk.format("GET", "/bench/live/index.m3u8")
end
"""


def playlist(i):
    return ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n" % i + "".join(
        f"#EXTINF:2.0,\nseg_{(i + k) % SEGMENTS:03d}.ts\n" for k in range(6))).encode()


def poll(port, script):
    """wrk -c256 on the playlist while it is replaced every second through the same server."""
    stop = threading.Event()
    writes = []

    def writer():
        i = 0
        while not stop.wait(1.0):
            i += 1
            writes.append(put_only(port, "/bench/live/index.m3u8", playlist(i)))

    t = threading.Thread(target=writer)
    t.start()
    try:
        return wrk(port, script, conns=POLL_C)
    finally:
        stop.set()
        t.join()


def wrk(port, script, conns=WRK_C):
    cmd = [WRK, f"-t{WRK_T}", f"-c{conns}", f"-d{WRK_D}", "--latency", "-s", script,
           f"http://127.0.0.1:{port}/"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed: {p.stderr}")
    return parse_wrk(p.stdout)


def warm(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(SEGMENTS):
        c.request("GET", f"/bench/live/seg_{i:03d}.ts")
        r = c.getresponse()
        r.read()
        assert r.status == 200, (port, i, r.status)
    c.close()


def put_only(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("PUT", path, body=body, headers={"Content-Type": "video/mp2t"})
    r = c.getresponse()
    r.read()
    c.close()
    if r.status not in (201, 204):
        raise RuntimeError(f"PUT {path}: HTTP {r.status}")


def node_reads(cl):
    total = 0
    for n in cl.nodes.values():
        c = NodeClient(n.address)
        total += one(c.status(), 11)
        c.close()
    return total


def herd(port, path):
    """HERD clients connect first, then all send the same GET at once."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(HERD)]
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    go = threading.Barrier(HERD)
    codes = []

    def one_client(s):
        go.wait()
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, body = buf.split(b"\r\n\r\n", 1)
        length = int([h.split(b":")[1] for h in head.split(b"\r\n")
                      if h.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += s.recv(1 << 20)
        codes.append(int(head.split()[1]))
        s.close()
    ts = [threading.Thread(target=one_client, args=(s,)) for s in socks]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return codes


def combine(runs):
    """One wrk result from several: medians of the figures, errors of all of them."""
    out = {}
    for key, v in runs[0].items():
        if key == "non2xx":
            out[key] = sum(r[key] for r in runs)
        elif isinstance(v, str):
            out[key] = " ".join(r[key] for r in runs if r[key])
        else:
            out[key] = statistics.median(r[key] for r in runs)
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="hw-bench-reads-")
    script = os.path.join(tmp, "segments.lua")
    with open(script, "w") as f:
        f.write(LUA)
    poll_script = os.path.join(tmp, "playlist.lua")
    with open(poll_script, "w") as f:
        f.write(POLL_LUA)
    ng = Nginx(tmp)
    cl = cold = None
    rc = 0
    try:
        log("starting 3 nodes + gateway, nginx")
        cl = Cluster(nodes=3, name="hw-bench-reads", gateway_args=["--access-log=false"])
        cl.start(ready_timeout=60)
        ng.start()
        gp, ap = free_ports(2)
        cold = Proc("gateway-cold", [cl.gateway_bin, "--listen", f"127.0.0.1:{gp}",
                                     "--admin-listen", f"127.0.0.1:{ap}", "--nodes",
                                     ",".join(n.address for n in cl.nodes.values()),
                                     "--cache-size", "0", "--access-log=false"],
                    os.path.join(cl.tmp, "gateway-cold.log"), dict(os.environ))
        cold.start()
        log(f"uploading {SEGMENTS} x 1 MB segments + playlist to both")
        pl = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + "".join(
            f"#EXTINF:2.0,\nseg_{i:03d}.ts\n" for i in range(SEGMENTS))
        for i in range(SEGMENTS):
            body = os.urandom(SEG_SIZE)
            put_one(cl.gw_port, f"/bench/live/seg_{i:03d}.ts", body)
            put_one(ng.port, f"/bench/live/seg_{i:03d}.ts", body)
        put_one(cl.gw_port, "/bench/live/index.m3u8", pl.encode())
        put_one(ng.port, "/bench/live/index.m3u8", pl.encode())
        time.sleep(1.0)  # let the cold gateway's cluster view settle
        warm(cl.gw_port)
        warm(ng.port)
        warm(gp)
        rounds = []
        for k in range(ROUNDS):
            one_round = {}
            for name, port in (("nginx", ng.port), ("hot", cl.gw_port), ("cold", gp)):
                log(f"round {k + 1}/{ROUNDS} {name}: wrk -t{WRK_T} -c{WRK_C} -d{WRK_D}")
                one_round[name] = wrk(port, script)
            rounds.append(one_round)
        res = {name: combine([r[name] for r in rounds]) for name in rounds[0]}
        prounds = []
        for k in range(ROUNDS):
            one_round = {}
            for name, port in (("nginx", ng.port), ("gateway", cl.gw_port)):
                log(f"poll round {k + 1}/{ROUNDS} {name}: wrk -c{POLL_C} on a live playlist")
                one_round[name] = poll(port, poll_script)
            prounds.append(one_round)
        pres = {name: combine([r[name] for r in prounds]) for name in prounds[0]}
        herd_res = {}
        for name, port in (("cached gateway", cl.gw_port), ("cache disabled", gp)):
            path = f"/bench/live/fresh_{name[:4]}.ts"
            # Written through the other gateway, never read before: the herd's gateway has
            # never seen it, so every one of its clients misses at once.
            put_only(gp if port == cl.gw_port else cl.gw_port, path, os.urandom(SEG_SIZE))
            before = node_reads(cl)
            codes = herd(port, path)
            herd_res[name] = (node_reads(cl) - before, codes.count(200), len(codes))
        report(res, herd_res, rounds)
        report_poll(pres, prounds)
        for r in list(res.values()) + list(pres.values()):
            if r["non2xx"] or r["sockerr"]:
                rc = 1
    except Exception as e:  # noqa: BLE001
        log(f"FAILED: {type(e).__name__}: {e}")
        if cl is not None:
            cl.dump_logs(20)
        rc = 1
    finally:
        ng.stop()
        if cold is not None and cold.alive():
            cold.signal(15)
            cold.wait(10)
        if cl is not None:
            cl.stop()
            cl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


def report(r, herd_res, rounds):
    n, h, c = r["nginx"], r["hot"], r["cold"]
    print(f"### Issue 3 reads — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"commit {commit()}\n")
    print(f"Machine: {machine()}. One run (medians of its rounds): 3 `headwater-node` + `headwater-gateway` "
          f"(release build, default `--threads`, default `--cache-size`, `--access-log=false` like nginx's `access_log off`) and a second gateway "
          f"with `--cache-size 0`, vs nginx {nginx_version()} (`sendfile on`), same {SEGMENTS} x 1 MB "
          f"segments.\n")
    print("| metric | nginx | gateway hot (cache) | ratio | gateway cold (no cache) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for key, label, d in (("rps", "requests/s", 0), ("mbps", "MiB/s", 0),
                          ("p50", "latency p50 (ms)", 2), ("p99", "latency p99 (ms)", 2)):
        print(f"| {label} | {fmt(n[key], d)} | {fmt(h[key], d)} | {ratio(h[key], n[key])} | "
              f"{fmt(c[key], d)} | {ratio(c[key], n[key])} |")
    print(f"\n`wrk -t{WRK_T} -c{WRK_C} -d{WRK_D} --latency -s segments.lua` (random segment of "
          f"{SEGMENTS} per request); errors: nginx {n['non2xx']}, hot {h['non2xx']}, cold "
          f"{c['non2xx']} non-2xx.\n")
    print(f"Medians of {len(rounds)} rounds (nginx, hot and cold take turns). Hot/nginx per "
          "round: " + "; ".join(
              f"{ratio(x['hot']['rps'], x['nginx']['rps'])} req/s, "
              f"p99 {ratio(x['hot']['p99'], x['nginx']['p99'])}" for x in rounds) + ".\n")
    print(f"Herd: {HERD} clients GET one segment written just before, all at once:\n")
    print("| gateway | node reads | 200 answers |")
    print("| --- | ---: | ---: |")
    for name, (reads, ok, total) in herd_res.items():
        print(f"| {name} | {reads} | {ok}/{total} |")
    print("\nCommand: `tests/bench/bench.sh --reads`.")


def report_poll(r, rounds):
    n, g = r["nginx"], r["gateway"]
    print(f"\nPlaylist poll: `wrk -t{WRK_T} -c{POLL_C} -d{WRK_D}` on one playlist that a writer "
          "replaces every second through the same server (gateway: cached until the commit watch "
          "invalidates it; nginx: WebDAV PUT, served from the file).\n")
    print("| metric | nginx | gateway | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for key, label, d in (("rps", "requests/s", 0), ("p50", "latency p50 (ms)", 2),
                          ("p99", "latency p99 (ms)", 2)):
        print(f"| {label} | {fmt(n[key], d)} | {fmt(g[key], d)} | {ratio(g[key], n[key])} |")
    print(f"\nErrors: nginx {n['non2xx']}, gateway {g['non2xx']} non-2xx. Medians of {len(rounds)} "
          "rounds; gateway/nginx per round: " + "; ".join(
              f"{ratio(x['gateway']['rps'], x['nginx']['rps'])}" for x in rounds) + ".")


if __name__ == "__main__":
    sys.exit(main())
