"""Harness of the player drill (test_player.py): a 3-node cluster with two gateways, one nginx
(a load balancer over the two gateways, and a WebDAV origin for the reference stream), ffmpeg
encoders pushing live HLS in real time, and hls.js in headless Chromium (player/drill.mjs).

    fx = DrillFixture(); fx.start()
    run = fx.stream(ingest_port, "/live/x/index.m3u8", seconds=24)  # ffmpeg -> Headwater + nginx
    fx.player.open("hw", url); fx.player.wait("hw", "playing", 20)
    ... fault ...
    run.wait(); fx.player.close("hw")
    summarise(fx.player.events_of("hw", since, until))

Binaries: HW_NODE_BIN, HW_GATEWAY_BIN (meson), HW_FFMPEG, NGINX (default nginx), HW_NODEJS
(default node), HW_CHROMIUM (default /usr/bin/chromium). npm packages: tests/e2e/player/
node_modules, installed by scripts/deps."""
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from cluster import HOST, Cluster, Proc, _die_with_parent, free_ports, request

HERE = os.path.dirname(os.path.abspath(__file__))
PLAYER_DIR = os.path.join(HERE, "player")
CHAOS_DIR = os.path.join(HERE, "..", "chaos")
FFMPEG = os.environ.get("HW_FFMPEG") or shutil.which("ffmpeg") or "ffmpeg"
NGINX = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
NODEJS = os.environ.get("HW_NODEJS") or shutil.which("node") or "node"
CHROMIUM = os.environ.get("HW_CHROMIUM") or "/usr/bin/chromium"

# The reference origin sends the gateway's default Cache-Control per kind (gateway/object/
# rules.h): playlists max-age=1, segments immutable, so the browser caches both alike and the
# latency comparison measures the origins, not their caching policies.
NGINX_CONF = """\
{user}
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    types {{ video/mp2t ts; application/vnd.apple.mpegurl m3u8; }}
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 0;
    upstream headwater {{
        server {host}:{gw_a} max_fails=1 fail_timeout=2s;
        server {host}:{gw_b} max_fails=1 fail_timeout=2s;
        keepalive 16;
    }}
    server {{  # load balancer over the two gateways
        listen {host}:{lb};
        location / {{
            proxy_pass http://headwater;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout non_idempotent;
        }}
    }}
    server {{  # the reference origin: WebDAV, what ffmpeg PUTs and DELETEs
        listen {host}:{dav};
        root {tmp}/www;
        dav_methods PUT DELETE;
        create_full_put_path on;
        location ~ \\.m3u8$ {{ add_header Cache-Control "max-age=1"; }}
        location / {{ add_header Cache-Control "max-age=31536000, immutable"; }}
    }}
}}
"""


class Nginx(Proc):
    def __init__(self, tmp, gw_a, gw_b):
        self.dir = os.path.join(tmp, "nginx")
        for d in ("www", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.lb_port, self.dav_port = free_ports(2)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "",
                                      tmp=self.dir, host=HOST, gw_a=gw_a, gw_b=gw_b,
                                      lb=self.lb_port, dav=self.dav_port))
        super().__init__("nginx", [NGINX, "-p", self.dir + "/", "-c", conf],
                         os.path.join(self.dir, "nginx-error.log"), dict(os.environ))

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise AssertionError(f"nginx exited: {self.tail(20)}")
            try:
                request(self.dav_port, "GET", "/", timeout=1.0)
                return
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not come up in {timeout:.0f}s")
                time.sleep(0.1)


