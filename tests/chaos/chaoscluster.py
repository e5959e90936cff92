"""The chaos cluster: 3 nodes + 2 gateways on loopback (tests/integration/cluster.py), each
daemon optionally as its own system user (hwchaos1..5, for netfault.py's per-uid cuts).

    cc = ChaosCluster(gateway_args=[...], own_uids=True)
    cc.start()
    cc.gateways                 # [("gw1", port), ("gw2", port)]  (HTTP ports)
    cc.leader_id()              # from the nodes' STATUS (highest term), else gateway /status
    cc.kill_node(2); cc.start_node(2)   # restart from the same data dir
    cc.kill_gateway("gw2"); cc.start_gateway("gw2")
    cc.endpoint("node1")        # (uid, [rpc, raft ports]) for netfault.partition()
    cc.ensure_all_up(); problems = cc.stop(); cc.cleanup()
"""
import os
import shutil
import signal
import time

from cluster import HOST, WAIT_ERRORS, Cluster, Proc, free_ports, poll, request
import netfault
from nodeproto import NodeClient, dec, one

N_NODES = 3


def give_own_uids(cl, procs):
    """Before start: run each daemon of a cluster.Cluster as its own system user (hwchaos1..N,
    netfault.ensure_users), for netfault cuts. procs: [(name, Proc)] in the order uids are
    handed out (e.g. [("node1", cl.nodes[1]), ..., ("gw1", cl.gateway)]). Data dirs are
    chowned, the cluster secret copied group-readable into the cluster's temp dir (0750).
    Returns {name: uid}."""
    uids, gid = netfault.ensure_users(len(procs))
    os.chown(cl.tmp, 0, gid)
    os.chmod(cl.tmp, 0o750)
    secret = os.path.join(cl.tmp, "cluster.secret")
    shutil.copyfile(cl.secret_file, secret)
    os.chown(secret, 0, gid)
    os.chmod(secret, 0o640)
    out = {}
    for (name, p), uid in zip(procs, uids):
        out[name] = uid
        p.argv = netfault.run_as(uid, gid, p.argv)
        p.env = dict(p.env, HEADWATER_CLUSTER_SECRET_FILE=secret)
        if isinstance(getattr(p, "data_dir", None), str):
            for root, dirs, files in os.walk(p.data_dir):
                for x in [root] + [os.path.join(root, f) for f in dirs + files]:
                    os.chown(x, uid, gid)
    return out


