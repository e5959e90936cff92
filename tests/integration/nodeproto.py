"""A minimal node-RPC client for tests: protobuf wire format for the few messages used,
frames as in common/frame.h, and the cluster handshake of common/auth.h that comes first on
every connection. Test tooling only; the gateway is the production client."""
import hashlib
import hmac
import os
import socket
import struct

PROTO_VERSION = 2  # common/frame.h CM_PROTO_VERSION
T = dict(HELLO=1, HELLO_OK=2, STAGE=3, STAGE_OK=4, FINISH=5, FINISH_OK=6, COMMIT=7,
         COMMIT_OK=8, GET=9, DATA=10, HEAD=11, HEAD_OK=12, DELETE=13, DELETE_OK=14, FETCH=15,
         STATUS=17, STATUS_OK=18, READ_INDEX=19, READ_INDEX_OK=20, ERROR=21, LIST=22,
         LIST_OK=23)

_CRC = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _CRC.append(c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc(fields):
    """fields: list of (number, value); int -> varint, bytes/str -> length-delimited,
    list of ints -> packed varints, list of (n, v) tuples -> nested message."""
    out = bytearray()
    for num, v in fields:
        if v is None:
            continue
        if isinstance(v, bool) or isinstance(v, int):
            out += _varint(num << 3) + _varint(int(v) & 0xFFFFFFFFFFFFFFFF)
        elif isinstance(v, (bytes, str)):
            b = v.encode() if isinstance(v, str) else v
            out += _varint(num << 3 | 2) + _varint(len(b)) + b
        elif v and isinstance(v[0], int):
            b = b"".join(_varint(x) for x in v)
            out += _varint(num << 3 | 2) + _varint(len(b)) + b
        else:
            b = enc(v)
            out += _varint(num << 3 | 2) + _varint(len(b)) + b
    return bytes(out)


def _uvarint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def dec(buf):
    """-> {number: [values]} with ints or bytes."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _uvarint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _uvarint(buf, i)
        elif wt == 2:
            n, i = _uvarint(buf, i)
            v = bytes(buf[i:i + n])
            i += n
        elif wt == 5:
            v = struct.unpack("<I", buf[i:i + 4])[0]
            i += 4
        elif wt == 1:
            v = struct.unpack("<Q", buf[i:i + 8])[0]
            i += 8
        else:
            raise ValueError("bad wire type")
        out.setdefault(num, []).append(v)
    return out


def one(d, num, default=0):
    return d.get(num, [default])[-1]


# ---- cluster handshake (common/auth.h) ----
ROLE_GATEWAY, ROLE_NODE = 1, 2
CHAN_RPC, CHAN_RAFT = 1, 2
HELLO_FIXED = 52


def default_secret():
    path = os.environ.get("HEADWATER_CLUSTER_SECRET_FILE")
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read().rstrip(b"\r\n\t ")


def auth_hello(role, channel, group=0, node_id=0, addr=b"", nonce=None, addr_len=None):
    """Our HELLO; addr_len overrides the length byte (for attacks)."""
    nonce = nonce if nonce is not None else os.urandom(32)
    n = len(addr) if addr_len is None else addr_len
    return b"HWA1" + struct.pack(">BBBBIQ", 1, role, channel, n, group, node_id) + nonce + addr


def auth_mac(secret, direction, hello_i, hello_a):
    return hmac.new(secret, b"headwater-auth-v1" + direction + hello_i + hello_a,
                    hashlib.sha256).digest()


def recv_exact(s, n):
    b = bytearray()
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise ConnectionError("closed")
        b += chunk
    return bytes(b)


def handshake(s, secret, role=ROLE_GATEWAY, channel=CHAN_RPC, group=0, node_id=0, addr=b""):
    """Run the initiator side on socket s; returns the acceptor's (role, node_id, addr).
    Raises ConnectionError when the acceptor refuses (closes)."""
    mine = auth_hello(role, channel, group, node_id, addr)
    s.sendall(mine)
    head = recv_exact(s, HELLO_FIXED)
    theirs = head + recv_exact(s, head[7])
    s.sendall(auth_mac(secret, b"I", mine, theirs))
    proof = recv_exact(s, 32)
    if not hmac.compare_digest(proof, auth_mac(secret, b"A", mine, theirs)):
        raise ConnectionError("acceptor's proof is wrong")
    _, _, r, _, _, _, nid = struct.unpack(">4sBBBBIQ", head[:20])
    return r, nid, theirs[HELLO_FIXED:]


class NodeClient:
    def __init__(self, addr, timeout=5.0, secret="env", hello=True):
        """secret: the cluster secret (default: HEADWATER_CLUSTER_SECRET_FILE's), None = skip
        the cluster handshake (an insecure node, or an attacker)."""
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.req = 0
        if secret == "env":
            secret = default_secret()
        if secret is not None:
            handshake(self.s, secret)
        if hello:
            self.send(T["HELLO"], 10, [(1, PROTO_VERSION), (2, 0)])
            env, _ = self.recv()
            assert one(env, 1) == T["HELLO_OK"], env

    def close(self):
        self.s.close()

    def send(self, typ, field, body, payload=b"", shard=0, extra=()):
        """extra: more Envelope fields, (number, value) pairs."""
        self.req += 1
        env = enc([(1, typ), (2, self.req), (3, shard)] + ([(field, body)] if field else []) +
                  list(extra))
        self.s.sendall(struct.pack(">II", 4 + len(env) + len(payload), len(env)) + env + payload)

    def _read(self, n):
        b = bytearray()
        while len(b) < n:
            chunk = self.s.recv(n - len(b))
            if not chunk:
                raise ConnectionError("closed")
            b += chunk
        return bytes(b)

    def recv(self):
        flen, hlen = struct.unpack(">II", self._read(8))
        env = dec(self._read(hlen))
        return env, self._read(flen - 4 - hlen)

    def put(self, key, data, holders=None, upload=None, chunk=1 << 20, commit=True):
        upload = upload or os.urandom(16)
        off = 0
        while off < len(data) or off == 0 and not data:
            if not data:
                break
            part = data[off:off + chunk]
            self.send(T["STAGE"], 12, [(1, upload), (2, key), (3, off)], part)
            env, _ = self.recv()
            assert one(env, 1) == T["STAGE_OK"], env
            off += len(part)
        self.send(T["FINISH"], 14, [(1, upload), (2, key), (3, len(data)), (4, crc32c(data))])
        env, _ = self.recv()
        assert one(env, 1) == T["FINISH_OK"], env
        return upload

    def commit(self, key, upload, data, holders, ctype="application/octet-stream", ttl=None,
               if_match=None, if_none_match=None, relay=False):
        """if_match / if_none_match: raw header values for Commit.precondition (None = absent);
        relay: ask a follower to forward it to the leader (Envelope.relay)."""
        pc = None
        if if_match is not None or if_none_match is not None:
            pc = [(1, if_match is not None or None), (2, if_match),
                  (3, if_none_match is not None or None), (4, if_none_match)]
        self.send(T["COMMIT"], 16, [(1, key), (2, upload), (3, len(data)), (4, crc32c(data)),
                                    (5, ctype), (6, holders), (7, ttl), (9, pc)],
                  extra=[(35, 1)] if relay else ())
        return self.recv()[0]

    def delete(self, key, op_id=None):
        """-> the answer's envelope; op_id: the DELETE's 16-byte retry id (None = none)."""
        self.send(T["DELETE"], 22, [(1, key), (2, op_id)])
        return self.recv()[0]

    def list(self, prefix, cursor="", limit=0):
        """-> (list of meta dicts, next cursor) or raises on an ERROR answer."""
        self.send(T["LIST"], 27, [(1, prefix), (2, cursor or None), (3, limit or None)])
        env, _ = self.recv()
        if one(env, 1) != T["LIST_OK"]:
            raise RuntimeError(env)
        ok = dec(one(env, 28, b""))
        return [dec(m) for m in ok.get(1, [])], one(ok, 2, b"").decode()

    def get(self, key):
        self.send(T["GET"], 18, [(1, key)])
        out = bytearray()
        meta = None
        while True:
            env, pl = self.recv()
            if one(env, 1) != T["DATA"]:
                return env, None, None
            d = dec(one(env, 19, b""))
            if meta is None:
                meta = dec(one(d, 1, b""))
            out += pl
            if one(d, 3):
                return env, meta, bytes(out)

    def status(self):
        self.send(T["STATUS"], 0, None)
        env, _ = self.recv()
        return dec(one(env, 25, b""))