class Player:
    """player/drill.mjs: one Chromium, one browser context per player name; its events (JSON
    lines) are collected by a reader thread, each stamped with Unix time in seconds."""

    def __init__(self, log_path):
        mark = os.path.join(PLAYER_DIR, "node_modules", "playwright-core", "package.json")
        if not os.path.exists(mark) or not os.path.exists(
                os.path.join(PLAYER_DIR, "node_modules", "hls.js", "dist", "hls.min.js")):
            raise AssertionError(f"npm packages missing in {PLAYER_DIR}/node_modules: run "
                                 "scripts/deps")
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError(f"no Chromium at {CHROMIUM}: run scripts/deps")
        self.log = open(log_path, "ab")
        self.events = []
        self.cv = threading.Condition()
        env = dict(os.environ, HW_CHROMIUM=CHROMIUM)
        self.proc = subprocess.Popen([NODEJS, os.path.join(PLAYER_DIR, "drill.mjs")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env, text=True,
                                     preexec_fn=_die_with_parent)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait(None, "ready", 30)

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "garbage", "line": line[:200], "t": time.time() * 1000}
            ev["t"] = ev["t"] / 1000.0
            if ev["ev"] not in ("sample",):
                self.log.write(line.encode())
                self.log.flush()
            with self.cv:
                self.events.append(ev)
                self.cv.notify_all()
        with self.cv:
            self.events.append({"ev": "exit", "t": time.time()})
            self.cv.notify_all()

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait(self, name, ev, timeout, since=0.0):
        """The first event `ev` of player `name` at or after `since` (Unix s); fails on a
        deadline, a driver error or the driver's exit."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for e in self.events:
                    if e["t"] < since:
                        continue
                    if e["ev"] == ev and e.get("name") == name:
                        return e
                    if e["ev"] == "exit" or (e["ev"] == "fatal" and e.get("name") in (None,
                                                                                       name)):
                        raise AssertionError(f"player driver: {e}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"player {name}: no '{ev}' within {timeout:.0f}s")
                self.cv.wait(left)

    def open(self, name, url, timeout=30):
        since = time.time() - 0.001
        self.send(cmd="open", name=name, url=url)
        self.wait(name, "opened", timeout, since)

    def close(self, name, timeout=30):
        since = time.time() - 0.001
        self.send(cmd="close", name=name)
        self.wait(name, "closed", timeout, since)

    def events_of(self, name, since, until):
        with self.cv:
            return [e for e in self.events if e.get("name") == name and since <= e["t"] < until]

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.send(cmd="quit")
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def ffmpeg_cmd(url, seconds):
    """A live encoder in real time (-re): 25 fps test pattern + tone, a keyframe every second,
    1 s segments, a 6-segment window with old segments deleted, wall-clock
    EXT-X-PROGRAM-DATE-TIME (the player's latency from the encoder's clock)."""
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
            "-keyint_min", "25", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k",
            "-f", "hls", "-hls_time", "1", "-hls_list_size", "6",
            "-hls_flags", "delete_segments+program_date_time", "-method", "PUT",
            "-http_persistent", "1", url]


class Stream:
    """Two encoders started together: one into Headwater (through `port`), the reference one
    into nginx's WebDAV location; same path on both."""

    def __init__(self, tmp, port, dav_port, path, seconds):
        self.path = path
        self.procs = {}
        self.logs = {}
        for name, p in (("hw", port), ("ng", dav_port)):
            log = os.path.join(tmp, f"ffmpeg-{name}-{path.strip('/').replace('/', '_')}.log")
            self.logs[name] = log
            with open(log, "wb") as f:
                self.procs[name] = subprocess.Popen(
                    ffmpeg_cmd(f"http://{HOST}:{p}{path}", seconds), stdin=subprocess.DEVNULL,
                    stdout=f, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.started = time.time()

    def wait(self, timeout):
        """{name: exit status or None (still running at the deadline, then killed)}."""
        deadline = time.monotonic() + timeout
        out = {}
        for name, p in self.procs.items():
            try:
                out[name] = p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
                out[name] = None
        return out

    def stderr(self, name):
        with open(self.logs[name], "r", errors="replace") as f:
            return f.read()[-1500:]

    def kill(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)


def load_netfault():
    """(module, None) when tests/chaos/netfault.py (per-uid loopback cuts with iptables owner
    matches) is there and usable here (root, iptables), else (None, why not)."""
    if CHAOS_DIR not in sys.path:
        sys.path.insert(0, CHAOS_DIR)
    try:
        import netfault
    except ImportError:
        return None, "tests/chaos/netfault.py is not there (it comes with branch chaos2)"
    why = netfault.available()
    return (netfault, None) if why is None else (None, f"netfault unavailable here: {why}")


class DrillFixture(Cluster):
    """The cluster (nodes 1-3, gateway A = self.gateway), gateway B, nginx and the player.
    With netfault usable, every node runs as its own system user so that isolate_node() can
    cut it off from its peers."""

    def __init__(self):
        super().__init__(nodes=3, name="hw-player")
        self.netfault, self.netfault_why = load_netfault()
        self.uids = {}
        if self.netfault is not None:
            self._own_uids()
        self.gw_b_port, self.admin_b_port = free_ports(2)
        argv = list(self.gateway.argv)
        argv[argv.index("--listen") + 1] = f"{HOST}:{self.gw_b_port}"
        argv[argv.index("--admin-listen") + 1] = f"{HOST}:{self.admin_b_port}"
        self.gateway_b = Proc("gateway_b", argv, os.path.join(self.tmp, "gateway_b.log"),
                              self.gateway.env)
        self.nginx = Nginx(self.tmp, self.gw_port, self.gw_b_port)
        self.player = None

    def _own_uids(self):
        """Nodes as users hwchaos1..3 (netfault.ensure_users): data dirs chowned, the cluster
        secret copied group-readable for them."""
        uids, gid = self.netfault.ensure_users(len(self.nodes))
        os.chown(self.tmp, 0, gid)
        os.chmod(self.tmp, 0o750)
        secret = os.path.join(self.tmp, "cluster.secret")
        shutil.copyfile(self.secret_file, secret)
        os.chown(secret, 0, gid)
        os.chmod(secret, 0o640)
        for (nid, n), uid in zip(sorted(self.nodes.items()), uids):
            self.uids[nid] = uid
            n.argv = self.netfault.run_as(uid, gid, n.argv)
            n.env = dict(n.env, HEADWATER_CLUSTER_SECRET_FILE=secret)
            os.chown(n.data_dir, uid, gid)

    @contextlib.contextmanager
    def isolate_node(self, nid):
        """Node nid cut off from the other nodes both ways (RPC and raft ports), while the
        gateways (root) still reach it, until the block exits."""
        nf = self.netfault.NetFault()
        try:
            me = (self.uids[nid], [self.nodes[nid].rpc_port, self.nodes[nid].raft_port])
            for oid, o in self.nodes.items():
                if oid != nid:
                    nf.partition(me, (self.uids[oid], [o.rpc_port, o.raft_port]))
            yield
        finally:
            nf.heal()
            nf.close()

    def procs(self):
        return list(self.nodes.values()) + [self.gateway, self.gateway_b]

    def start(self, ready_timeout=60.0):
        super().start(ready_timeout)
        self.gateway_b.start()
        self.wait_gateway_b(ready_timeout)
        self.nginx.start()
        self.nginx.wait_ready()
        self.player = Player(os.path.join(self.tmp, "player.log"))

    def wait_gateway_b(self, timeout):
        self.wait_for(lambda: self.gateway_b.alive() and request(
            self.admin_b_port, "GET", "/readyz", timeout=2.0).status == 200, timeout,
            "gateway B /readyz == 200")

    def healthy(self, timeout=60.0):
        """Every daemon running, every node caught up, both gateways ready (between runs)."""
        for n in self.nodes.values():
            if not n.alive():
                n.start()
        for gw in (self.gateway, self.gateway_b):
            if not gw.alive():
                gw.start()
        self.wait_ready(timeout)
        self.wait_gateway_b(timeout)
        for nid in self.nodes:
            self.wait_for(lambda: self.caught_up(nid), timeout, f"node{nid} caught up")

    def stop(self, timeout=10.0):
        if self.player is not None:
            self.player.quit()
        if self.nginx.alive():
            self.nginx.signal(signal.SIGQUIT)
            if self.nginx.wait(10) is None:
                self.nginx.signal(signal.SIGKILL)
                self.nginx.wait(5)
        return super().stop(timeout)

    def cleanup(self, keep=False):
        if self.nginx.alive():
            self.nginx.signal(signal.SIGKILL)
            self.nginx.wait(5)
        super().cleanup(keep)

    def dump_logs(self, lines=40):
        super().dump_logs(lines)
        print(f"==== tail of nginx {self.nginx.log_path}")
        for line in self.nginx.tail(lines):
            print(f"  {line}")
        print(f"==== player driver log {os.path.join(self.tmp, 'player.log')}", flush=True)
        for line in Proc("player", [], os.path.join(self.tmp, "player.log"), {}).tail(lines):
            print(f"  {line[:300]}")


def _last_segment(port, path):
    r = request(port, "GET", path, timeout=2.0)
    lines = [x for x in r.body.decode("utf-8", "replace").splitlines()
             if x.strip() and not x.startswith("#")]
    return r.status, r.body.count(b"#EXTINF"), (lines[-1] if lines else None)


def wait_playlist(port, path, segments, timeout, after=None):
    """Wait until `path` on `port` is a playlist naming >= `segments` segments (the player
    starts 3 target durations behind the live edge: opened earlier it would see 404s) and,
    with `after`, ending in another segment than `after`. Returns its last segment."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, n, seg = _last_segment(port, path)
            last = status
            if status == 200 and n >= segments and (after is None or seg != after):
                return seg
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.05)
    raise AssertionError(f"{path} on port {port}: no playlist with {segments} segments"
                         f"{' after ' + after if after else ''} within {timeout:.0f}s "
                         f"(last: {last})")


def wait_new_segment(port, path, timeout):
    """Return right after the playlist on `port` gained a segment. A player opened then starts
    at the same phase of the segment cycle on every origin, so its latency from the encoder's
    clock differs by what the origin adds, not by up to a segment of chance."""
    seg = wait_playlist(port, path, 3, timeout)
    wait_playlist(port, path, 3, timeout, after=seg)
