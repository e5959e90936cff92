"""Real Headwater daemons on loopback for integration and e2e tests (Python 3 stdlib only).

    cl = Cluster(nodes=3, gateway_args=["--max-object-size", "1048576"])
    cl.start()                      # free ports, temp dir, 3 nodes + 1 gateway, waits /readyz
    cl.put("/a/b.ts", b"...")       # -> Response(status, headers, body)
    cl.kill(cl.leader_id())         # SIGKILL
    cl.restart(1)
    cl.wait_for(lambda: ..., 30, "what we wait for")
    cl.stop(); cl.cleanup()         # SIGTERM, then SIGKILL after a deadline; temp dir removed

Binaries come from HW_NODE_BIN, HW_GATEWAY_BIN and HW_CTL_BIN (set by meson). Every daemon
gets the cluster secret through HEADWATER_CLUSTER_SECRET_FILE: one random secret per test
process (cluster_secret_file(); exported in os.environ, so extra daemons a test starts from
os.environ or a Proc's env get it too). Every daemon
logs to a file in the temp dir; dump_logs() prints their tails (hwtest calls it on failure).
"""
import atexit
import ctypes
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HOST = "127.0.0.1"


def _bin(var):
    path = os.environ.get(var)
    if not path:
        raise RuntimeError(f"{var} is not set (meson sets it; or export it by hand)")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{var}={path} is not an executable")
    return path


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held open together while choosing)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


_SECRET = {}


def cluster_secret_file():
    """Path of this test process's cluster secret (created once, removed at exit), also
    exported as HEADWATER_CLUSTER_SECRET_FILE."""
    if "path" not in _SECRET:
        d = tempfile.mkdtemp(prefix="hw-secret-")
        path = os.path.join(d, "cluster.secret")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32).hex().encode() + b"\n")
        os.close(fd)
        atexit.register(shutil.rmtree, d, True)
        _SECRET["path"] = path
        os.environ["HEADWATER_CLUSTER_SECRET_FILE"] = path
    return _SECRET["path"]


def cluster_secret():
    with open(cluster_secret_file(), "rb") as f:
        return f.read().strip()


def _die_with_parent():
    # Linux: the child gets SIGKILL if the test process dies, so no daemon outlives a run.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def sha256(b):
    return hashlib.sha256(b).hexdigest()


WAIT_ERRORS = (OSError, http.client.HTTPException, ValueError, KeyError)


