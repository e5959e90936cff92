#!/usr/bin/env python3
"""Issue 8 §5 memory bounds over real daemons (3 nodes + a gateway with a small
--max-buffered-bytes, ASan's quarantine off so RSS means what the gateway holds): a PUT of
1-byte chunks costs a bounded amount of gateway memory during and after (and is stored
byte-exact), a failed one gives it back; clients that read nothing are throttled and, past the
budget, closed (counted on /metrics) while a normal client still gets its object; stalled TLS
handshakes count toward the budget too (a separate HTTPS gateway with a test CA)."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import HOST, Cluster, Proc, RawConn, free_ports, request, sha256  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)
BUDGET = 16 << 20
# HW_LIMITS_BUDGET=1024G runs the budget tests without an effective budget (they must fail then)
GW_ARGS = ["--threads", "1", "--cache-size", "64M",  # objects over 8 MiB stream from the nodes
           "--max-buffered-bytes", os.environ.get("HW_LIMITS_BUDGET", str(BUDGET))]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssPeak:
    """Samples a process's RSS in a thread until stopped; .peak in KiB."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop_ev = pid, rss_kib(pid), threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_ev.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def stop(self):
        self.stop_ev.set()
        self.t.join()
        return self.peak


def one_byte_chunks(data):
    return b"".join(b"1\r\n" + data[i:i + 1] + b"\r\n" for i in range(len(data)))


