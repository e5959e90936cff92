"""Unit test of tests/chaos/netfault.py: a cut really drops the traffic one uid's processes send
to another's port on loopback, only that traffic, and heal() restores it (new connections and
one that was open across the cut). Two echo peers run as system users hwchaos1 and hwchaos2.
Needs root and iptables (owner match): skipped (exit 77) otherwise."""
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import hwtest  # noqa: E402
import netfault  # noqa: E402
from cluster import free_ports  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)
WAIT = 1.5  # how long a message may take before we call it dropped (loopback: < 1 ms)

# A peer: `serve PORT` echoes lines on 127.0.0.1:PORT; `session PORT` connects once, then for
# each token read on stdin sends it and prints `ok TOKEN` when it came back within WAIT s, else
# `lost TOKEN` (a late echo of an earlier token is skipped); `once PORT` = one fresh connection.
PEER = r"""
import socket, sys, threading
mode, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
if mode == "serve":
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port)); ls.listen(16); print("ready", flush=True)
    def echo(c):
        with c:
            while True:
                b = c.recv(4096)
                if not b: return
                c.sendall(b)
    while True:
        c, _ = ls.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
def roundtrip(s, tok, buf):
    s.sendall(tok.encode() + b"\n")
    s.settimeout(wait)
    try:
        while True:
            while b"\n" in buf[0]:
                line, buf[0] = buf[0].split(b"\n", 1)
                if line.decode() == tok: return "ok"
            b = s.recv(4096)
            if not b: return "closed"
            buf[0] += b
    except OSError:
        return "lost"
if mode == "once":
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    except OSError as e:
        print("noconnect", type(e).__name__, flush=True); sys.exit(0)
    print(roundtrip(s, "t0", [b""]), flush=True); sys.exit(0)
s = socket.create_connection(("127.0.0.1", port), timeout=wait)
print("ready", flush=True)
buf = [b""]
for line in sys.stdin:
    tok = line.strip()
    print(roundtrip(s, tok, buf), tok, flush=True)
"""


class Peers:
    def __init__(self):
        (self.a, self.b), self.gid = netfault.ensure_users(2)
        self.pa, self.pb = free_ports(2)
        self.procs = []
        self.nf = None

    def spawn(self, uid, *args, stdin=None):
        argv = [sys.executable, "-c", PEER] + [str(x) for x in args] + [str(WAIT)]
        if uid != 0:
            argv = netfault.run_as(uid, self.gid, argv)
        p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def start(self):
        self.nf = netfault.NetFault()
        for uid, port in ((self.a, self.pa), (self.b, self.pb)):
            p = self.spawn(uid, "serve", port)
            assert p.stdout.readline().strip() == "ready", f"echo server on {port} did not start"

    def once(self, uid, port):
        """'ok' when a fresh connection from uid to port echoes within WAIT s."""
        p = self.spawn(uid, "once", port)
        out, _ = p.communicate(timeout=30)
        return out.split()[0] if out else f"peer exited {p.returncode}"

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        if self.nf is not None:
            self.nf.close()
        return []

    def cleanup(self, keep=False):
        pass


@test
def without_a_cut_traffic_flows(px):
    assert px.once(px.a, px.pb) == "ok"
    assert px.once(px.b, px.pa) == "ok"


@test
def cut_drops_only_that_uids_packets_to_those_ports(px):
    px.nf.cut(px.a, [px.pb])
    try:
        assert px.once(px.a, px.pb) == "noconnect", "a reached b's port through the cut"
        assert px.once(0, px.pb) == "ok", "another uid's traffic to the port was cut too"
        assert px.once(px.b, px.pa) == "ok", "the other direction was cut too"
        assert px.once(px.a, px.pa) == "ok", "a's traffic to another port was cut too"
    finally:
        px.nf.heal()
    assert px.once(px.a, px.pb) == "ok", "heal() did not restore a -> b"


@test
def partition_cuts_both_ways_and_heals(px):
    px.nf.partition((px.a, [px.pa]), (px.b, [px.pb]))
    assert len(px.nf.rules()) == 3  # -N line + two DROP rules
    assert px.once(px.a, px.pb) == "noconnect"
    assert px.once(px.b, px.pa) == "noconnect"
    px.nf.heal()
    assert px.nf.rules() == [f"-N {px.nf.chain}"]
    assert px.once(px.a, px.pb) == "ok"
    assert px.once(px.b, px.pa) == "ok"


@test
def open_connection_is_cut_then_resumes_after_heal(px):
    s = px.spawn(px.a, "session", px.pb, stdin=subprocess.PIPE)
    assert s.stdout.readline().strip() == "ready"

    def say(tok):
        s.stdin.write(tok + "\n")
        s.stdin.flush()
        return s.stdout.readline().split()[0]
    assert say("before") == "ok"
    px.nf.cut(px.a, [px.pb])
    assert say("during") == "lost", "an open connection still delivered through the cut"
    px.nf.heal()
    # TCP retransmits the lost bytes with backoff: the connection recovers within a few tries.
    got = [say(f"after{i}") for i in range(8)]
    assert "ok" in got, f"the connection never recovered after heal: {got}"
    s.stdin.close()
    s.wait(10)


@test
def close_removes_the_chain_and_stale_chains_are_cleaned(px):
    ipt = px.nf.ipt
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{netfault.CHAIN_PREFIX}-{dead.pid}"
    subprocess.run([ipt, "-w", "-N", stale], check=True)
    subprocess.run([ipt, "-w", "-A", "OUTPUT", "-j", stale], check=True)
    assert stale in netfault.cleanup_stale()
    listing = subprocess.run([ipt, "-w", "-S"], capture_output=True, text=True).stdout
    assert stale not in listing
    assert px.nf.chain in listing, "cleanup_stale removed a live run's chain"
    px.nf.close()
    listing = subprocess.run([ipt, "-w", "-S"], capture_output=True, text=True).stdout
    assert px.nf.chain not in listing


def main():
    why = netfault.available()
    if why:
        print(f"test_netfault: skipped: {why}", flush=True)
        sys.exit(77)
    socket.setdefaulttimeout(30)
    hwtest.main(TESTS, fixture=Peers)


if __name__ == "__main__":
    main()