def poll(pred, timeout, what, interval=0.1, check=None, errors=WAIT_ERRORS):
    """Poll pred() until it returns a truthy value, which is returned; errors (those listed) count
    as "not yet". check(), if given, runs after each try and may raise. On timeout raises
    AssertionError naming `what` and the last value or error."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
            last = v
        except errors as e:
            last = f"{type(e).__name__}: {e}"
        if check is not None:
            check()
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last}")
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body
        self.elapsed = elapsed

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return (f"<Response {self.status} {self.headers} "
                f"body={self.body[:200]!r}{'...' if len(self.body) > 200 else ''}>")


def request(port, method, path, body=None, headers=None, timeout=30.0):
    """One HTTP request on a fresh connection; returns Response. `body` may be bytes or an
    iterable of bytes (sent chunked)."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray)):
            conn.request(method, path, body=body, headers=hdrs, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        hmap = {k.lower(): v for k, v in r.getheaders()}
        return Response(r.status, hmap, data, time.monotonic() - t0)
    finally:
        conn.close()


class Proc:
    def __init__(self, name, argv, log_path, env):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.proc = None
        self.starts = 0

    def start(self):
        with open(self.log_path, "ab") as log:
            log.write(f"==== start #{self.starts + 1}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env,
                                         preexec_fn=_die_with_parent)
        self.starts += 1

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                data = f.read().decode("utf-8", "replace").splitlines()
            return data[-lines:]
        except OSError as e:
            return [f"(no log: {e})"]


class Node(Proc):
    def __init__(self, node_id, rpc_port, raft_port, data_dir, log_path, argv, env):
        super().__init__(f"node{node_id}", argv, log_path, env)
        self.id = node_id
        self.rpc_port = rpc_port
        self.raft_port = raft_port
        self.data_dir = data_dir

    @property
    def address(self):
        return f"{HOST}:{self.rpc_port}"


class Cluster:
    def __init__(self, nodes=3, gateway_args=(), node_args=(), name="hw"):
        """node_args: extra flags for every node, or a function node id -> flags."""
        self.node_bin = _bin("HW_NODE_BIN")
        self.gateway_bin = _bin("HW_GATEWAY_BIN")
        self.ctl_bin = os.environ.get("HW_CTL_BIN")
        self.tmp = tempfile.mkdtemp(prefix=f"{name}-")
        ports = free_ports(2 * nodes + 2)
        self.gw_port, self.admin_port = ports[0], ports[1]
        self.secret_file = cluster_secret_file()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        peers = ",".join(f"{i + 1}={HOST}:{ports[2 + i]}" for i in range(nodes))
        self.nodes = {}
        for i in range(nodes):
            nid = i + 1
            rpc, raft = ports[2 + i], ports[2 + nodes + i]
            ddir = os.path.join(self.tmp, f"n{nid}")
            os.makedirs(ddir, exist_ok=True)
            argv = [self.node_bin, "--id", str(nid), "--data-dir", ddir,
                    "--listen", f"{HOST}:{rpc}", "--raft-listen", f"{HOST}:{raft}",
                    "--peers", peers] + list(node_args(nid) if callable(node_args) else node_args)
            self.nodes[nid] = Node(nid, rpc, raft, ddir, os.path.join(self.tmp, f"node{nid}.log"),
                                   argv, env)
        gw_argv = [self.gateway_bin, "--listen", f"{HOST}:{self.gw_port}",
                   "--admin-listen", f"{HOST}:{self.admin_port}",
                   "--nodes", ",".join(n.address for n in self.nodes.values())]
        gw_argv += list(gateway_args)
        self.gateway = Proc("gateway", gw_argv, os.path.join(self.tmp, "gateway.log"), env)

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, ready_timeout=60.0):
        for n in self.nodes.values():
            n.start()
        self.gateway.start()
        self.wait_ready(ready_timeout)

    def procs(self):
        return list(self.nodes.values()) + [self.gateway]

    def kill(self, node_id, sig=signal.SIGKILL):
        n = self.nodes[node_id]
        n.signal(sig)
        if n.wait(10.0) is None:
            raise AssertionError(f"{n.name} did not exit after signal {sig}")

    def restart(self, node_id):
        n = self.nodes[node_id]
        if n.alive():
            raise AssertionError(f"{n.name} is still running")
        n.start()

    def ensure_all_up(self, timeout=60.0):
        """Restart every node that is not running and wait for /readyz."""
        for n in self.nodes.values():
            if not n.alive():
                n.start()
        self.wait_ready(timeout)

    def stop(self, timeout=10.0):
        """SIGTERM everything, SIGKILL what is left after `timeout`. Returns a list of problems
        (sanitizer reports, daemons that needed SIGKILL or exited non-zero on SIGTERM)."""
        problems = []
        running = [p for p in self.procs() if p.alive()]
        # Gateway first: it is the client of the nodes.
        for p in sorted(running, key=lambda p: p is not self.gateway):
            p.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in running:
            rc = p.wait(max(0.1, deadline - time.monotonic()))
            if rc is None:
                problems.append(f"{p.name} ignored SIGTERM for {timeout:.0f}s; SIGKILLed")
                p.signal(signal.SIGKILL)
                p.wait(5.0)
            elif rc != 0:
                problems.append(f"{p.name} exited with status {rc} after SIGTERM")
        problems += self.sanitizer_reports()
        return problems

    def sanitizer_reports(self):
        """Lines where ASan/UBSan/LSan reported in any daemon log."""
        marks = ("ERROR: AddressSanitizer", "runtime error:")
        if os.environ.get("HW_IGNORE_LEAKS") != "1":
            marks += ("ERROR: LeakSanitizer",)
        found = []
        for p in self.procs():
            try:
                with open(p.log_path, "r", encoding="utf-8", errors="replace") as f:
                    for line in f:
                        if any(m in line for m in marks):
                            found.append(f"{p.name}: {line.strip()}")
                            break
            except OSError:
                pass
        return found

    def cleanup(self, keep=False):
        for p in self.procs():
            if p.alive():
                p.signal(signal.SIGKILL)
                p.wait(5.0)
        if keep:
            print(f"hwtest: kept {self.tmp}", flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def dump_logs(self, lines=40):
        for p in self.procs():
            state = "running" if p.alive() else (
                f"exited {p.proc.returncode}" if p.proc is not None else "never started")
            print(f"==== tail of {p.name} ({state}) {p.log_path}", flush=True)
            for line in p.tail(lines):
                print(f"  {line}")
        print("====", flush=True)

    # ---- waiting --------------------------------------------------------------------------
    def wait_for(self, pred, timeout, what, interval=0.1):
        """Poll pred() until it returns a truthy value; errors count as "not yet". Returns the
        value. Raises AssertionError naming `what` and the last value/error on timeout, or when
        the gateway died meanwhile."""
        def gateway_alive():
            if self.gateway.proc is not None and not self.gateway.alive():
                raise AssertionError(f"gateway died while waiting for {what}")
        return poll(pred, timeout, what, interval, check=gateway_alive)

    def wait_ready(self, timeout=60.0):
        def ready():
            for n in self.nodes.values():
                if n.proc is not None and not n.alive():
                    raise AssertionError(f"{n.name} exited with {n.proc.returncode} at start")
            return self.admin("GET", "/readyz", timeout=2.0).status == 200
        self.wait_for(ready, timeout, "gateway /readyz == 200")

    # ---- HTTP -----------------------------------------------------------------------------
    def http(self, method, path, body=None, headers=None, timeout=30.0):
        return request(self.gw_port, method, path, body, headers, timeout)

    def admin(self, method, path, timeout=10.0):
        return request(self.admin_port, method, path, None, None, timeout)

    def put(self, key, body, headers=None, timeout=60.0):
        return self.http("PUT", key, body, headers, timeout)

    def get(self, key, headers=None, timeout=60.0):
        return self.http("GET", key, None, headers, timeout)

    def put_retry(self, key, body, headers=None, deadline=30.0):
        """PUT, retrying only on 503 (honouring Retry-After, capped) until `deadline` seconds
        have passed. Returns the first non-503 Response (or the last 503)."""
        end = time.monotonic() + deadline
        while True:
            r = self.put(key, body, headers)
            if r.status != 503 or time.monotonic() >= end:
                return r
            try:
                pause = min(float(r.header("retry-after", "0.2")), 0.5)
            except ValueError:
                pause = 0.2
            time.sleep(max(0.05, min(pause, end - time.monotonic())))

    def get_retry(self, key, deadline=30.0):
        """GET, retrying only on 503 until `deadline` seconds have passed."""
        end = time.monotonic() + deadline
        while True:
            r = self.get(key)
            if r.status != 503 or time.monotonic() >= end:
                return r
            time.sleep(0.2)

    # ---- /status --------------------------------------------------------------------------
    def status(self):
        r = self.admin("GET", "/status")
        if r.status not in (200, 503):
            raise ValueError(f"/status answered {r.status}: {r.body[:200]!r}")
        return r.json()

    def node_status(self, node_id, st=None):
        st = st if st is not None else self.status()
        for n in st.get("nodes", []):
            if n.get("id") == node_id:
                return n
        raise KeyError(f"node {node_id} not in /status")

    def leader_id(self, timeout=30.0):
        def leader():
            st = self.status()
            lid = st.get("leader")
            if st.get("quorum") and isinstance(lid, int) and lid in self.nodes \
                    and self.nodes[lid].alive():
                return lid
            return None
        return self.wait_for(leader, timeout, "a known leader with quorum")

    def caught_up(self, node_id):
        """True when the node is reachable, 0 entries behind the leader and its repair backlog
        is empty (per the gateway's /status)."""
        st = self.status()
        n = self.node_status(node_id, st)
        return bool(st.get("quorum")) and n.get("reachable") is True and n.get("lag") == 0 \
            and n.get("repair_backlog") == 0

    def ctl(self, *args, gateway=None, timeout=30.0):
        """Run headwaterctl; returns CompletedProcess (text)."""
        if not self.ctl_bin:
            raise RuntimeError("HW_CTL_BIN is not set")
        gw = gateway or f"http://{HOST}:{self.admin_port}"
        return subprocess.run([self.ctl_bin, "--gateway", gw] + list(args), capture_output=True,
                              text=True, timeout=timeout)


# ---- raw sockets: for framing tests http.client would hide ---------------------------------
class TwoGateways(Cluster):
    """The usual cluster plus a second gateway (B) with the same flags; A is the usual one."""

    def __init__(self, gateway_args=(), name="hw-two", nodes=3):
        super().__init__(nodes=nodes, gateway_args=gateway_args, name=name)
        self.b_port, self.b_admin = free_ports(2)
        argv = [self.gateway_bin, "--listen", f"{HOST}:{self.b_port}",
                "--admin-listen", f"{HOST}:{self.b_admin}",
                "--nodes", ",".join(n.address for n in self.nodes.values())] + list(gateway_args)
        self.gw_b = Proc("gateway_b", argv, os.path.join(self.tmp, "gateway_b.log"),
                         dict(os.environ))

    def start(self, ready_timeout=60.0):
        super().start(ready_timeout)
        self.gw_b.start()
        self.wait_for(lambda: request(self.b_admin, "GET", "/readyz", timeout=2).status == 200,
                      60, "gateway B ready")

    def procs(self):
        return super().procs() + [self.gw_b]

    def a(self, method, key, body=None, headers=None):
        return request(self.gw_port, method, key, body=body, headers=headers, timeout=30)

    def b(self, method, key, body=None, headers=None):
        return request(self.b_port, method, key, body=body, headers=headers, timeout=30)

    def b_metric(self, name):
        r = request(self.b_admin, "GET", "/metrics", timeout=5)
        for line in r.body.decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
        raise AssertionError(f"{name} not in /metrics")


class RawConn:
    """A raw TCP connection with a minimal HTTP/1.1 response reader (Content-Length, chunked,
    HEAD/204/304 without a body)."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method="GET"):
        status_line = self._line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError(f"bad status line {status_line!r}")
        status = int(parts[1])
        headers = {}
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._line()
        elif "content-length" in headers:
            body = self._exact(int(headers["content-length"]))
        else:
            while True:
                try:
                    self._fill()
                except ConnectionError:
                    break
            body, self.buf = self.buf, b""
        return Response(status, headers, body, 0.0)

    def closed_by_peer(self, timeout=5.0):
        """True when the peer closes (EOF or reset) within timeout, with no further bytes."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        if data:
            self.buf += data
            return False
        return True
