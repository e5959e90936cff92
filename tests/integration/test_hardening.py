#!/usr/bin/env python3
"""Issue 8 §5, hardened HTTP part 2, over a real cluster (3 nodes + a gateway with a keys file,
plus a second gateway without one): response splitting (control bytes in Content-Type /
Cache-Control refused at PUT, never printed from stored metadata), listings filtered by what the
caller may read (private prefixes, cursors), key prefixes matching whole path segments, write keys
refused in ?token=, cross-origin writes refused unless --cors-write-origins allows them, log lines
that cannot be forged (gateway and node), the admin listener's own connection limit and header
timeout, ttl_seconds / X-Headwater-TTL bounds."""
import json
import os
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import HOST, Cluster, Proc, RawConn, free_ports, request  # noqa: E402
from nodeproto import T, NodeClient, crc32c, one  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)

LIVE = "live-4a5b6c7d8e9f0a1b"
HW = "hw-0f1e2d3c4b5a6978"
SREAD = "sread-1122334455667788"
SWRITE = "swrite-8877665544332211"
ADMIN = "adm-aabbccddeeff0011"
KEYS = f"""write /live {LIVE}
write /hw/ {HW}
write /s/ {HW}
write /sz {HW}
private /secret/
read /secret/ {SREAD}
write /secret/ {SWRITE}
admin / {ADMIN}
"""
WRITER = "https://encoder.example"
EVIL = "https://evil.example"
HEADER_MS = 800


class HardCluster(Cluster):
    def __init__(self):
        import tempfile
        self.kdir = tempfile.mkdtemp(prefix="hw-hard-keys-")
        self.keys_path = os.path.join(self.kdir, "keys")
        with open(self.keys_path, "w") as f:
            f.write(KEYS)
        super().__init__(nodes=3, name="hw-hard", gateway_args=[
            "--keys", self.keys_path, "--admin-max-connections", "2",
            "--header-timeout-ms", str(HEADER_MS)])
        self.extra = []
        self.open_port = self.open_admin = None

    def start(self, ready_timeout=60.0):
        super().start(ready_timeout)
        # A second gateway without a keys file: CORS "*" (default), one write origin.
        self.open_port, self.open_admin = free_ports(2)
        g = Proc("gateway-open", [self.gateway_bin, "--listen", f"{HOST}:{self.open_port}",
                                  "--admin-listen", f"{HOST}:{self.open_admin}", "--threads", "1",
                                  "--nodes", self.nodes[1].address,
                                  "--cors-write-origins", WRITER],
                 os.path.join(self.tmp, "gateway-open.log"), self.gateway.env)
        self.extra.append(g)
        g.start()
        self.wait_for(lambda: request(self.open_admin, "GET", "/readyz", timeout=2).status == 200,
                      30.0, "open gateway ready")

    def procs(self):
        return super().procs() + self.extra

    def cleanup(self, keep=False):
        super().cleanup(keep)
        os.system(f"rm -rf '{self.kdir}'")

    def log(self, proc=None):
        with open((proc or self.gateway).log_path, "r", encoding="utf-8",
                  errors="replace") as f:
            return f.read()


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def assert_error(r, status, code):
    assert r.status == status, f"want {status}: {r}"
    assert r.json().get("error") == code, r


