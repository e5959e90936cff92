#!/usr/bin/env python3
"""Headwater vs nginx on one machine, one run (called by tests/bench/bench.sh).

  1. 2 MB PUT ack latency: N sequential PUTs over one keep-alive connection (http.client),
     each timed from the first request byte to the last response byte; p50/p99.
     Headwater acknowledges after 3-way replication + Raft commit; nginx WebDAV after writing
     one local file (no fsync).
  2. 1 MB GET throughput: `wrk -t2 -c64 -d10s` on one 1 MB object.

Prints a markdown table (stdout) for docs/benchmarks.md; progress goes to stderr.
Env: HW_NODE_BIN, HW_GATEWAY_BIN (release build), BENCH_PUTS (200), BENCH_WRK_DURATION (10s),
BENCH_WRK_CONNECTIONS (64), BENCH_WRK_THREADS (2), NGINX (nginx), WRK (wrk).
"""
import http.client
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from cluster import Cluster, _die_with_parent, free_ports  # noqa: E402

PUTS = int(os.environ.get("BENCH_PUTS", "200"))
WARMUP = 10
PUT_SIZE = 2 << 20
GET_SIZE = 1 << 20
WRK_D = os.environ.get("BENCH_WRK_DURATION", "10s")
WRK_C = os.environ.get("BENCH_WRK_CONNECTIONS", "64")
WRK_T = os.environ.get("BENCH_WRK_THREADS", "2")
NGINX = os.environ.get("NGINX", "nginx")
WRK = os.environ.get("WRK", "wrk")


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


