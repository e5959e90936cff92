"""Network faults on loopback for tests: drop the packets one uid sends to some ports (Python 3
stdlib only; needs root and iptables with the `owner` match).

Every daemon of a test cluster runs as its own system user (ensure_users() creates hwchaos1..N,
run_as() wraps an argv with setpriv); a cut is an iptables rule in a chain of our own, jumped
to from OUTPUT, that drops TCP packets a given uid sends to 127.0.0.1:<port>:

    nf = NetFault()                     # chain HWCHAOS-<pid>; leftovers of dead runs removed
    nf.cut(leader_uid, peer_ports)      # leader's packets to those ports are dropped
    nf.partition((a_uid, a_ports), (b_uid, b_ports))   # both ways
    nf.heal()                           # every cut removed (the chain stays)
    nf.close()                          # chain and OUTPUT jump removed (also at exit)

On loopback a packet's owner is the socket that sent it, so to cut A from B both ways drop A's
packets to B's listening ports and B's packets to A's listening ports: every connection between
them was dialled by one of them to a port of the other, and nothing the dialler sends arrives.
A one-way cut is a single cut(): e.g. a raft leader's appends to a follower's raft port are
lost while the follower's own connection to the leader still delivers (its TCP ACKs come from
the leader's socket but go to an ephemeral port, which no rule names).

"The leader cut off from its peers for 5 s" with a tests/integration/cluster.py Cluster:

    uids = chaoscluster.give_own_uids(cl, [(f"node{i}", n) for i, n in cl.nodes.items()]
                                      + [("gw1", cl.gateway)])     # before cl.start()
    ep = lambda i: (uids[f"node{i}"], [cl.nodes[i].rpc_port, cl.nodes[i].raft_port])
    lid = cl.leader_id()
    for peer in (i for i in cl.nodes if i != lid):
        nf.partition(ep(lid), ep(peer))
    time.sleep(5); nf.heal()

Several runs may share the machine: each NetFault has its own chain, rules also name the
ports (picked free per run), and stale chains are only those whose pid is gone.
"""
import atexit
import ctypes
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess

CHAIN_PREFIX = "HWCHAOS"
USER_PREFIX = "hwchaos"
GROUP = "hwchaos"
BACKENDS = ("iptables", "iptables-nft", "iptables-legacy")
_SBIN = ("/usr/sbin", "/sbin")


class NetFaultError(RuntimeError):
    pass


def _which(name):
    path = shutil.which(name)
    if path:
        return path
    for d in _SBIN:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def _run(argv, check=True):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise NetFaultError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def backends():
    """Working iptables binaries, preferred first (`iptables`, then -nft, then -legacy)."""
    out = []
    for name in BACKENDS:
        path = _which(name)
        if path and path not in out and _run([path, "-w", "-S", "OUTPUT"], False).returncode == 0:
            out.append(path)
    return out


def available():
    """None when cuts can be made here, else why not (not root, no iptables, no owner match)."""
    if os.geteuid() != 0:
        return "not root"
    if not _which("setpriv"):
        return "no setpriv"
    bs = backends()
    if not bs:
        return "no working iptables (tried " + ", ".join(BACKENDS) + ")"
    chain = f"{CHAIN_PREFIX}-probe{os.getpid()}"
    ipt = bs[0]
    try:
        _run([ipt, "-w", "-N", chain])
        r = _run([ipt, "-w", "-A", chain, "-p", "tcp", "-d", "127.0.0.1", "--dport", "9",
                  "-m", "owner", "--uid-owner", "65534", "-j", "DROP"], False)
        if r.returncode != 0:
            return f"{ipt}: owner match unusable: {r.stderr.strip()}"
    finally:
        _run([ipt, "-w", "-F", chain], False)
        _run([ipt, "-w", "-X", chain], False)
    return None