def put_head(key):
    return (f"PUT {key} HTTP/1.1\r\nHost: t\r\nContent-Type: video/mp2t\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()


def steady(read, deadline=10.0, interval=0.2, within=256):
    """read() once it stopped moving (three polls within `within` of each other), or at the
    deadline."""
    end = time.monotonic() + deadline
    vals = [read()]
    while time.monotonic() < end:
        time.sleep(interval)
        vals = (vals + [read()])[-3:]
        if len(vals) == 3 and max(vals) - min(vals) <= within:
            break
    return vals[-1]


def settled_rss(pid):
    return steady(lambda: rss_kib(pid))


@test
def one_byte_chunks_cost_bounded_memory(cl):
    pid = cl.gateway.proc.pid
    warm = os.urandom(1 << 20)  # let allocator arenas and connection pools exist first
    assert cl.put_retry("/lim/warm.ts", warm).status == 201
    base = settled_rss(pid)
    data = os.urandom(3 << 20)
    wire = one_byte_chunks(data) + b"0\r\n\r\n"  # 15 MiB on the wire for 3 MiB of payload
    peak = RssPeak(pid)
    c = RawConn(cl.gw_port, timeout=120)
    c.send(put_head("/lim/tiny.ts") + wire)
    r = c.read_response("PUT")
    c.close()
    during = peak.stop() - base
    assert r.status == 201, r
    g = cl.get("/lim/tiny.ts")
    assert g.status == 200 and sha256(g.body) == sha256(data), (g.status, len(g.body))
    after = settled_rss(pid) - base
    print(f"  rss: base {base} KiB, peak +{during} KiB, after +{after} KiB")
    assert during < 48 * 1024, f"gateway grew by {during} KiB for a 3 MiB upload of 1-byte chunks"
    assert after < 32 * 1024, f"gateway kept {after} KiB after it"


@test(needs=["one_byte_chunks_cost_bounded_memory"])
def failed_one_byte_upload_gives_memory_back(cl):
    pid = cl.gateway.proc.pid
    base = settled_rss(pid)
    data = os.urandom(3 << 20)
    wire = one_byte_chunks(data)
    peak = RssPeak(pid)
    c = RawConn(cl.gw_port, timeout=120)
    got0 = metric(cl, "headwater_gateway_received_bytes_total")
    c.send(put_head("/lim/failed.ts") + wire)  # no last chunk: the client goes away
    cl.wait_for(lambda: metric(cl, "headwater_gateway_received_bytes_total") - got0 >= len(wire),
                30.0, "the gateway read the whole body")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # reset
    during = peak.stop() - base
    cl.wait_for(lambda: cl.get("/lim/failed.ts").status == 404, 10.0, "nothing stored")
    after = settled_rss(pid) - base
    print(f"  rss: base {base} KiB, peak +{during} KiB, after +{after} KiB")
    assert during < 48 * 1024, f"gateway grew by {during} KiB"
    assert after < 16 * 1024, f"gateway kept {after} KiB after the failed upload"
    assert cl.get("/lim/tiny.ts").status == 200


def metric(cl, name):
    text = cl.admin("GET", "/metrics").body.decode()
    return int([ln for ln in text.splitlines() if ln.startswith(name + " ")][0].split()[1])


def stalled_readers(cl, key, n):
    """n clients that ask for key and read nothing (small receive buffers)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection((HOST, cl.gw_port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(f"GET {key} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        socks.append(s)
        time.sleep(0.1)  # distinct ages: the oldest holder is the first to go
    return socks


def closed_socks(socks):
    """How many of socks the gateway closed (EOF or reset after whatever it had sent)."""
    n = 0
    for s in socks:
        s.settimeout(5.0)
        try:
            while True:
                if not s.recv(1 << 20):
                    n += 1
                    break
        except (ConnectionResetError, BrokenPipeError):
            n += 1
        except socket.timeout:
            pass
    return n


def normal_client_gets(cl, key, body):
    g = cl.get(key, timeout=60)
    assert g.status == 200 and sha256(g.body) == sha256(body), (g.status, len(g.body))


@test
def readers_that_read_nothing_are_throttled_under_the_budget(cl):
    """Streamed from the nodes (too big for the cache): each stalled reader would hold 8 MiB; the
    budget shrinks their marks so the process holds about the budget, not 8 MiB per reader."""
    pid = cl.gateway.proc.pid
    body = os.urandom(24 << 20)
    assert cl.put_retry("/lim/big.bin", body).status == 201
    normal_client_gets(cl, "/lim/big.bin", body)
    base = settled_rss(pid)
    socks = stalled_readers(cl, "/lim/big.bin", 8)
    cl.wait_for(lambda: metric(cl, "headwater_gateway_buffered_bytes") > BUDGET // 2, 10.0,
                "stalled readers holding bytes")
    held = steady(lambda: metric(cl, "headwater_gateway_buffered_bytes"), within=64 << 10)
    grown = settled_rss(pid) - base
    print(f"  8 stalled readers: rss +{grown} KiB, buffered {held} bytes")
    try:
        assert held <= BUDGET + (4 << 20), f"{held} bytes buffered over a {BUDGET} budget"
        assert grown < 40 * 1024, f"gateway grew by {grown} KiB for 8 stalled readers"
        normal_client_gets(cl, "/lim/big.bin", body)  # while they are still stalled
    finally:
        for s in socks:
            s.close()


@test
def past_the_budget_the_slowest_are_closed(cl):
    """A cached object is queued whole to each reader: 6 stalled readers of 6 MiB are past a
    16 MiB budget, so the oldest are closed (and counted); a normal client still gets it."""
    body = os.urandom(6 << 20)
    assert cl.put_retry("/lim/mid.ts", body).status == 201
    normal_client_gets(cl, "/lim/mid.ts", body)  # now cached
    before = metric(cl, "headwater_gateway_budget_closes_total")
    socks = stalled_readers(cl, "/lim/mid.ts", 6)
    try:
        cl.wait_for(lambda: metric(cl, "headwater_gateway_budget_closes_total") > before, 10.0,
                    "budget closes counted")
        normal_client_gets(cl, "/lim/mid.ts", body)
        held = metric(cl, "headwater_gateway_buffered_bytes")
        assert held <= BUDGET + len(body), f"{held} bytes still buffered"
        closes = metric(cl, "headwater_gateway_budget_closes_total") - before
        print(f"  6 stalled readers of 6 MiB: {closes} closed over the budget, buffered {held}")
        assert closed_socks(socks) >= closes >= 1
    finally:
        for s in socks:
            s.close()
    assert metric(cl, "headwater_gateway_buffered_bytes") < (1 << 20) or cl.wait_for(
        lambda: metric(cl, "headwater_gateway_buffered_bytes") < (1 << 20), 10.0,
        "buffered bytes released after the readers left")


def make_pki(d):
    def sh(cmd):
        subprocess.run(cmd, cwd=d, shell=True, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
       "-subj /CN=hw-test-ca -keyout ca.key -out ca.pem")
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
       "-keyout server.key -out server.csr")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
       "-extfile san.ext -out server.pem")


def client_hello_only(port):
    """A TLS client that sends its ClientHello and then nothing: a stalled handshake."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s = socket.create_connection((HOST, port), timeout=10)
    s.sendall(out.read())
    return s


@test
def stalled_tls_handshakes_count_toward_the_budget(cl):
    """A separate gateway with HTTPS and the smallest budget (1 MiB): each handshake in progress
    counts 64 KiB, so 40 stalled ones are past it and the oldest are closed; a client that
    completes its handshake is served."""
    assert cl.put_retry("/lim/hello.ts", b"hello over tls").status == 201
    pki = tempfile.mkdtemp(prefix="hw-limits-pki-")
    port, admin, tport = free_ports(3)
    g = None
    socks = []
    try:
        make_pki(pki)
        g = Proc("gateway-tls", [cl.gateway_bin, "--listen", f"{HOST}:{port}",
                                 "--admin-listen", f"{HOST}:{admin}", "--threads", "1",
                                 "--nodes", cl.nodes[1].address, "--access-log=false",
                                 "--max-buffered-bytes", os.environ.get("HW_LIMITS_BUDGET", "1M"),
                                 "--tls-listen", f"{HOST}:{tport}",
                                 "--tls-cert", os.path.join(pki, "server.pem"),
                                 "--tls-key", os.path.join(pki, "server.key")],
                 os.path.join(cl.tmp, "gateway-tls.log"), dict(cl.gateway.env))
        g.start()
        cl.wait_for(lambda: request(admin, "GET", "/readyz", timeout=2).status == 200, 30.0,
                    "gateway-tls ready")

        def closes():
            text = request(admin, "GET", "/metrics").body.decode()
            return int([ln for ln in text.splitlines()
                        if ln.startswith("headwater_gateway_budget_closes_total ")][0].split()[1])
        for _ in range(40):
            socks.append(client_hello_only(tport))
        cl.wait_for(lambda: closes() >= 1, 5.0, "stalled handshakes closed over the budget")
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
        with ctx.wrap_socket(socket.create_connection((HOST, tport), timeout=10),
                             server_hostname="localhost") as t:
            t.sendall(b"GET /lim/hello.ts HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            got = b""
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                got += chunk
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"hello over tls"), got[:200]
        n = closes()
        print(f"  40 stalled TLS handshakes: {n} closed over a 1 MiB budget")
        assert n <= 40, n
    finally:
        for s in socks:
            s.close()
        if g is not None:
            g.signal(signal.SIGTERM)
            assert g.wait(10.0) == 0, "gateway-tls did not exit cleanly"
        shutil.rmtree(pki, ignore_errors=True)


if __name__ == "__main__":
    os.environ["ASAN_OPTIONS"] = "detect_leaks=1:quarantine_size_mb=0"
    hwtest.main(TESTS, fixture=lambda: Cluster(nodes=3, name="hw-limits",
                                               gateway_args=GW_ARGS))
