#!/usr/bin/env python3
"""Issue 2 bad input and HTTP framing over real daemons (gateway with --max-object-size 1 MiB):
bad keys -> 400 and nothing stored; bodies over the limit -> 413 and nothing stored; garbage
instead of HTTP -> 400 and close, gateway unaffected; chunked PUT; keep-alive + pipelining;
headwaterctl status table and exit codes."""
import json
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import Cluster, RawConn, sha256  # noqa: E402

MAX = 1 << 20
TESTS = []
test = hwtest.collector(TESTS)


def assert_json_error(r, status, code):
    assert r.status == status, f"want {status} {code}: {r}"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {r}")
    assert body.get("error") == code, f"want error {code!r}: {body}"
    assert isinstance(body.get("message"), str), f"error without message: {body}"
    return body


def assert_absent(cl, key):
    r = cl.get_retry(key)
    assert r.status in (404, 400), f"{key} should not be stored: {r}"
    if r.status == 404:
        assert_json_error(r, 404, "not_found")


def raw_put_headers(path, length=None, chunked=False, extra=""):
    h = f"PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Type: video/mp2t\r\n{extra}"
    if chunked:
        h += "Transfer-Encoding: chunked\r\n"
    else:
        h += f"Content-Length: {length}\r\n"
    return (h + "\r\n").encode("latin-1")


def chunked(pieces, ext=False):
    out = b""
    for i, p in enumerate(pieces):
        out += f"{len(p):x}{';x=y' if ext and i % 2 else ''}\r\n".encode() + p + b"\r\n"
    return out + b"0\r\n\r\n"


# (request path, keys a lenient gateway might have stored it under)
BAD_KEYS = [
    ("/bad/a/../b.ts", ["/bad/b.ts", "/bad/a/b.ts"]),
    ("/bad/../escape.ts", ["/escape.ts", "/bad/escape.ts"]),
    ("/bad/c/..", ["/bad/c", "/bad"]),
    ("/bad/d/%2e%2e/e.ts", ["/bad/e.ts", "/bad/d/e.ts"]),
    ("/bad/d/%2E%2E/f.ts", ["/bad/f.ts", "/bad/d/f.ts"]),
    ("/bad/g/.%2e/h.ts", ["/bad/h.ts", "/bad/g/h.ts"]),
    ("/bad/g/%2e./i.ts", ["/bad/i.ts", "/bad/g/i.ts"]),
    ("/bad/%2e%2e%2fj.ts", ["/j.ts", "/bad/j.ts"]),
    ("/bad/k%00.ts", ["/bad/k", "/bad/k.ts"]),
    ("/bad/l/%00/m.ts", ["/bad/l/m.ts", "/bad/l/"]),
    ("/bad/" + "k" * 1020, ["/bad/" + "k" * 1019, "/bad/" + "k" * 1024]),
]


