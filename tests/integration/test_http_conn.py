#!/usr/bin/env python3
"""Issue 3 connection layer over real sockets (3 nodes + a gateway with --threads 2): HTTPS with a
test CA made by the openssl command (curl PUT/GET, TLS 1.1 refused), access keys and scopes
(401/403, ?token=, private prefixes, admin endpoints, SIGHUP reload, keys never logged), limits
(431, 414, slowloris head -> 408, stalled body -> 408, idle close), CORS (listed origins echoed,
preflight), access log (on, and off with --access-log=false), pipelining in order with a small
--max-pipeline, back-pressure on a reader that pauses (plain and TLS), a client that never reads
cut after --send-timeout-ms, --max-connections answered 503. Short timeouts via flags."""
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import HOST, Cluster, Proc, RawConn, free_ports, request, sha256  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)

WRITE = "w-7f3c9a0b1c2d3e4f"
PWRITE = "pw-0a1b2c3d4e5f6a7b"
READ = "r-5e6f7a8b9c0d1e2f"
ADMIN = "adm-1234567890abcdef"
NEW = "new-feedfacecafebeef"
ORIGIN = "https://player.example"
KEYS = f"""# test keys
write /live/ {WRITE}
write /private/ {PWRITE}
read /private/ {READ}
private /private/
admin / {ADMIN}
"""
HEADER_MS, BODY_MS, IDLE_MS, SEND_MS = 800, 800, 1500, 2500


