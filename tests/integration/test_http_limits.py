#!/usr/bin/env python3
"""Issue 8 §5 memory bounds over real daemons (3 nodes + a gateway with a small
--max-buffered-bytes, ASan's quarantine off so RSS means what the gateway holds): a PUT of
1-byte chunks costs a bounded amount of gateway memory during and after (and is stored
byte-exact), a failed one gives it back; clients that read nothing are throttled and, past the
budget, closed (counted on /metrics) while a normal client still gets its object."""
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import HOST, Cluster, RawConn, request, sha256  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)
BUDGET = 16 << 20
GW_ARGS = []  # the budget flag is added with the budget


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


def settled_rss(pid):
    time.sleep(0.5)
    return rss_kib(pid)


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
    c.send(put_head("/lim/failed.ts") + wire)  # no last chunk: the client goes away
    time.sleep(0.5)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # reset
    during = peak.stop() - base
    cl.wait_for(lambda: cl.get("/lim/failed.ts").status == 404, 10.0, "nothing stored")
    after = settled_rss(pid) - base
    print(f"  rss: base {base} KiB, peak +{during} KiB, after +{after} KiB")
    assert during < 48 * 1024, f"gateway grew by {during} KiB"
    assert after < 16 * 1024, f"gateway kept {after} KiB after the failed upload"
    assert cl.get("/lim/tiny.ts").status == 200


if __name__ == "__main__":
    os.environ["ASAN_OPTIONS"] = "detect_leaks=1:quarantine_size_mb=0"
    hwtest.main(TESTS, fixture=lambda: Cluster(nodes=3, name="hw-limits",
                                               gateway_args=GW_ARGS))
