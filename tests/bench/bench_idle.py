#!/usr/bin/env python3
"""Memory per idle keep-alive connection: Headwater's gateway vs nginx, one run.

  HW_NODE_BIN=... HW_GATEWAY_BIN=... tests/bench/bench_idle.py     (or bench.sh --idle)

Each round starts a fresh server (gateway: the cluster keeps running, only the gateway process
is restarted; nginx: a fresh nginx), opens BENCH_IDLE_CONNS (10,000) keep-alive connections to
it, sends one GET of a small object on each and reads the answer, leaves them all open and idle,
and reads the server's resident set size (VmRSS; nginx: master + workers) before and after.
Growth / connections is the figure; rounds alternate nginx / gateway (BENCH_ROUNDS, 3) and the
medians are reported. nginx runs with the configuration of bench.py (worker_connections raised
so 10,000 fit). RLIMIT_NOFILE is raised to its hard limit for this process and its children.

Prints a markdown table (stdout) for docs/benchmarks.md; progress goes to stderr.
"""
import os
import re
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import bench  # noqa: E402
from cluster import Cluster  # noqa: E402

CONNS = int(os.environ.get("BENCH_IDLE_CONNS", "10000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BODY = b"x" * 100
PATH = "/idle/obj.bin"


def log(msg):
    print(f"[bench-idle] {msg}", file=sys.stderr, flush=True)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rfind(")") + 2:].split()[1]) == pid:
            out.append(int(d))
    return out


def tree_rss(pid):
    return rss_kib(pid) + sum(rss_kib(c) for c in children(pid))


def read_answer(s):
    """Read one HTTP answer with a Content-Length body; returns the status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the answer")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    need = int(m.group(1)) if m else 0
    while len(rest) < need:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed mid-body")
        rest += chunk
    return int(head.split(b" ", 2)[1])


def open_idle(port, n):
    req = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(req)
        st = read_answer(s)
        if st != 200:
            raise RuntimeError(f"GET on port {port}: HTTP {st}")
        socks.append(s)
    return socks


def measure(name, port, rss_fn):
    socks = []
    try:
        open_idle(port, 1)[0].close()  # warm: the object is cached, the first answer paid for
        time.sleep(0.5)
        before = rss_fn()
        socks = open_idle(port, CONNS)
        time.sleep(1.0)  # every connection idle
        after = rss_fn()
        per = (after - before) * 1024.0 / CONNS
        log(f"{name}: {before} KiB -> {after} KiB, {per:.0f} B per connection")
        return per
    finally:
        for s in socks:
            s.close()


def gateway_round(cl):
    cl.gateway.signal(15)
    cl.gateway.wait(10)
    cl.gateway.start()
    cl.wait_ready(60)
    return measure("gateway", cl.gw_port, lambda: rss_kib(cl.gateway.proc.pid))


def nginx_round(tmp):
    ng = bench.Nginx(tmp)
    with open(ng.conf) as f:
        conf = f.read().replace("worker_connections 4096;", "worker_connections 20000;")
    conf = conf.replace("daemon off;", "daemon off;\nworker_rlimit_nofile 20000;")
    with open(ng.conf, "w") as f:
        f.write(conf)
    os.makedirs(os.path.join(tmp, "www", "idle"), exist_ok=True)
    with open(os.path.join(tmp, "www", PATH.lstrip("/")), "wb") as f:
        f.write(BODY)
    ng.start()
    try:
        return measure("nginx", ng.port, lambda: tree_rss(ng.proc.pid))
    finally:
        ng.stop()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < CONNS + 1000:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is too low for {CONNS} connections")
    tmp = tempfile.mkdtemp(prefix="hw-bench-idle-")
    cl = Cluster(nodes=3, name="hw-bench-idle",
                 gateway_args=["--access-log=0", "--log-level", "warn"])
    gw, ng = [], []
    try:
        cl.start()
        r = cl.put_retry(PATH, BODY)
        if r.status not in (200, 201, 204):
            raise RuntimeError(f"PUT: HTTP {r.status}")
        for i in range(ROUNDS):
            log(f"round {i + 1}/{ROUNDS}")
            d = os.path.join(tmp, f"nginx{i}")
            os.makedirs(d)
            ng.append(nginx_round(d))
            gw.append(gateway_round(cl))
    finally:
        cl.stop()
        cl.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    mg, mn = statistics.median(gw), statistics.median(ng)
    print(f"| idle keep-alive connections ({CONNS}, one GET each) | gateway | nginx | ratio |")
    print("|---|---|---|---|")
    print(f"| RSS growth per connection (median of {ROUNDS} alternated rounds) "
          f"| {mg:.0f} B | {mn:.0f} B | {mg / mn if mn > 0 else float('nan'):.1f}x |")
    print(f"| rounds (gateway) | {', '.join(f'{x:.0f}' for x in gw)} B | "
          f"{', '.join(f'{x:.0f}' for x in ng)} B | |")


if __name__ == "__main__":
    main()