NGINX_CONF = """\
user root;
worker_processes auto;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    types {{ video/mp2t ts; }}
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            client_max_body_size 0;
            client_body_buffer_size 1m;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_ports(1)[0]
        for d in ("www", "nginx-body", "nginx-proxy", "nginx-fastcgi"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        self.conf = os.path.join(tmp, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=tmp, port=self.port))
        self.proc = None

    def start(self):
        out = open(os.path.join(self.tmp, "nginx-stdout.log"), "wb")
        self.proc = subprocess.Popen([NGINX, "-p", self.tmp + "/", "-c", self.conf],
                                     stdout=out, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/")
                c.getresponse().read()
                c.close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not come up: {self.tail()}")

    def tail(self):
        try:
            with open(os.path.join(self.tmp, "nginx-error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return "(no error log)"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = math.ceil(p / 100.0 * len(sorted_vals)) - 1
    return sorted_vals[max(0, min(len(sorted_vals) - 1, k))]


def put_latencies(port, prefix, body, n, warmup):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    lat = []
    try:
        for i in range(warmup + n):
            path = f"{prefix}/put_{i:05d}.ts"
            t0 = time.perf_counter()
            conn.request("PUT", path, body=body, headers={"Content-Type": "video/mp2t"})
            r = conn.getresponse()
            r.read()
            dt = time.perf_counter() - t0
            if r.status not in (200, 201, 204):
                raise RuntimeError(f"PUT {path} on port {port}: HTTP {r.status}")
            if i >= warmup:
                lat.append(dt * 1000.0)
    finally:
        conn.close()
    lat.sort()
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "mean": sum(lat) / len(lat),
            "max": lat[-1], "n": len(lat)}


def put_one(port, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("PUT", path, body=body, headers={"Content-Type": "video/mp2t"})
    r = conn.getresponse()
    r.read()
    conn.close()
    if r.status not in (200, 201, 204):
        raise RuntimeError(f"PUT {path} on port {port}: HTTP {r.status}")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    r = conn.getresponse()
    got = r.read()
    conn.close()
    if r.status != 200 or got != body:
        raise RuntimeError(f"GET {path} on port {port}: HTTP {r.status}, {len(got)} bytes")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
SIZE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def parse_wrk(text):
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", text)
    out["mbps"] = float(m.group(1)) * SIZE_UNITS[m.group(2)] / (1 << 20) if m else float("nan")
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        out[f"p{p}"] = float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", text)
    out["sockerr"] = m.group(1).strip() if m else ""
    return out


def run_wrk(port, path):
    cmd = [WRK, f"-t{WRK_T}", f"-c{WRK_C}", f"-d{WRK_D}", "--latency",
           f"http://127.0.0.1:{port}{path}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed: {p.stderr}")
    return parse_wrk(p.stdout), " ".join(cmd[:-1]) + " http://127.0.0.1:PORT" + path


def ratio(a, b):
    if not b or b != b or a != a:
        return "n/a"
    return f"{a / b:.2f}x"


def fmt(v, digits=1):
    return "n/a" if v != v else f"{v:,.{digits}f}"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}"


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                               text=True, cwd=HERE).stdout.strip() or "?"
    except OSError:
        return "?"


def main():
    for tool in (NGINX, WRK):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (scripts/deps --bench installs it)")
    tmp = tempfile.mkdtemp(prefix="hw-bench-")
    cl = None
    ng = Nginx(tmp)
    rc = 0
    try:
        log("starting 3 nodes + gateway")
        cl = Cluster(nodes=3, name="hw-bench")
        cl.start(ready_timeout=60)
        log("starting nginx")
        ng.start()
        hw_port, ng_port = cl.gw_port, ng.port
        put_body = os.urandom(PUT_SIZE)
        results = {}
        for name, port in (("hw", hw_port), ("nginx", ng_port)):
            log(f"{name}: {PUTS} x 2 MB PUT (after {WARMUP} warm-up)")
            results[name + "_put"] = put_latencies(port, "/bench/put", put_body, PUTS, WARMUP)
        get_body = os.urandom(GET_SIZE)
        for name, port in (("hw", hw_port), ("nginx", ng_port)):
            put_one(port, "/bench/get/seg_1mb.ts", get_body)
            log(f"{name}: wrk -t{WRK_T} -c{WRK_C} -d{WRK_D} GET 1 MB")
            results[name + "_get"], wrk_cmd = run_wrk(port, "/bench/get/seg_1mb.ts")
        report(results, wrk_cmd)
        for name in ("hw", "nginx"):
            g = results[name + "_get"]
            if g["non2xx"] or g["sockerr"]:
                log(f"WARNING {name}: {g['non2xx']} non-2xx answers, socket errors: {g['sockerr']}")
                rc = 1
    except Exception as e:  # noqa: BLE001 - print diagnostics then fail
        log(f"FAILED: {type(e).__name__}: {e}")
        if cl is not None:
            cl.dump_logs(20)
        log("nginx error log: " + ng.tail())
        rc = 1
    finally:
        ng.stop()
        if cl is not None:
            problems = cl.stop()
            for p in problems:
                log(f"daemon: {p}")
            cl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


def report(r, wrk_cmd):
    hp, np_ = r["hw_put"], r["nginx_put"]
    hg, ng = r["hw_get"], r["nginx_get"]
    print(f"### Issue 2 baseline — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"commit {commit()}")
    print()
    print(f"Machine: {machine()}. Everything on loopback in one run: 3 `headwater-node` + 1 "
          f"`headwater-gateway` (release build) vs nginx {nginx_version()} WebDAV "
          "(`dav_methods PUT`, `sendfile on`).")
    print()
    print("| metric | Headwater (3 replicas) | nginx | Headwater / nginx |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| 2 MB PUT ack latency p50 (ms) | {fmt(hp['p50'], 2)} | {fmt(np_['p50'], 2)} | "
          f"{ratio(hp['p50'], np_['p50'])} |")
    print(f"| 2 MB PUT ack latency p99 (ms) | {fmt(hp['p99'], 2)} | {fmt(np_['p99'], 2)} | "
          f"{ratio(hp['p99'], np_['p99'])} |")
    print(f"| 2 MB PUT ack latency mean (ms) | {fmt(hp['mean'], 2)} | {fmt(np_['mean'], 2)} | "
          f"{ratio(hp['mean'], np_['mean'])} |")
    print(f"| 1 MB GET requests/s | {fmt(hg['rps'])} | {fmt(ng['rps'])} | "
          f"{ratio(hg['rps'], ng['rps'])} |")
    print(f"| 1 MB GET throughput (MiB/s) | {fmt(hg['mbps'])} | {fmt(ng['mbps'])} | "
          f"{ratio(hg['mbps'], ng['mbps'])} |")
    print(f"| 1 MB GET latency p50 (ms) | {fmt(hg['p50'], 2)} | {fmt(ng['p50'], 2)} | "
          f"{ratio(hg['p50'], ng['p50'])} |")
    print(f"| 1 MB GET latency p99 (ms) | {fmt(hg['p99'], 2)} | {fmt(ng['p99'], 2)} | "
          f"{ratio(hg['p99'], ng['p99'])} |")
    print()
    print(f"PUT: {hp['n']} sequential 2 MB PUTs over one keep-alive connection (Python "
          f"http.client), {WARMUP} warm-up PUTs not counted; latency = first request byte to "
          "last response byte. Headwater acknowledges after the bytes are durable on a quorum "
          "of 3 replicas and the commit is applied on the leader; nginx after writing one "
          "local file without fsync.")
    print(f"GET: `{wrk_cmd}` on one 1 MB object. Errors: Headwater {hg['non2xx']} non-2xx"
          f"{', socket ' + hg['sockerr'] if hg['sockerr'] else ''}; nginx {ng['non2xx']} non-2xx"
          f"{', socket ' + ng['sockerr'] if ng['sockerr'] else ''}.")
    print("Command: `tests/bench/bench.sh`.")
    sys.stdout.flush()


def nginx_version():
    p = subprocess.run([NGINX, "-v"], capture_output=True, text=True)
    m = re.search(r"nginx/([\d.]+)", p.stderr + p.stdout)
    return m.group(1) if m else "?"


if __name__ == "__main__":
    sys.exit(main())
