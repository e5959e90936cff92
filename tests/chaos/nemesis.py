"""Faults for the chaos workload, one at a time on a schedule (Python 3 stdlib only).

| fault | what |
| --- | --- |
| `kill` | SIGKILL of a random node, restart from its data dir after --fault-seconds |
| `kill-leader` | the same for the current shard leader (the nodes' STATUS, highest term) |
| `stop` | SIGSTOP of a random node for a random 1..--stop-max (10) s, then SIGCONT |
| `kill-gateway` | SIGKILL of a random gateway, restart on the same ports |
| `part-leader` | the leader cut off from the other nodes both ways (gateways still reach it) |
| `part-follower` | a follower cut off from its peers both ways (gateways still reach it) |
| `part-gateway` | one gateway cut off from the leader only, both ways |
| `part-oneway` | the leader's packets to one follower dropped (the follower's still arrive) |
| `mixed` | all of the above in turn (kill-leader, stop, part-leader, kill-gateway, ...) |

Partitions need netfault (root, iptables owner match, daemons as their own uids). After every
fault the schedule waits until a leader is known again (bounded), then --nemesis-gap seconds.
Each fault is recorded as {"fault", "start", "end", "target", ...} with time.monotonic() times.
"""
import signal
import time

KILLS = ["kill", "kill-leader", "stop", "kill-gateway"]
PARTITIONS = ["part-leader", "part-follower", "part-gateway", "part-oneway"]
MIXED = ["kill-leader", "stop", "part-leader", "kill-gateway", "part-follower", "part-oneway",
         "part-gateway", "kill"]
CHOICES = ["none", "mixed"] + KILLS + PARTITIONS


def needs_netfault(mode):
    return mode in PARTITIONS or mode == "mixed"


class Nemesis:
    def __init__(self, cc, mode, nf, rnd, fault_s=3.0, stop_max=10.0, gap_s=3.0, log=print):
        """cc: ChaosCluster; nf: netfault.NetFault or None (then mixed skips partitions)."""
        self.cc, self.mode, self.nf, self.rnd = cc, mode, nf, rnd
        self.fault_s, self.stop_max, self.gap_s = fault_s, stop_max, gap_s
        self.log = log
        self.events = []
        self.skipped = []
        self.crashes = []  # daemons found dead between faults (then restarted)
        self.busy = True  # until the last fault is healed
        order = MIXED if mode == "mixed" else [mode]
        self.order = [f for f in order if nf is not None or f not in PARTITIONS]

    def run(self, stop_at, done):
        """Inject faults until the next one would not end before stop_at; then stay alive
        until `done` (a threading.Event) is set: daemons restarted from this thread get
        SIGKILL when it exits (PR_SET_PDEATHSIG follows the thread)."""
        try:
            self._schedule(stop_at)
        finally:
            self.busy = False
        done.wait()

    def _schedule(self, stop_at):
        t_next = time.monotonic() + min(2.0, self.gap_s)
        i = 0
        while True:
            kind = self.order[i % len(self.order)]
            dur = self.rnd.uniform(1.0, self.stop_max) if kind == "stop" else self.fault_s
            if t_next + dur > stop_at:
                break
            while time.monotonic() < t_next:
                time.sleep(min(0.1, t_next - time.monotonic()))
            ev = self.inject(kind, dur)
            if ev is not None:
                self.events.append(ev)
            for name, rc in self.cc.revive_dead():
                self.crashes.append({"daemon": name, "status": rc, "seen": time.monotonic(),
                                     "after": kind})
                self.log(f"nemesis: DAEMON DIED {name} (exit status {rc}) by the end of "
                         f"{kind}; restarted")
            try:
                self.cc.leader_id(30.0)
            except AssertionError as e:
                self.log(f"nemesis: no leader 30s after {kind}: {e}")
            t_next = time.monotonic() + self.gap_s
            i += 1

    def inject(self, kind, dur):
        ev = {"fault": kind, "start": time.monotonic()}
        try:
            getattr(self, "_" + kind.replace("-", "_"))(ev, dur)
        except (AssertionError, OSError) as e:
            self.skipped.append({"fault": kind, "why": str(e)})
            self.log(f"nemesis: {kind} not done: {e}")
            if self.nf is not None:
                self.nf.heal()
            return None
        ev["end"] = time.monotonic()
        self.log(f"nemesis: {kind} {ev.get('target')} for {ev['end'] - ev['start']:.1f}s")
        return ev

    def _leader(self):
        return self.cc.leader_id(10.0)

    def _follower(self, lid):
        return self.rnd.choice([n for n in sorted(self.cc.cl.nodes) if n != lid])

    def _kill_node(self, ev, nid, dur):
        ev["target"] = f"node{nid}"
        self.cc.kill_node(nid)
        time.sleep(dur)
        self.cc.start_node(nid)

    def _kill(self, ev, dur):
        self._kill_node(ev, self.rnd.choice(sorted(self.cc.cl.nodes)), dur)

    def _kill_leader(self, ev, dur):
        self._kill_node(ev, self._leader(), dur)

    def _stop(self, ev, dur):
        nid = self.rnd.choice(sorted(self.cc.cl.nodes))
        ev["target"] = f"node{nid}"
        n = self.cc.cl.nodes[nid]
        n.signal(signal.SIGSTOP)
        try:
            time.sleep(dur)
        finally:
            n.signal(signal.SIGCONT)

    def _kill_gateway(self, ev, dur):
        name = self.rnd.choice(sorted(self.cc.gws))
        ev["target"] = name
        self.cc.kill_gateway(name)
        time.sleep(dur)
        self.cc.start_gateway(name, 30.0)

    def _partition(self, ev, pairs, dur, oneway=False):
        ep = self.cc.endpoint
        for a, b in pairs:
            if oneway:
                self.nf.cut(ep(a)[0], ep(b)[1])
            else:
                self.nf.partition(ep(a), ep(b))
        ev["cuts"] = [f"{a}{' -> ' if oneway else ' <-> '}{b}" for a, b in pairs]
        ev["rules"] = len(self.nf.cuts)
        try:
            time.sleep(dur)
        finally:
            self.nf.heal()

    def _part_leader(self, ev, dur):
        lid = self._leader()
        ev["target"] = f"node{lid}"
        others = [n for n in sorted(self.cc.cl.nodes) if n != lid]
        self._partition(ev, [(f"node{lid}", f"node{n}") for n in others], dur)

    def _part_follower(self, ev, dur):
        lid = self._leader()
        fid = self._follower(lid)
        ev["target"] = f"node{fid}"
        others = [n for n in sorted(self.cc.cl.nodes) if n != fid]
        self._partition(ev, [(f"node{fid}", f"node{n}") for n in others], dur)

    def _part_gateway(self, ev, dur):
        lid = self._leader()
        gw = self.rnd.choice(sorted(self.cc.gws))
        ev["target"] = f"{gw} from node{lid}"
        self._partition(ev, [(gw, f"node{lid}")], dur)

    def _part_oneway(self, ev, dur):
        lid = self._leader()
        fid = self._follower(lid)
        ev["target"] = f"node{lid} -> node{fid}"
        self._partition(ev, [(f"node{lid}", f"node{fid}")], dur, oneway=True)