def sh(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, shell=True, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


class ConnCluster(Cluster):
    """A cluster whose gateway also serves HTTPS (test CA + server cert) and uses a keys file."""

    def __init__(self):
        import tempfile
        self.pki = tempfile.mkdtemp(prefix="hw-pki-")
        sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
           "-subj /CN=hw-test-ca -keyout ca.key -out ca.pem", self.pki)
        sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
           "-keyout server.key -out server.csr", self.pki)
        with open(os.path.join(self.pki, "san.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
           "-extfile san.ext -out server.pem", self.pki)
        self.keys_path = os.path.join(self.pki, "keys")
        with open(self.keys_path, "w") as f:
            f.write(KEYS)
        self.tls_port = free_ports(1)[0]
        super().__init__(nodes=3, name="hw-conn", gateway_args=[
            "--threads", "2",
            "--tls-listen", f"{HOST}:{self.tls_port}",
            "--tls-cert", os.path.join(self.pki, "server.pem"),
            "--tls-key", os.path.join(self.pki, "server.key"),
            "--keys", self.keys_path,
            "--max-header-size", "4K", "--max-url-length", "1K",
            "--header-timeout-ms", str(HEADER_MS), "--body-timeout-ms", str(BODY_MS),
            "--idle-timeout-ms", str(IDLE_MS), "--max-pipeline", "4",
            "--send-timeout-ms", str(SEND_MS),
            "--cors-origins", f"{ORIGIN},http://localhost:3000", "--cors-write-origins", ORIGIN])
        self.extra = []

    def procs(self):
        return super().procs() + self.extra

    def cleanup(self, keep=False):
        super().cleanup(keep)
        subprocess.run(["rm", "-rf", self.pki])

    def log(self):
        with open(self.gateway.log_path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def curl(cl, *args):
    p = subprocess.run(["curl", "-sS", "--cacert", os.path.join(cl.pki, "ca.pem"),
                        "--max-time", "20"] + list(args), capture_output=True, timeout=30)
    return p


def https(cl, path):
    return f"https://localhost:{cl.tls_port}{path}"


def tls_socket(cl):
    ctx = ssl.create_default_context(cafile=os.path.join(cl.pki, "ca.pem"))
    raw = socket.create_connection((HOST, cl.tls_port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def assert_error(r, status, code):
    assert r.status == status, f"want {status}: {r}"
    assert r.json().get("error") == code, r


# ---- TLS ----------------------------------------------------------------------------------
@test
def tls_put_get_with_curl(cl):
    body = os.urandom(300_000)
    path = os.path.join(cl.tmp, "seg.bin")
    with open(path, "wb") as f:
        f.write(body)
    p = curl(cl, "-X", "PUT", "--data-binary", f"@{path}", "-H", f"Authorization: Bearer {WRITE}",
             "-o", "/dev/null", "-w", "%{http_code}", https(cl, "/live/tls/seg_1.m4s"))
    assert p.returncode == 0 and p.stdout == b"201", (p.returncode, p.stdout, p.stderr)
    p = curl(cl, https(cl, "/live/tls/seg_1.m4s"))
    assert p.returncode == 0, p.stderr
    assert sha256(p.stdout) == sha256(body), "HTTPS GET returned other bytes"
    # the same object over plain HTTP
    assert sha256(cl.get("/live/tls/seg_1.m4s").body) == sha256(body)
    # keep-alive over TLS: two requests, one connection
    p = curl(cl, "-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ",
             https(cl, "/live/tls/seg_1.m4s"), https(cl, "/live/tls/seg_1.m4s"))
    assert p.returncode == 0 and p.stdout.split() == [b"1", b"0"], p.stdout


@test
def tls_1_1_refused(cl):
    p = curl(cl, "--tls-max", "1.1", "-o", "/dev/null", https(cl, "/live/tls/seg_1.m4s"))
    assert p.returncode != 0, "a TLS 1.1 handshake succeeded"
    p = curl(cl, "--tlsv1.2", "--tls-max", "1.2", "-o", "/dev/null", "-w", "%{http_code}",
             https(cl, "/live/tls/seg_1.m4s"))
    assert p.returncode == 0 and p.stdout == b"200", (p.stdout, p.stderr)
    # plain HTTP sent to the TLS port is not answered as HTTP
    c = RawConn(cl.tls_port)
    c.send(b"GET /live/tls/seg_1.m4s HTTP/1.1\r\n\r\n")
    assert c.closed_by_peer(5.0) or not c.buf.startswith(b"HTTP/"), c.buf
    c.close()
    assert cl.get("/live/tls/seg_1.m4s").status == 200, "gateway unaffected"


# ---- keys ---------------------------------------------------------------------------------
@test
def keys_and_scopes(cl):
    r = cl.put("/live/k/a.ts", b"x")
    assert_error(r, 401, "unauthorized")
    assert r.header("www-authenticate") == "Bearer", r
    assert_error(cl.put("/live/k/a.ts", b"x", headers=auth("nope")), 403, "forbidden")
    assert_error(cl.put("/live/k/a.ts", b"x", headers=auth(READ)), 403, "forbidden")
    assert_error(cl.put("/other/a.ts", b"x", headers=auth(WRITE)), 403, "forbidden")
    assert cl.put("/live/k/a.ts", b"abc", headers=auth(WRITE)).status == 201
    # a write key is refused in ?token= (URLs end up in logs and caches), even for a read
    r = cl.http("PUT", f"/live/k/b.ts?token={WRITE}", b"def")
    assert_error(r, 403, "forbidden")
    assert "Authorization: Bearer" in r.json()["message"], r
    assert r.json()["committed"] is False, r
    assert cl.get("/live/k/b.ts").status == 404, "a refused write stored nothing"
    assert cl.put("/live/k/b.ts", b"def", headers=auth(WRITE)).status == 201
    assert cl.get("/live/k/a.ts").body == b"abc", "reads are open outside private prefixes"
    assert_error(cl.http("DELETE", "/live/k/b.ts"), 401, "unauthorized")
    assert cl.http("DELETE", "/live/k/b.ts", headers=auth(WRITE)).status == 204
    # private prefix: reads need a read or write key for it
    assert cl.put("/private/p/x.ts", b"secret", headers=auth(PWRITE)).status == 201
    assert_error(cl.get("/private/p/x.ts"), 401, "unauthorized")
    assert_error(cl.get("/private/p/x.ts", headers=auth(WRITE)), 403, "forbidden")
    assert cl.get("/private/p/x.ts", headers=auth(READ)).body == b"secret"
    assert_error(cl.get(f"/private/p/x.ts?token={PWRITE}"), 403, "forbidden")
    assert cl.get(f"/private/p/x.ts?token={READ}").body == b"secret", "read keys work in ?token="
    assert cl.http("HEAD", "/private/p/x.ts", headers=auth(READ)).status == 200
    assert_error(cl.put("/private/p/y.ts", b"x", headers=auth(READ)), 403, "forbidden")


@test
def admin_endpoints_need_an_admin_key(cl):
    assert cl.admin("GET", "/healthz").status == 200
    assert cl.admin("GET", "/readyz").status == 200
    for path in ("/status", "/metrics"):
        r = request(cl.admin_port, "GET", path)
        assert_error(r, 401, "unauthorized")
        assert_error(request(cl.admin_port, "GET", path, headers=auth(WRITE)), 403, "forbidden")
        assert request(cl.admin_port, "GET", path, headers=auth(ADMIN)).status == 200
    m = request(cl.admin_port, "GET", f"/metrics?token={ADMIN}")
    text = m.body.decode()
    assert m.header("content-type").startswith("text/plain"), m
    for want in ('headwater_gateway_requests_total{method="PUT",status="2xx"}',
                 'headwater_gateway_requests_total{method="PUT",status="4xx"}',
                 "headwater_gateway_open_connections", "headwater_gateway_sent_bytes_total"):
        assert want in text, f"{want} missing from /metrics:\n{text}"


@test(needs=["keys_and_scopes"])
def sighup_reloads_keys(cl):
    assert_error(cl.put("/live/k/new.ts", b"n", headers=auth(NEW)), 403, "forbidden")
    with open(cl.keys_path, "w") as f:
        f.write(KEYS + f"write /live/ {NEW}\n")
    cl.gateway.signal(signal.SIGHUP)
    cl.wait_for(lambda: cl.put("/live/k/new.ts", b"n", headers=auth(NEW)).status == 201, 10.0,
                "the reloaded key works")
    # a broken file keeps the keys we have
    with open(cl.keys_path, "w") as f:
        f.write("write /live/\n")
    cl.gateway.signal(signal.SIGHUP)
    cl.wait_for(lambda: "keys reload failed" in cl.log(), 10.0, "reload error logged")
    assert cl.put("/live/k/new2.ts", b"n", headers=auth(NEW)).status == 201
    assert cl.put("/live/k/new3.ts", b"n", headers=auth(WRITE)).status == 201
    with open(cl.keys_path, "w") as f:
        f.write(KEYS)


# ---- limits -------------------------------------------------------------------------------
@test
def nosniff_on_every_answer_of_the_data_and_tls_ports(cl):
    assert cl.put("/live/ns/a.ts", b"x" * 10, headers=auth(WRITE)).status == 201
    answers = [cl.get("/live/ns/a.ts"), cl.http("HEAD", "/live/ns/a.ts"),
               cl.get("/live/ns/a.ts", headers={"Range": "bytes=2-3"}),
               cl.get("/live/ns/none.ts"), cl.put("/live/ns/b.ts", b"x"),
               cl.http("OPTIONS", "/live/ns/a.ts"), cl.http("PATCH", "/live/ns/a.ts")]
    for raw in (b"HELLO THERE\r\n\r\n",
                b"GET /a HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"):
        c = RawConn(cl.gw_port)
        c.send(raw)
        answers.append(c.read_response())
        c.close()
    c = RawConn(cl.tls_port)
    c.sock = tls_socket(cl)
    c.send(b"GET /live/ns/a.ts HTTP/1.1\r\nHost: x\r\n\r\nGET /live/ns/none.ts HTTP/1.1\r\n\r\n")
    answers += [c.read_response(), c.read_response()]
    c.close()
    assert [r.status for r in answers] == [200, 200, 206, 404, 401, 204, 405, 400, 431, 200, 404]
    for r in answers:
        assert r.header("x-content-type-options") == "nosniff", r


@test
def request_heads_split_over_many_reads(cl):
    """Header values are slices of the read buffer: a head that arrives in many small reads
    (and moves as the buffer fills) must still give the handler the right values."""
    body = bytes(range(256)) * 64
    put = (b"PUT /live/split/a.ts HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 2500 +
           b"\r\nContent-Type: video/x-split\r\nCache-Control: max-age=7\r\n" +
           b"Authorization: Bearer " + WRITE.encode() +
           b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    get = (b"GET /live/split/a.ts HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"q" * 2500 +
           b"\r\nRange: bytes=1000-1099\r\n\r\n")
    for port, tls in ((cl.gw_port, False), (cl.tls_port, True)):
        c = RawConn(port)
        if tls:
            c.sock = tls_socket(cl)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = put + get + get
        for i in range(0, 3000, 97):  # the heads in small reads (pauses shape the packets)
            c.send(wire[i:min(i + 97, 3000)])
            time.sleep(0.002)
        c.send(wire[3000:])
        r = c.read_response()
        assert r.status in (201, 204), (tls, r)  # the TLS round overwrites
        for _ in range(2):
            r = c.read_response()
            assert r.status == 206 and r.body == body[1000:1100], (tls, r)
            assert r.header("content-type") == "video/x-split", r
            assert r.header("cache-control") == "max-age=7", r
        c.close()


@test
def header_and_url_limits(cl):
    c = RawConn(cl.gw_port)
    c.send(b"GET /live/k/a.ts HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    r = c.read_response()
    assert r.status == 431 and r.header("connection") == "close", r
    assert c.closed_by_peer(5.0)
    c.close()
    c = RawConn(cl.gw_port)
    c.send(b"GET /live/" + b"u" * 1100 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response()
    assert r.status == 414, r
    c.close()
    c = RawConn(cl.gw_port)  # a target longer than the whole head limit
    c.send(b"GET /live/" + b"u" * 6000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.read_response().status == 414
    c.close()
    assert cl.get("/live/k/a.ts").status == 200


@test
def slowloris_head_gets_408(cl):
    c = RawConn(cl.gw_port)
    t0 = time.monotonic()
    c.send(b"GET /live/k/a.ts HTTP/1.1\r\nHost: x\r\n")
    status = None
    try:
        while time.monotonic() - t0 < 5.0:
            c.send(b"X-Drip: 1\r\n")
            c.sock.settimeout(0.15)
            try:
                data = c.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            c.buf += data
            c.sock.settimeout(5.0)
            status = c.read_response().status
            break
    except (BrokenPipeError, ConnectionResetError):
        pass
    took = time.monotonic() - t0
    assert status == 408, f"dribbling client got {status} after {took:.1f}s"
    assert HEADER_MS / 1000 - 0.1 <= took <= HEADER_MS / 1000 + 1.0, f"408 after {took:.2f}s"
    c.close()


@test
def stalled_body_gets_408(cl):
    c = RawConn(cl.gw_port)
    c.send(b"PUT /live/k/stall.ts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           WRITE.encode() + b"\r\nContent-Length: 1000\r\n\r\n" + b"z" * 100)
    t0 = time.monotonic()
    time.sleep(0.3)
    c.send(b"z" * 100)  # still moving: the timeout is per read, not total
    r = c.read_response()
    took = time.monotonic() - t0
    assert r.status == 408 and r.header("connection") == "close", r
    assert BODY_MS / 1000 + 0.2 <= took <= BODY_MS / 1000 + 1.5, f"408 after {took:.2f}s"
    assert r.json()["error"] == "timeout"
    c.close()
    assert cl.get("/live/k/stall.ts").status == 404, "a stalled upload stores nothing"


@test
def idle_keepalive_closes_silently(cl):
    c = RawConn(cl.gw_port)
    c.send(b"GET /live/k/a.ts HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.read_response().status == 200
    t0 = time.monotonic()
    assert c.closed_by_peer(IDLE_MS / 1000 + 2.0), "idle connection stayed open"
    took = time.monotonic() - t0
    assert took >= IDLE_MS / 1000 - 0.2, f"closed after {took:.2f}s"
    assert c.buf == b"", f"bytes before the close: {c.buf!r}"
    c.close()
    c = RawConn(cl.gw_port)  # a connection that never sends a byte: header timeout, silently
    assert c.closed_by_peer(HEADER_MS / 1000 + 2.0) and c.buf == b""
    c.close()


# ---- CORS ---------------------------------------------------------------------------------
@test
def cors_preflight_and_headers(cl):
    r = cl.http("OPTIONS", "/live/k/a.ts", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status == 204, r
    assert r.header("access-control-allow-origin") == ORIGIN, r
    assert "PUT" in r.header("access-control-allow-methods") and "GET" in r.header(
        "access-control-allow-methods"), r
    assert r.header("access-control-allow-headers") == "authorization, content-type", r
    assert int(r.header("access-control-max-age")) > 0, r
    assert r.header("content-length") is None, "no Content-Length on a 204"
    r = cl.get("/live/k/a.ts", headers={"Origin": ORIGIN})
    assert r.header("access-control-allow-origin") == ORIGIN, r
    assert r.header("vary") == "Origin", r
    expose = r.header("access-control-expose-headers")
    for h in ("Content-Length", "Content-Range", "ETag", "Last-Modified", "Accept-Ranges"):
        assert h in expose, r
    r = cl.get("/live/k/a.ts", headers={"Origin": "https://evil.example"})
    assert r.header("access-control-allow-origin") is None and r.header("vary") == "Origin", r
    r = cl.http("OPTIONS", "/live/k/a.ts", headers={"Origin": "https://evil.example",
                                                    "Access-Control-Request-Method": "GET"})
    assert r.status == 204 and r.header("access-control-allow-origin") is None, r
    assert r.header("allow") is not None, r


# ---- access log ---------------------------------------------------------------------------
@test
def access_log_lines_without_tokens(cl):
    cl.get(f"/live/k/a.ts?x=1&token={READ}&y=2")
    cl.get("/live/k/missing.ts")

    def logged():
        lines = [ln for ln in cl.log().splitlines() if "msg=access" in ln]
        return [ln for ln in lines if 'path="/live/k/a.ts?x=1&y=2"' in ln and "status=200" in ln]
    line = cl.wait_for(logged, 5.0, "access log line")[0]
    for field in ("method=GET", "bytes=3", "ms=", "cache="):
        assert field in line, line
    cl.wait_for(lambda: any('path="/live/k/missing.ts"' in ln and "status=404" in ln
                            for ln in cl.log().splitlines()), 5.0, "404 logged")
    text = cl.log()
    for k in (WRITE, PWRITE, READ, ADMIN, NEW):
        assert k not in text, "a key appears in the gateway log"


@test
def quiet_gateway_no_access_log_and_connection_limit(cl):
    """A second gateway: --access-log=false, --max-connections 3, CORS default "*"."""
    port, admin = free_ports(2)
    log = os.path.join(cl.tmp, "gateway-quiet.log")
    quiet = Proc("gateway-quiet", [cl.gateway_bin, "--listen", f"{HOST}:{port}",
                                   "--admin-listen", f"{HOST}:{admin}", "--threads", "1",
                                   "--nodes", cl.nodes[1].address, "--access-log=false",
                                   "--max-connections", "3"],
                 log, cl.gateway.env)
    cl.extra.append(quiet)
    quiet.start()
    cl.wait_for(lambda: request(admin, "GET", "/readyz", timeout=2).status == 200, 30.0,
                "quiet gateway ready")
    assert request(port, "GET", "/live/k/a.ts").status == 200
    assert request(port, "GET", "/live/k/a.ts").header("access-control-allow-origin") == "*"
    def open_conns():
        text = request(admin, "GET", "/metrics").body.decode()
        line = [ln for ln in text.splitlines()
                if ln.startswith("headwater_gateway_open_connections ")][0]
        return int(line.split()[1])
    cl.wait_for(lambda: open_conns() == 0, 5.0, "earlier connections closed")
    held = [RawConn(port) for _ in range(3)]
    for c in held:  # each is accepted and served
        c.send(b"GET /live/k/a.ts HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
    extra = RawConn(port)
    r = extra.read_response()
    assert r.status == 503 and r.header("connection") == "close", r
    assert r.header("retry-after") == "1", r
    assert extra.closed_by_peer(5.0)
    extra.close()
    held.pop().close()
    cl.wait_for(lambda: request(port, "GET", "/live/k/a.ts", timeout=2).status == 200, 5.0,
                "a slot freed by a closed connection")
    for c in held:
        c.close()
    quiet.signal(signal.SIGTERM)
    assert quiet.wait(10.0) == 0
    with open(log) as f:
        assert "msg=access" not in f.read(), "--access-log=false still logs requests"


# ---- pipelining and back-pressure ---------------------------------------------------------
@test
def pipelined_requests_answered_in_order(cl):
    for i in range(3):
        assert cl.put(f"/live/pipe/{i}.ts", str(i).encode() * (i + 1), headers=auth(WRITE)
                      ).status == 201
    reqs = b""
    want = []
    for n in range(40):
        i = n % 3
        if n % 5 == 4:
            reqs += f"HEAD /live/pipe/{i}.ts HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            want.append(("HEAD", b""))
        else:
            reqs += f"GET /live/pipe/{i}.ts HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            want.append(("GET", str(i).encode() * (i + 1)))
    reqs += b"GET /live/pipe/none.ts HTTP/1.1\r\nHost: x\r\n\r\n"
    want.append(("GET", None))
    for port, tls in ((cl.gw_port, False), (cl.tls_port, True)):
        c = RawConn(port)
        if tls:
            c.sock = tls_socket(cl)
        c.send(reqs)
        for n, (method, body) in enumerate(want):
            r = c.read_response(method)
            if body is None:
                assert r.status == 404, (n, r)
            else:
                assert r.status == 200 and r.body == body, (tls, n, r)
        c.close()


def paused_reader(cl, sock, size, sha):
    sock.sendall(b"GET /live/big/obj.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(10)
    data = bytearray(sock.recv(1024))
    assert data.startswith(b"HTTP/1.1 200"), bytes(data[:100])
    time.sleep(1.5)  # the client stops reading: the gateway must wait, not buffer it all
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    start = data.index(b"\r\n\r\n") + 4
    while len(data) - start < size:
        chunk = sock.recv(1 << 20)
        assert chunk, f"connection closed early at {len(data) - start} of {size}"
        data += chunk
    assert sha256(bytes(data[start:start + size])) == sha, "wrong bytes after the pause"


@test
def slow_reader_back_pressure_plain_and_tls(cl):
    size = 24 << 20
    body = os.urandom(size)
    assert cl.put("/live/big/obj.bin", body, headers=auth(WRITE), timeout=120).status == 201
    sha = sha256(body)
    s = socket.create_connection((HOST, cl.gw_port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    paused_reader(cl, s, size, sha)
    s.close()
    paused_reader(cl, tls_socket(cl), size, sha)


def metric(cl, name):
    text = request(cl.admin_port, "GET", "/metrics", headers=auth(ADMIN)).body.decode()
    return int([ln for ln in text.splitlines() if ln.startswith(name + " ")][0].split()[1])


@test
def cached_answers_pipelined_to_a_paused_reader_in_order(cl):
    """Pipelined GETs, ranges and HEADs of cached segments to a client that pauses with a small
    receive buffer (the socket fills and the gateway must wait): every answer arrives whole and
    in order."""
    big, mid, small = os.urandom((1 << 20) + 7), os.urandom(300_000), b"tiny segment"
    objs = {"/live/sf/big.ts": big, "/live/sf/mid.ts": mid, "/live/sf/small.ts": small}
    for path, body in objs.items():
        assert cl.put(path, body, headers=auth(WRITE)).status == 201
        assert cl.get(path).body == body  # fills the cache
    plan = [("GET", "/live/sf/big.ts", None), ("GET", "/live/sf/small.ts", None),
            ("HEAD", "/live/sf/mid.ts", None), ("GET", "/live/sf/mid.ts", (1000, 250_999)),
            ("GET", "/live/sf/big.ts", (70_000, None)), ("GET", "/live/sf/mid.ts", None),
            ("GET", "/live/sf/small.ts", None)]
    reqs = b""
    for method, path, rng in plan:
        extra = ""
        if rng is not None:
            extra = f"Range: bytes={rng[0]}-{'' if rng[1] is None else rng[1]}\r\n"
        reqs += f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()
    c = RawConn(cl.gw_port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    c.send(reqs)
    time.sleep(1.0)  # the client does not read: the socket fills and the gateway must wait
    for n, (method, path, rng) in enumerate(plan):
        r = c.read_response(method)
        body = objs[path]
        if rng is None:
            want = b"" if method == "HEAD" else body
            assert r.status == 200 and r.body == want, (n, r.status, len(r.body))
            assert int(r.header("content-length")) == len(body), (n, r)
        else:
            end = len(body) - 1 if rng[1] is None else rng[1]
            assert r.status == 206 and r.body == body[rng[0]:end + 1], (n, r.status, len(r.body))
            assert r.header("content-range") == f"bytes {rng[0]}-{end}/{len(body)}", (n, r)
    c.close()


@test(needs=["cached_answers_pipelined_to_a_paused_reader_in_order"])
def an_answer_is_one_socket_write(cl):
    """Head and body leave in one write (a lone head packet ahead of a segment doubled the p99
    in the read benchmark): N answers on a keep-alive connection are N socket writes (+1 for the
    /metrics answer read in between)."""
    c = RawConn(cl.gw_port)
    c.send(b"GET /live/sf/small.ts HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.read_response().status == 200  # the connection is open and served
    before = metric(cl, "headwater_gateway_socket_writes_total")
    n = 0
    for method, path in (("GET", "/live/sf/big.ts"), ("GET", "/live/sf/small.ts"),
                         ("HEAD", "/live/sf/mid.ts"), ("GET", "/live/sf/nothing.ts")):
        c.send(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = c.read_response(method)
        assert r.status in (200, 404), r
        n += 1
    writes = metric(cl, "headwater_gateway_socket_writes_total") - before
    c.close()
    assert n <= writes <= n + 1, f"{n} answers took {writes} socket writes"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@test(needs=["slow_reader_back_pressure_plain_and_tls"])
def tls_readers_that_pause_do_not_make_it_buffer(cl):
    """Six TLS clients get a 24 MiB cached segment and read nothing: the gateway encrypts only a
    little ahead of each socket instead of a ciphertext copy of the object per client. Measured on
    a separate gateway with ASan's quarantine off (it would count every freed buffer as RSS)."""
    body = os.urandom(24 << 20)
    assert cl.put("/live/big/seg.ts", body, headers=auth(WRITE), timeout=120).status == 201
    port, admin, tport = free_ports(3)
    env = dict(cl.gateway.env)
    env["ASAN_OPTIONS"] = "detect_leaks=1:quarantine_size_mb=0"
    g = Proc("gateway-rss", [cl.gateway_bin, "--listen", f"{HOST}:{port}",
                             "--admin-listen", f"{HOST}:{admin}", "--threads", "1",
                             "--nodes", cl.nodes[1].address, "--access-log=false",
                             "--cache-size", "256M", "--tls-listen", f"{HOST}:{tport}",
                             "--tls-cert", os.path.join(cl.pki, "server.pem"),
                             "--tls-key", os.path.join(cl.pki, "server.key")],
             os.path.join(cl.tmp, "gateway-rss.log"), env)
    cl.extra.append(g)
    g.start()
    cl.wait_for(lambda: request(admin, "GET", "/readyz", timeout=2).status == 200, 30.0,
                "gateway-rss ready")
    for _ in range(2):  # fill its cache
        assert sha256(request(port, "GET", "/live/big/seg.ts", timeout=60).body) == sha256(body)
    time.sleep(0.5)
    before = rss_kib(g.proc.pid)
    ctx = ssl.create_default_context(cafile=os.path.join(cl.pki, "ca.pem"))
    socks = []
    for _ in range(6):
        s = ctx.wrap_socket(socket.create_connection((HOST, tport), timeout=10),
                            server_hostname="localhost")
        s.sendall(b"GET /live/big/seg.ts HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    time.sleep(1.0)
    grown = rss_kib(g.proc.pid) - before
    for s in socks:
        s.close()
    g.signal(signal.SIGTERM)
    assert g.wait(10.0) == 0
    assert grown < 32 * 1024, f"gateway RSS grew by {grown} KiB for 6 paused TLS readers"


@test(needs=["slow_reader_back_pressure_plain_and_tls"])
def client_that_never_reads_is_cut_after_send_timeout(cl):
    s = socket.create_connection((HOST, cl.gw_port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(b"GET /live/big/obj.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(SEND_MS / 1000 + 2.0)
    got, closed = 0, False
    s.settimeout(2.0)
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                closed = True
                break
            got += len(chunk)
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    assert closed and got < (24 << 20), f"closed={closed} got={got}"
    assert cl.get("/live/k/a.ts").status == 200


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=ConnCluster)