@test
def bad_keys_400_nothing_stored(cl):
    for path, shadows in BAD_KEYS:
        r = cl.put(path, b"0123456789", {"Content-Type": "video/mp2t"})
        assert_json_error(r, 400, "bad_key")
        for s in shadows:
            assert_absent(cl, s)
    # a literal NUL byte in the request line (http.client refuses to send one)
    c = RawConn(cl.gw_port)
    c.send(b"PUT /bad/n\x00ul.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
    r = c.read_response("PUT")
    c.close()
    assert r.status == 400, r
    for s in ["/bad/n", "/bad/nul.ts", "/bad/n\x00ul.ts".replace("\x00", "%00")]:
        assert_absent(cl, s)


@test
def near_bad_keys_are_fine(cl):
    ok = ["/bad-ish/a..b.ts", "/bad-ish/...ts", "/bad-ish/" + "k" * 1015]  # 1024 bytes
    assert len(ok[2]) == 1024
    for key in ok:
        body = os.urandom(100)
        r = cl.put(key, body)
        assert r.status == 201, f"PUT {key[:60]}: {r}"
        g = cl.get(key)
        assert g.status == 200 and g.body == body, f"GET {key[:60]}: {g}"


@test
def body_over_max_object_size_413(cl):
    key = "/big/over.ts"
    c = RawConn(cl.gw_port)
    c.send(raw_put_headers(key, MAX + 1))
    try:
        # The gateway may answer and close before the body is sent: both are fine.
        c.send(b"x" * (MAX + 1))
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = c.read_response("PUT")
    c.close()
    body = assert_json_error(r, 413, "too_large")
    assert body.get("committed") is False, body
    assert_absent(cl, key)


@test
def chunked_body_over_max_object_size_413(cl):
    key = "/big/over-chunked.ts"
    c = RawConn(cl.gw_port)
    c.send(raw_put_headers(key, chunked=True))
    try:
        for _ in range(20):  # 20 x 64 KiB + a bit = over 1 MiB
            c.send(chunked([b"y" * (64 << 10)])[:-5])
        c.send(chunked([b"z" * 100]))
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = c.read_response("PUT")
    c.close()
    assert_json_error(r, 413, "too_large")
    assert_absent(cl, key)


@test
def body_at_max_object_size_is_stored(cl):
    key = "/big/exact.ts"
    body = os.urandom(MAX)
    r = cl.put(key, body)
    assert r.status == 201, r
    g = cl.get(key)
    assert g.status == 200 and sha256(g.body) == sha256(body), g


@test
def put_without_length_is_empty_or_411(cl):
    c = RawConn(cl.gw_port)
    c.send(b"PUT /big/nolen.ts HTTP/1.1\r\nHost: t\r\n\r\n")
    r = c.read_response("PUT")
    c.close()
    # RFC 9112: a request without Content-Length/Transfer-Encoding has an empty body. Either
    # storing an empty object or refusing with 411 is acceptable; a hang is not.
    assert r.status in (201, 204, 411), r


def still_serving(cl):
    r = cl.get("/garbage/after.ts")
    assert r.status == 404, f"gateway after garbage: {r}"


@test
def garbage_instead_of_http_400_and_close(cl):
    blobs = [
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64),  # a TLS ClientHello
        b"GARBAGE GARBAGE GARBAGE\r\n\r\n",
        b"GET /x HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        os.urandom(512).replace(b"\n", b"") + b"\r\n\r\n",
    ]
    for blob in blobs:
        c = RawConn(cl.gw_port)
        c.send(blob)
        try:
            r = c.read_response()
        except ConnectionError:
            raise AssertionError(f"gateway closed without a 400 for {blob[:30]!r}")
        assert r.status == 400, f"{blob[:30]!r}: {r}"
        assert c.closed_by_peer(5.0), f"connection left open after garbage {blob[:30]!r}"
        c.close()
        still_serving(cl)


# Framings a lenient parser reads one way and a proxy in front another (RFC 9112): each must
# get a 400 JSON answer and a close, and store nothing. (request, key it would have stored)
SMUGGLING = [
    # a bare CR after an empty value swallows the next byte and reveals a hidden TE
    (b"PUT /smug/a.ts HTTP/1.1\r\nHost: t\r\nX-A:\rXTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", "/smug/a.ts"),
    # obs-fold in Transfer-Encoding, and elsewhere in the head
    (b"PUT /smug/b.ts HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", "/smug/b.ts"),
    (b"PUT /smug/c.ts HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\t2\r\nContent-Length: 5\r\n\r\nhello",
     "/smug/c.ts"),
    # a bare CR in a chunk-size line; chunk data not followed by CRLF
    (b"PUT /smug/d.ts HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\rXhello\r\n0\r\n\r\n", "/smug/d.ts"),
    (b"PUT /smug/e.ts HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhelloXX0\r\n\r\n", "/smug/e.ts"),
]