def raw_exchange(port, data, timeout=10.0):
    """Send raw bytes, return the raw head (bytes up to the blank line) and the body bytes."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest
    finally:
        s.close()


# ---- response splitting ---------------------------------------------------------------------
@test
def put_refuses_control_bytes_in_stored_headers(cl):
    bad = [("Content-Type", b"text/html\x0bx"), ("Content-Type", b"text/plain\x01"),
           ("Cache-Control", b"max-age=5\x1b[1m"), ("Cache-Control", b"no-cache\x7f"),
           ("Content-Type", b"text/html\rSet-Cookie: a=b"), ("Cache-Control", b"\rX: y")]
    for i, (name, value) in enumerate(bad):
        key = f"/hw/split/{i}.ts"
        head, body = raw_exchange(cl.gw_port, b"PUT " + key.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                                  b"Authorization: Bearer " + HW.encode() + b"\r\n" +
                                  name.encode() + b": " + value + b"\r\n"
                                  b"Content-Length: 2\r\nConnection: close\r\n\r\nab")
        status = int(head.split(b" ", 2)[1])
        assert status == 400, f"{name}: {value!r}: {head!r}"
        doc = json.loads(body.decode())
        # refused by the framer ("malformed HTTP request") or by the PUT handler (committed)
        assert doc.get("committed", False) is False, doc
        assert cl.get(key).status == 404, f"{name}: {value!r} was stored"
    # obs-fold: whatever the framer makes of it, no injected header line comes back
    head, _ = raw_exchange(cl.gw_port, b"PUT /hw/split/fold.ts HTTP/1.1\r\nHost: x\r\n"
                           b"Authorization: Bearer " + HW.encode() + b"\r\n"
                           b"Content-Type: text/html\r\n Set-Cookie: a=b\r\n"
                           b"Content-Length: 2\r\nConnection: close\r\n\r\nab")
    if head.startswith(b"HTTP/1.1 201"):
        head, _ = raw_exchange(cl.gw_port, b"GET /hw/split/fold.ts HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
        assert b"\r\nset-cookie" not in head.lower(), head
    # HTAB is a legal field-value byte
    r = cl.put("/hw/split/tab.ts", b"ok", headers={**auth(HW), "Content-Type": "text/plain;\tq=1"})
    assert r.status == 201, r


@test
def stored_metadata_with_crlf_is_refused_by_the_nodes(cl):
    """Metadata with CR/LF sent to the nodes some other way (here: a COMMIT straight to the nodes,
    with the cluster secret) is refused there too, so nothing can store it; the gateway's own
    replacement of unprintable stored values is covered by the objresp unit tests."""
    key, data = "/hw/stored/evil.ts", b"evil-bytes"
    up = os.urandom(16)
    for nid in cl.nodes:
        c = NodeClient(cl.nodes[nid].address)
        c.put(key, data, upload=up)
        c.close()
    answers = []
    for nid in cl.nodes:  # the shard leader checks it; the others check it too
        c = NodeClient(cl.nodes[nid].address)
        c.send(T["COMMIT"], 16, [(1, key), (2, up), (3, len(data)), (4, crc32c(data)),
                                 (5, "text/html\r\nSet-Cookie: injected=1"), (6, [1, 2, 3]),
                                 (8, "max-age=1\r\nX-Injected: 2")])
        answers.append(one(c.recv()[0], 1))
        c.close()
    assert all(a == T["ERROR"] for a in answers), answers
    head, _ = raw_exchange(cl.gw_port, f"GET {key} HTTP/1.1\r\nHost: x\r\n"
                           "Connection: close\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 404"), head
    assert b"injected" not in head.lower(), head


# ---- listings -------------------------------------------------------------------------------
def list_all(cl, path, headers=None, limit=None):
    """Follow next_cursor to the end; -> (keys, cursors)."""
    keys, cursors, cursor = [], [], None
    for _ in range(50):
        q = path + (f"&limit={limit}" if limit else "") + (f"&cursor={cursor}" if cursor else "")
        r = cl.http("GET", q, headers=headers)
        assert r.status == 200, r
        doc = r.json()
        keys += [o["key"] for o in doc["objects"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            return keys, cursors
        cursors.append(cursor)
    raise AssertionError("listing never ended")


@test
def listings_show_only_what_the_caller_may_read(cl):
    for k, key in (("/secret/a.ts", SWRITE), ("/secret/b.ts", SWRITE), ("/secret/c/d.ts", SWRITE),
                   ("/s/pub/a.ts", HW), ("/sz/x.ts", HW)):
        assert cl.put(k, b"x", headers=auth(key)).status == 201, k
    # a private prefix itself: 401 without a key, 403 with one that cannot read it
    for path in ("/secret?list", "/secret/?list", "/secret/c/?list"):
        assert_error(cl.http("GET", path), 401, "unauthorized")
        assert_error(cl.http("GET", path, headers=auth(HW)), 403, "forbidden")
    keys, _ = list_all(cl, "/secret/?list", headers=auth(SREAD))
    assert keys == ["/secret/a.ts", "/secret/b.ts", "/secret/c/d.ts"], keys
    # a wider prefix that covers the private one: the private entries are left out
    r = cl.http("GET", "/s?list")
    assert r.status == 200 and b"secret" not in r.body, r
    assert [o["key"] for o in r.json()["objects"]] == ["/s/pub/a.ts", "/sz/x.ts"], r
    r = cl.http("GET", "/se?list&limit=1000")
    assert r.status == 200 and r.json()["objects"] == [] and r.json()["next_cursor"] is None, r
    # paging one by one: no cursor names a hidden key, nothing hidden is skipped over wrongly
    keys, cursors = list_all(cl, "/s?list", limit=1)
    assert keys == ["/s/pub/a.ts", "/sz/x.ts"], keys
    assert all("secret" not in c for c in cursors), cursors
    # a longer run of hidden entries than one page, paged one by one
    for i in range(25):
        assert cl.put(f"/secret/run/k{i:02d}.ts", b"r", headers=auth(SWRITE)).status == 201
    keys, cursors = list_all(cl, "/s?list", limit=1)
    assert keys == ["/s/pub/a.ts", "/sz/x.ts"], keys
    assert all("secret" not in c for c in cursors), cursors
    r = cl.http("GET", "/se?list&limit=1")
    assert r.status == 200 and r.json() == {"prefix": "/se", "objects": [], "next_cursor": None}, r
    # a cursor pointing into the private prefix reveals nothing either
    r = cl.http("GET", "/s?list&cursor=/secret/a.ts")
    assert r.status == 200 and b"secret/" not in r.body.replace(b'"prefix":"/s"', b""), r
    # with a read key for it, the caller sees everything
    keys, _ = list_all(cl, "/s?list", headers=auth(SREAD), limit=2)
    assert keys == ["/s/pub/a.ts", "/secret/a.ts", "/secret/b.ts", "/secret/c/d.ts"] + \
        [f"/secret/run/k{i:02d}.ts" for i in range(25)] + ["/sz/x.ts"], keys


# ---- access keys ----------------------------------------------------------------------------
@test
def key_prefixes_match_whole_path_segments(cl):
    for key in ("/livex/a.ts", "/live2/a.ts", "/liveadmin/a.ts"):
        r = cl.put(key, b"x", headers=auth(LIVE))
        assert_error(r, 403, "forbidden")
        assert r.json()["committed"] is False, r
        assert cl.get(key).status == 404, f"{key} was stored"
    assert cl.put("/livex/a.ts", b"x", headers=auth(ADMIN)).status == 403
    assert cl.put("/live/a.ts", b"x", headers=auth(LIVE)).status == 201
    assert cl.put("/live/deep/er/a.ts", b"x", headers=auth(LIVE)).status == 201
    # deletes too: put one with another key, a /live key cannot remove it
    assert cl.put("/s/livex.ts", b"x", headers=auth(HW)).status == 201
    assert_error(cl.http("DELETE", "/s/livex.ts", headers=auth(LIVE)), 403, "forbidden")
    assert_error(cl.http("DELETE", "/livex/a.ts", headers=auth(LIVE)), 403, "forbidden")
    assert cl.get("/s/livex.ts").status == 200
    assert cl.http("DELETE", "/live/a.ts", headers=auth(LIVE)).status == 204


@test
def write_keys_are_refused_in_the_query(cl):
    r = cl.http("PUT", f"/live/q.ts?token={LIVE}", b"x")
    assert_error(r, 403, "forbidden")
    assert r.json()["committed"] is False and "Bearer" in r.json()["message"], r
    assert cl.get("/live/q.ts").status == 404
    assert cl.put("/live/q.ts", b"x", headers=auth(LIVE)).status == 201
    assert_error(cl.http("DELETE", f"/live/q.ts?token={LIVE}"), 403, "forbidden")
    assert cl.get("/live/q.ts").status == 200
    # a write key for the private prefix cannot read through the query either; a read key can
    assert cl.put("/secret/q.ts", b"sq", headers=auth(SWRITE)).status == 201
    assert_error(cl.http("GET", f"/secret/q.ts?token={SWRITE}"), 403, "forbidden")
    assert cl.http("GET", f"/secret/q.ts?token={SREAD}").body == b"sq"
    assert cl.get("/secret/q.ts", headers=auth(SWRITE)).body == b"sq"
    assert SWRITE not in cl.log() and LIVE not in cl.log(), "a key appears in the gateway log"


# ---- CORS -----------------------------------------------------------------------------------
@test
def cross_origin_writes_only_from_write_origins(cl):
    port = cl.open_port
    # a "simple" cross-origin POST (no preflight) from a page of any other origin: refused
    r = request(port, "POST", "/c/a.ts", b"evil", {"Origin": EVIL, "Content-Type": "text/plain"})
    assert_error(r, 403, "forbidden")
    assert r.json()["committed"] is False, r
    assert request(port, "GET", "/c/a.ts").status == 404, "the refused write stored nothing"
    assert request(port, "PUT", "/c/a.ts", b"ok").status == 201, "no Origin: not a browser"
    r = request(port, "DELETE", "/c/a.ts", headers={"Origin": EVIL})
    assert_error(r, 403, "forbidden")
    assert request(port, "GET", "/c/a.ts").body == b"ok", "the refused delete deleted"
    r = request(port, "OPTIONS", "/c/a.ts", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "DELETE"})
    assert r.status == 204 and r.header("access-control-allow-origin") == "*", r
    assert r.header("access-control-allow-methods") == "GET, HEAD, OPTIONS", r
    # reads cross-origin stay open
    r = request(port, "GET", "/c/a.ts", headers={"Origin": EVIL})
    assert r.status == 200 and r.header("access-control-allow-origin") == "*", r
    # the configured write origin may write and delete
    r = request(port, "OPTIONS", "/c/a.ts", headers={
        "Origin": WRITER, "Access-Control-Request-Method": "DELETE"})
    assert "DELETE" in r.header("access-control-allow-methods"), r
    assert request(port, "PUT", "/c/b.ts", b"w", {"Origin": WRITER}).status == 201
    assert request(port, "DELETE", "/c/b.ts", headers={"Origin": WRITER}).status == 204


# ---- logs -----------------------------------------------------------------------------------
def lines_with(text, needle):
    return [ln for ln in text.splitlines() if needle in ln]


@test
def log_lines_cannot_be_forged(cl):
    # control bytes in a key, percent-encoded or raw, are refused before anything is stored
    r = cl.put("/hw/log/a%0d%0a2026-01-01T00:00:00.000Z%20E%20gw%20FORGEDGW.ts", b"x",
               headers=auth(HW))
    assert r.status == 400, r
    r = cl.put("/hw/log/b%09FORGEDGW.ts", b"x", headers=auth(HW))
    assert r.status == 400, r
    raw = RawConn(cl.gw_port)
    raw.send(b"PUT /hw/log/c\tFORGEDGW.ts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
             HW.encode() + b"\r\nContent-Length: 1\r\n\r\nx")
    assert raw.read_response().status == 400
    raw.close()
    cl.wait_for(lambda: lines_with(cl.log(), "FORGEDGW"), 5.0, "the refusal logged")
    text = cl.log()
    forged = lines_with(text, "FORGEDGW")
    assert all(not ln.startswith("2026-01-01T00:00:00.000Z") for ln in forged), forged
    assert any("%250d%250a2026-01-01" in ln for ln in forged), forged  # the key, escaped
    assert all("msg=" in ln for ln in forged), f"a line without msg=: {forged}"
    assert not any('msg="stored"' in ln for ln in forged), forged
    for node in cl.nodes.values():
        assert not lines_with(cl.log(node), "FORGEDGW"), "a refused key reached a node"
    # node side: a FINISH whose checksum does not match logs the key
    node = cl.nodes[1]
    c = NodeClient(node.address)
    up, key = os.urandom(16), "/hw/n\r\n2026-01-01T00:00:00.000Z E node1 FORGEDNODE"
    c.send(T["STAGE"], 12, [(1, up), (2, key), (3, 0)], b"abc")
    assert one(c.recv()[0], 1) == T["STAGE_OK"]
    c.send(T["FINISH"], 14, [(1, up), (2, key), (3, 3), (4, 12345)])
    assert one(c.recv()[0], 1) == T["ERROR"]
    c.close()
    cl.wait_for(lambda: lines_with(cl.log(node), "FORGEDNODE"), 5.0, "the mismatch logged")
    forged = lines_with(cl.log(node), "FORGEDNODE")
    assert len(forged) == 1 and "checksum mismatch" in forged[0], forged
    assert "\\x0d\\x0a" in forged[0], forged


# ---- admin listener -------------------------------------------------------------------------
@test
def admin_port_has_its_own_connection_limit_and_timeouts(cl):
    held = [RawConn(cl.admin_port) for _ in range(2)]
    for c in held:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
    extra = RawConn(cl.admin_port)
    r = extra.read_response()
    assert r.status == 503 and r.header("connection") == "close", r
    assert extra.closed_by_peer(5.0)
    extra.close()
    assert request(cl.gw_port, "GET", "/live/deep/er/a.ts").status == 200, "data port unaffected"
    held.pop().close()
    cl.wait_for(lambda: request(cl.admin_port, "GET", "/healthz", timeout=2).status == 200, 5.0,
                "a slot freed by a closed connection")
    held.pop().close()

    # a head that never completes is cut after --header-timeout-ms, as on the data port
    def slow_head():
        slow = RawConn(cl.admin_port)
        try:
            slow.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            r = slow.read_response()  # within RawConn's 10 s timeout, or it raises
            if r.status == 503:  # the closed connections' slots are not free yet
                return None
            assert r.status == 408, r
            assert slow.closed_by_peer(5.0)
            return r
        finally:
            slow.close()
    cl.wait_for(slow_head, 10.0, "a slow admin head answered 408")


# ---- TTL ------------------------------------------------------------------------------------
@test
def ttl_bounds(cl):
    bad_query = ["99999999999999999999", "9223372036854775807", "315360001", "-1", "-0", "1e3",
                 "0x10", "+5", "5.0", "", "%20", "1%00"]
    for v in bad_query:
        r = cl.put(f"/hw/ttl/q.ts?ttl_seconds={v}", b"x", headers=auth(HW))
        assert_error(r, 400, "bad_request")
        assert "ttl_seconds" in r.json()["message"] and r.json()["committed"] is False, r
    for v in ["99999999999999999999", "9223372036854775807", "315360001", "-5", "abc", "1 2"]:
        r = cl.put("/hw/ttl/h.ts", b"x", headers={**auth(HW), "X-Headwater-TTL": v})
        assert_error(r, 400, "bad_request")
        assert "X-Headwater-TTL" in r.json()["message"], r
    assert cl.get("/hw/ttl/q.ts").status == 404 and cl.get("/hw/ttl/h.ts").status == 404
    r = cl.put("/hw/ttl/max.ts?ttl_seconds=315360000", b"x", headers=auth(HW))
    assert r.status == 201, r
    g = cl.get("/hw/ttl/max.ts")
    assert g.status == 200 and g.header("expires") is not None, g
    # a node refuses a COMMIT whose TTL would overflow the expiry arithmetic (ms)
    key, data, up = "/hw/ttl/node.ts", b"n", os.urandom(16)
    for nid in cl.nodes:
        c = NodeClient(cl.nodes[nid].address)
        c.put(key, data, upload=up)
        c.close()
    for nid in cl.nodes:
        c = NodeClient(cl.nodes[nid].address)
        c.send(T["COMMIT"], 16, [(1, key), (2, up), (3, len(data)), (4, crc32c(data)),
                                 (6, [1, 2, 3]), (7, 1 << 62)])
        assert one(c.recv()[0], 1) == T["ERROR"], f"node {nid} took a TTL of 2^62 s"
        c.close()
    assert cl.get(key).status == 404


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=HardCluster)