class ChaosCluster:
    def __init__(self, gateway_args=(), own_uids=False, name="hw-chaos"):
        self.cl = Cluster(nodes=N_NODES, gateway_args=list(gateway_args), name=name)
        cl = self.cl
        port, admin = free_ports(2)
        argv = [cl.gateway_bin, "--listen", f"{HOST}:{port}", "--admin-listen",
                f"{HOST}:{admin}", "--nodes", ",".join(n.address for n in cl.nodes.values())]
        gw2 = Proc("gateway2", argv + list(gateway_args), os.path.join(cl.tmp, "gateway2.log"),
                   dict(cl.gateway.env))
        # name -> (Proc, HTTP port, admin port)
        self.gws = {"gw1": (cl.gateway, cl.gw_port, cl.admin_port), "gw2": (gw2, port, admin)}
        self.gateways = [("gw1", cl.gw_port), ("gw2", port)]
        self.uids = {}
        if own_uids:
            self._own_uids()

    def _own_uids(self):
        procs = [(f"node{nid}", n) for nid, n in sorted(self.cl.nodes.items())]
        procs += [(name, g[0]) for name, g in sorted(self.gws.items())]
        self.uids = give_own_uids(self.cl, procs)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, timeout=60.0):
        self.cl.start(timeout)
        self.start_gateway("gw2", timeout)
        self.leader_id(timeout)

    def procs(self):
        return list(self.cl.nodes.values()) + [g[0] for g in self.gws.values()]

    def kill_node(self, nid):
        self.cl.kill(nid)

    def start_node(self, nid):
        self.cl.restart(nid)

    def kill_gateway(self, name):
        p = self.gws[name][0]
        p.signal(signal.SIGKILL)
        if p.wait(10.0) is None:
            raise AssertionError(f"{p.name} did not exit after SIGKILL")

    def start_gateway(self, name, timeout=60.0):
        p, _, admin = self.gws[name]
        if not p.alive():
            p.start()
        self.wait(lambda: request(admin, "GET", "/readyz", timeout=2).status == 200, timeout,
                  f"{name} /readyz")

    def ensure_all_up(self, timeout=60.0):
        """Every daemon running (restarted when not) and every gateway ready."""
        for n in self.cl.nodes.values():
            if n.alive():
                n.signal(signal.SIGCONT)  # in case a fault left it stopped
            else:
                n.start()
        for name in self.gws:
            self.start_gateway(name, timeout)

    def revive_dead(self):
        """Restart every daemon that died on its own (between faults, all should run).
        Returns [(name, exit status)] of those."""
        out = []
        for nid, n in sorted(self.cl.nodes.items()):
            if n.proc is not None and not n.alive():
                out.append((f"node{nid}", n.proc.returncode))
                n.start()
        for name, (p, _, _) in sorted(self.gws.items()):
            if p.proc is not None and not p.alive():
                out.append((name, p.proc.returncode))
                self.start_gateway(name, 30.0)
        return out

    def stop(self):
        problems = []
        for name in ("gw2",):
            p = self.gws[name][0]
            p.signal(signal.SIGTERM)
            rc = p.wait(10)
            if rc is None:
                problems.append(f"{p.name} ignored SIGTERM for 10s; SIGKILLed")
                p.signal(signal.SIGKILL)
                p.wait(5)
            elif rc != 0:
                problems.append(f"{p.name} exited with status {rc} after SIGTERM")
        problems += self.cl.stop()
        gw2 = self.gws["gw2"][0]
        problems += [f"{gw2.name}: {line}" for line in self._sanitizer(gw2)]
        return problems

    def _sanitizer(self, p):
        marks = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")
        try:
            with open(p.log_path, "r", encoding="utf-8", errors="replace") as f:
                return [line.strip() for line in f if any(m in line for m in marks)][:1]
        except OSError:
            return []

    def cleanup(self, keep=False):
        gw2 = self.gws["gw2"][0]
        if gw2.alive():
            gw2.signal(signal.SIGKILL)
            gw2.wait(5)
        self.cl.cleanup(keep)

    def dump_logs(self, lines=40):
        self.cl.dump_logs(lines)
        gw2 = self.gws["gw2"][0]
        print(f"==== tail of {gw2.name} {gw2.log_path}", flush=True)
        for line in gw2.tail(lines):
            print(f"  {line}")

    # ---- looking -----------------------------------------------------------------------
    def wait(self, pred, timeout, what):
        """cluster.poll: without the integration fixture's "gateway died" check (the nemesis
        kills gateways on purpose), and a failed assertion in pred counts as "not yet"."""
        return poll(pred, timeout, what, errors=WAIT_ERRORS + (AssertionError,))

    def node_view(self, nid):
        """(role, term, leader_id) of shard 0 as node nid sees it (its STATUS RPC)."""
        c = NodeClient(self.cl.nodes[nid].address, timeout=2.0)
        try:
            st = c.status()
        finally:
            c.close()
        shards = st.get(7, [])
        if not shards:
            return None
        sh = dec(shards[0])
        return one(sh, 4, b"").decode(), one(sh, 5), one(sh, 3)

    def find_leader(self):
        """The leader with the highest term among running nodes' own views, else the first
        gateway /status that names a live leader with quorum; None when neither knows."""
        best = None
        for nid, n in self.cl.nodes.items():
            if not n.alive():
                continue
            try:
                v = self.node_view(nid)
            except (OSError, ConnectionError, ValueError, AssertionError):
                continue
            if v and v[0] == "leader" and (best is None or v[1] > best[1]):
                best = (nid, v[1])
        if best:
            return best[0]
        for p, _, admin in self.gws.values():
            if not p.alive():
                continue
            try:
                st = request(admin, "GET", "/status", timeout=2).json()
            except (OSError, ValueError):
                continue
            lid = st.get("leader")
            if st.get("quorum") and lid in self.cl.nodes and self.cl.nodes[lid].alive():
                return lid
        return None

    def leader_id(self, timeout=30.0):
        return self.wait(self.find_leader, timeout, "a shard leader")

    def endpoint(self, name):
        """(uid, listening ports) of a daemon: nodeN -> RPC + raft, gwN -> HTTP + admin."""
        if name.startswith("node"):
            n = self.cl.nodes[int(name[4:])]
            return self.uids[name], [n.rpc_port, n.raft_port]
        _, port, admin = self.gws[name]
        return self.uids[name], [port, admin]