@test
def smuggling_framings_400_close_nothing_stored(cl):
    for req, key in SMUGGLING:
        c = RawConn(cl.gw_port)
        # a request pipelined behind must not be answered either
        c.send(req + b"GET /smug/after.ts HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            r = c.read_response("PUT")
        except ConnectionError:
            raise AssertionError(f"closed without a 400 for {req[:60]!r}")
        assert_json_error(r, 400, "bad_request")
        assert c.closed_by_peer(5.0), f"connection left open after {req[:60]!r}"
        c.close()
        assert_absent(cl, key)
    still_serving(cl)


@test
def chunked_put(cl):
    pieces = [b"a", os.urandom(16), os.urandom(1000), os.urandom(65536), b"end"]
    key = "/chunked/raw.ts"
    c = RawConn(cl.gw_port)
    c.send(raw_put_headers(key, chunked=True, extra="Icy-MetaData: 1\r\n"))
    stream = chunked(pieces, ext=True)
    pos, step = 0, 1
    while pos < len(stream):  # dribble: split chunk-size lines and CRLFs at odd places
        c.send(stream[pos:pos + step])
        pos += step
        step = step * 2 + 1
        time.sleep(0.002)
    r = c.read_response("PUT")
    assert r.status == 201, r
    c.close()
    g = cl.get(key)
    assert g.status == 200 and g.body == b"".join(pieces), g
    assert g.header("content-length") == str(len(g.body))

    # and through http.client: 900 KiB (under this gateway's 1 MiB limit) in 64 KiB chunks
    data = os.urandom(900 << 10)
    key2 = "/chunked/client.m4s"
    r = cl.put(key2, (data[i:i + 65536] for i in range(0, len(data), 65536)))
    assert r.status == 201, r
    g = cl.get(key2)
    assert g.status == 200 and sha256(g.body) == sha256(data), g
    assert g.header("content-type", "").startswith("video/mp4"), g.headers


@test
def keepalive_and_pipelining_in_order(cl):
    reqs = [
        (b"PUT /pipe/a.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", "PUT"),
        (b"GET /pipe/a.ts HTTP/1.1\r\nHost: t\r\n\r\n", "GET"),
        (b"GET /pipe/missing.ts HTTP/1.1\r\nHost: t\r\n\r\n", "GET"),
        (b"HEAD /pipe/a.ts HTTP/1.1\r\nHost: t\r\n\r\n", "HEAD"),
        (b"PUT /pipe/b.m3u8 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         + chunked([b"#EXTM3U\n", b"#EXT-X-VERSION:3\n"]), "PUT"),
        (b"GET /pipe/b.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n", "GET"),
        (b"DELETE /pipe/a.ts HTTP/1.1\r\nHost: t\r\n\r\n", "DELETE"),
        (b"GET /pipe/a.ts HTTP/1.1\r\nHost: t\r\n\r\n", "GET"),
    ]
    c = RawConn(cl.gw_port, timeout=30)
    c.send(b"".join(r for r, _ in reqs))  # all at once: pipelined
    got = [c.read_response(m) for _, m in reqs]
    statuses = [r.status for r in got]
    assert statuses == [201, 200, 404, 200, 201, 200, 204, 404], statuses
    assert got[1].body == b"hello"
    assert got[3].body == b"" and got[3].header("content-length") == "5", got[3]
    assert got[5].body == b"#EXTM3U\n#EXT-X-VERSION:3\n"
    assert got[5].header("content-type", "").startswith("application/vnd.apple.mpegurl")
    # the connection is still usable afterwards (keep-alive)
    for _ in range(10):
        c.send(b"GET /pipe/b.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.read_response().status == 200
    c.send(b"GET /pipe/b.m3u8 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert c.read_response().status == 200
    assert c.closed_by_peer(5.0), "Connection: close not honoured"
    c.close()


@test
def ctl_status_table_and_exit_codes(cl):
    if not cl.ctl_bin:
        raise AssertionError("HW_CTL_BIN not set")
    p = cl.ctl("status")
    assert p.returncode == 0, f"exit {p.returncode}: {p.stdout}{p.stderr}"
    lines = p.stdout.splitlines()
    assert lines[0].startswith("cluster: quorum yes, leader "), p.stdout
    header = lines[1].split()
    assert header == ["NODE", "ADDRESS", "ROLE", "APPLIED", "LAG", "REPAIR", "HEALTH"], lines[1]
    rows = {int(line.split()[0]): line.split() for line in lines[2:]}
    assert sorted(rows) == sorted(cl.nodes), p.stdout
    for nid, row in rows.items():
        assert row[1] == cl.nodes[nid].address, row
        assert row[2] in ("leader", "follower"), row
    assert sum(1 for r in rows.values() if r[2] == "leader") == 1, p.stdout
    print("  " + "\n  ".join(lines))

    p = cl.ctl("status", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["quorum"] is True and len(doc["nodes"]) == 3, doc

    # nothing listening -> 1
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    p = cl.ctl("status", gateway=f"http://127.0.0.1:{dead}")
    assert p.returncode == 1 and "unreachable" in p.stderr, (p.returncode, p.stderr)
    # the data port speaks HTTP but /status there is not the document -> 1
    p = cl.ctl("status", gateway=f"http://127.0.0.1:{cl.gw_port}")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)

    # two nodes down -> no quorum -> non-zero (2)
    down = [n for n in cl.nodes if n != 1][:2]
    for nid in down:
        cl.kill(nid)
    cl.wait_for(lambda: cl.status().get("quorum") is False, 15.0, "/status quorum false")
    p = cl.ctl("status")
    assert p.returncode == 2, f"exit {p.returncode}: {p.stdout}{p.stderr}"
    assert "quorum NO" in p.stdout, p.stdout
    print("  " + "\n  ".join(p.stdout.splitlines()))
    for nid in down:
        cl.restart(nid)
    cl.wait_ready(60.0)
    cl.wait_for(lambda: cl.ctl("status").returncode == 0, 30.0, "headwaterctl status exit 0")


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=lambda: Cluster(nodes=3, name="hw-badinput",
                                               gateway_args=["--max-object-size", str(MAX)]))