def ensure_users(n, prefix=USER_PREFIX, group=GROUP):
    """System users prefix1..prefixN in `group` (created when missing). Returns (uids, gid)."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        _run([_which("groupadd") or "groupadd", "--system", group])
        gid = grp.getgrnam(group).gr_gid
    uids = []
    for i in range(1, n + 1):
        name = f"{prefix}{i}"
        try:
            uids.append(pwd.getpwnam(name).pw_uid)
            continue
        except KeyError:
            pass
        _run([_which("useradd") or "useradd", "--system", "--no-create-home", "--home-dir",
              "/nonexistent", "--shell", "/usr/sbin/nologin", "--gid", group, name])
        uids.append(pwd.getpwnam(name).pw_uid)
    return uids, gid


def run_as(uid, gid, argv):
    """argv run as uid:gid (no supplementary groups) with SIGKILL on parent death (setpriv
    sets it after the uid change, which clears the one a preexec_fn set)."""
    return [_which("setpriv"), f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
            "--pdeathsig", "KILL", "--"] + list(argv)


def preexec_as(uid, gid):
    """A preexec_fn for subprocess that becomes uid:gid, then asks for SIGKILL on parent
    death (in that order: a credential change clears the parent-death signal)."""
    def fn():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass
    return fn


def _chains(ipt):
    r = _run([ipt, "-w", "-S"], False)
    return re.findall(rf"^-N ({CHAIN_PREFIX}(?:-\S+)?)$", r.stdout, re.M)


def _remove_chain(ipt, chain):
    while _run([ipt, "-w", "-D", "OUTPUT", "-j", chain], False).returncode == 0:
        pass
    _run([ipt, "-w", "-F", chain], False)
    _run([ipt, "-w", "-X", chain], False)


def cleanup_stale():
    """Remove our chains left by runs that are gone (HWCHAOS, HWCHAOS-<dead pid>), in every
    iptables backend. Returns the chains removed."""
    removed = []
    for ipt in backends():
        for chain in _chains(ipt):
            m = re.fullmatch(rf"{CHAIN_PREFIX}-(\d+)", chain)
            if m:
                try:
                    os.kill(int(m.group(1)), 0)
                    continue  # that run is alive
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue
            elif chain != CHAIN_PREFIX:
                continue  # a probe of a live available() call, or not ours
            _remove_chain(ipt, chain)
            removed.append(chain)
    return removed


class NetFault:
    def __init__(self, chain=None, ipt=None):
        why = available()
        if why:
            raise NetFaultError(f"network faults unavailable: {why}")
        self.ipt = ipt or backends()[0]
        self.chain = chain or f"{CHAIN_PREFIX}-{os.getpid()}"
        self.removed_stale = cleanup_stale()
        _remove_chain(self.ipt, self.chain)
        _run([self.ipt, "-w", "-N", self.chain])
        _run([self.ipt, "-w", "-I", "OUTPUT", "1", "-j", self.chain])
        self.cuts = []
        self.closed = False
        atexit.register(self.close)

    def _ipt(self, *args):
        return _run([self.ipt, "-w"] + list(args))

    def cut(self, a_uid, b_ports):
        """Drop every TCP packet processes of uid a_uid send to 127.0.0.1 on b_ports."""
        for port in b_ports:
            self._ipt("-A", self.chain, "-p", "tcp", "-d", "127.0.0.1", "--dport", str(port),
                      "-m", "owner", "--uid-owner", str(a_uid), "-j", "DROP")
            self.cuts.append((a_uid, port))

    def partition(self, a, b):
        """Cut a = (uid, ports) and b = (uid, ports) from each other, both ways."""
        self.cut(a[0], b[1])
        self.cut(b[0], a[1])

    def heal(self):
        """Remove every cut."""
        if not self.closed:
            self._ipt("-F", self.chain)
        self.cuts = []

    def rules(self):
        return self._ipt("-S", self.chain).stdout.splitlines()

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.cuts = []
        _remove_chain(self.ipt, self.chain)
