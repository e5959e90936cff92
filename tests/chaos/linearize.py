"""Linearizability checker for a register per key (Python 3 stdlib only).

A history is a list of operations, each a dict:

    {"key": "/a/seg1.ts", "op": "write" | "delete" | "read",
     "value": "c3-17" | None,      # write: the value written; read: the value read (None = 404)
     "invoke": 12.5,               # time.monotonic() just before the request was sent
     "complete": 12.7 | None,      # when the answer arrived; None = outcome unknown (504,
                                   # timeout, connection lost: it may take effect at any time
                                   # after its invocation, or never)
     "client": 3, "status": 201, ...}   # anything else is carried into the report as is

`delete` writes None ("absent"). Reads without a result (a 503, a timeout) carry no information
and must be left out by the caller; so must writes known not to have taken effect (503 with
`committed:false`, 412). `check(history)` drops unknown-outcome reads itself, to be safe.

The check is done per key (a register history is linearizable iff every key's sub-history is:
P-compositionality, Herlihy & Wing), each with the Wing & Gong search as refined by Lowe (and as
Knossos and Porcupine do it): a depth-first search over "which operations are linearized so far"
with the register's value, memoising every (linearized-set bitmask, value) already explored. An
operation may be linearized next when no other pending operation completed before it was
invoked. Completed operations must all be linearized; unknown-outcome ones may be left out. A read
whose value is the register's current value is linearized at once (that never loses a solution).
The search is bounded by `max_states` per key; past it the key's verdict is "unknown".
Before any search, a read whose value no write it could have seen by real-time order wrote
(impossible_reads) proves the key non-linearizable at once; unknown-outcome writes no read saw
are left out, and unknown-outcome deletes, being interchangeable, are tried earliest first with
the memo keeping the state that used the fewest: fault runs with hundreds of timeouts stay a
near-linear search.

check() returns {"valid": True | False | "unknown", "keys": {key: result}, "anomalies": [...]},
where each anomaly names the key, the read (or other operation) that cannot be placed, the values
the register could hold at that point, and the writes that read could have seen (with the ops of
the smallest time window that explains it).
"""

import bisect

INF = float("inf")


def _norm(history):
    """Per-key lists of operations (dicts copied, complete None -> INF), reads without a result
    dropped."""
    per_key = {}
    for i, o in enumerate(history):
        if o.get("op") not in ("write", "delete", "read"):
            raise ValueError(f"operation {i}: unknown op {o.get('op')!r}")
        if o["op"] == "read" and o.get("complete") is None:
            continue  # a read with no answer tells nothing
        op = dict(o)
        op["index"] = i
        if op["op"] == "delete":
            op["value"] = None
        c = op.get("complete")
        op["_c"] = INF if c is None else float(c)
        op["_i"] = float(op["invoke"])
        if op["_c"] < op["_i"]:
            raise ValueError(f"operation {i}: completes before it is invoked")
        per_key.setdefault(op["key"], []).append(op)
    for ops in per_key.values():
        ops.sort(key=lambda p: (p["_i"], p["_c"]))
    return per_key


def _public(op):
    return {k: v for k, v in op.items() if not k.startswith("_")}


def _seen_candidates(ops, r, initial):
    """Writes (incl. deletes) read r could legally have returned under real-time order: those
    invoked before r completed and not superseded by a completed write that lies entirely
    between them and r's invocation. Also whether the initial value is still possible."""
    writes = [w for w in ops if w["op"] != "read" and w["_i"] <= r["_c"]]
    # w is superseded iff some write invoked after w completed had completed before r began:
    # compare with the latest invocation among writes completed before r began.
    last = max((w["_i"] for w in writes if w["_c"] < r["_i"]), default=None)
    out = [w for w in writes if last is None or not w["_c"] < last]
    return out, last is None


class _RealTime:
    """_seen_candidates' question "could read r return its value?" in O(log n) per read."""

    def __init__(self, ops):
        ws = [w for w in ops if w["op"] != "read"]
        by_c = sorted(ws, key=lambda w: w["_c"])
        self.c_sorted = [w["_c"] for w in by_c]
        self.max_i = []  # latest invocation among the first k writes by completion
        for w in by_c:
            self.max_i.append(max(w["_i"], self.max_i[-1]) if self.max_i else w["_i"])
        self.by_val = {}  # value -> (invocations ascending, running max of completions)
        for w in sorted(ws, key=lambda w: w["_i"]):
            inv, cmax = self.by_val.setdefault(w["value"], ([], []))
            inv.append(w["_i"])
            cmax.append(max(w["_c"], cmax[-1]) if cmax else w["_c"])

    def possible(self, r, initial):
        k = bisect.bisect_left(self.c_sorted, r["_i"])  # writes completed before r began
        last = self.max_i[k - 1] if k else None
        if last is None and r["value"] == initial:
            return True
        inv, cmax = self.by_val.get(r["value"], ((), ()))
        j = bisect.bisect_right(inv, r["_c"])  # writes of that value invoked before r ended
        return j > 0 and (last is None or cmax[j - 1] >= last)


def impossible_reads(history, initial=None):
    """Reads that no linearization can explain on their own (the value read is not among the
    writes the read could have seen by real-time order): a lower bound on the anomalies, cheap
    enough to count over a whole history. Returns a list of {"key", "read", "could_have_seen"
    (values), "superseded_by" (the latest write completed before the read began, or None)}."""
    bad = []
    for key, ops in _norm(history).items():
        rt = _RealTime(ops)
        for r in ops:
            if r["op"] != "read" or rt.possible(r, initial):
                continue
            cands, initial_ok = _seen_candidates(ops, r, initial)
            vals = [w["value"] for w in cands] + ([initial] if initial_ok else [])
            if r["value"] in vals:
                continue
            done = [w for w in ops if w["op"] != "read" and w["_c"] < r["_i"]]
            last = max(done, key=lambda w: w["_i"]) if done else None
            bad.append({"key": key, "read": _public(r), "could_have_seen": vals,
                        "superseded_by": _public(last) if last else None})
    return bad


def _explain(key, ops, blocked, states, initial):
    """The smallest explanation we can give for a read (or op) that cannot be placed."""
    r = blocked
    cands, initial_ok = _seen_candidates(ops, r, initial) if r["op"] == "read" else ([], False)
    lo = min([w["_i"] for w in cands] + [r["_i"]])
    window = [_public(o) for o in ops if o["_c"] >= lo and o["_i"] <= r["_c"]]
    src = [o for o in ops if o["op"] == "write" and o["value"] == r["value"] and o["_c"] < lo]
    if r["op"] == "read" and src:  # where the value read came from, when outside the window
        window.insert(0, _public(src[-1]))
    written = {w["value"] for w in ops if w["op"] != "read"}
    if r["op"] == "read" and r["value"] is not None and r["value"] not in written:
        kind = "read of a value never written"
    elif r["op"] == "read" and r["value"] is None:
        kind = "404 for an object that exists"
    elif r["op"] == "read":
        kind = "stale or out-of-order read"
    else:
        kind = "operation cannot be ordered"
    could = [{"value": w["value"], "op": w["op"], "invoke": w["_i"],
              "complete": None if w["_c"] == INF else w["_c"], "client": w.get("client")}
             for w in cands]
    if initial_ok:
        could.insert(0, {"value": initial, "op": "initial"})
    return {"key": key, "kind": kind, "op": _public(r),
            "register_could_hold": sorted(states, key=lambda v: (v is not None, str(v))),
            "could_have_seen": could, "window": window}


def _prune(ops):
    """The operations the search needs: an unknown-outcome write (or delete) whose value no
    read returned can always be left out (writes are blind: it can only change the register
    to a value nobody saw), so it is dropped; this keeps the search narrow under faults, where
    many writes time out."""
    read_vals = {o["value"] for o in ops if o["op"] == "read"}
    return [o for o in ops if o["op"] == "read" or o["_c"] != INF or o["value"] in read_vals]


def _first_impossible(ops, initial):
    """The first read no order could explain by real time alone (see impossible_reads), with
    the values it could have seen: a proof of non-linearizability found without any search
    (the write just before a read in any linearization is one of its candidates)."""
    rt = _RealTime(ops)
    for r in ops:
        if r["op"] == "read" and not rt.possible(r, initial):
            cands, initial_ok = _seen_candidates(ops, r, initial)
            return r, {w["value"] for w in cands} | ({initial} if initial_ok else set())
    return None


def check_key(ops, initial=None, max_states=200000):
    """Check one key's operations (as produced by _norm). Returns {"valid": True | False |
    "unknown", "states": explored, "anomaly": {...} or None}."""
    full = ops
    written = {o["value"] for o in ops if o["op"] != "read"} | {initial}
    for o in ops:  # cheap and exact: a read of something no one ever wrote
        if o["op"] == "read" and o["value"] not in written:
            return {"valid": False, "states": 0, "anomaly": _explain(None, ops, o, [], initial)}
    bad = _first_impossible(ops, initial)
    if bad is not None:
        return {"valid": False, "states": 0,
                "anomaly": _explain(None, ops, bad[0], bad[1], initial)}
    ops = _prune(ops)
    required = 0
    for i, o in enumerate(ops):
        if o["_c"] != INF:
            required |= 1 << i
    ctx = (ops, required, [i for i, o in enumerate(ops) if o["_c"] == INF])
    # Unknown-outcome deletes are used as a prefix (see _candidates): a state that used fewer
    # of them dominates one that used more, so the memo keeps the fewest per (rest, value).
    udel = 0
    for i, o in enumerate(ops):
        if o["op"] == "delete" and o["_c"] == INF:
            udel |= 1 << i
    seen = {}
    explored = 0
    best = (-1, None, set())  # (linearized count, blocking op, register values seen there)
    stack = [(0, initial)]
    while stack:
        mask, state = stack.pop()
        mask, state = _absorb_reads(ctx, mask, state)
        if (mask & required) == required:
            return {"valid": True, "states": explored, "anomaly": None}
        memo, used = (mask & ~udel, state), bin(mask & udel).count("1")
        if seen.get(memo, used + 1) <= used:
            continue
        seen[memo] = used
        explored += 1
        if explored > max_states:
            return {"valid": "unknown", "states": explored, "anomaly": None}
        cands, first_blocked = _candidates(ctx, mask, state)
        done = bin(mask & required).count("1")
        if done > best[0]:
            best = (done, first_blocked, {state})
        elif done == best[0] and first_blocked is best[1]:
            best[2].add(state)
        for i in cands:  # writes and deletes (matching reads were absorbed)
            stack.append((mask | (1 << i), ops[i]["value"]))
    blocked = best[1] if best[1] is not None else next(
        o for i, o in enumerate(ops) if o["_c"] != INF)
    return {"valid": False, "states": explored,
            "anomaly": _explain(None, full, blocked, best[2], initial)}


def _frontier(ctx, mask):
    """Indices of pending ops that may be linearized next (invoked no later than the earliest
    completion among pending ops). The scan starts at the first pending completed op: every
    pending unknown-outcome op before it was invoked earlier still, so it may go next too."""
    ops, required, unknown = ctx
    pending = required & ~mask
    lo = (pending & -pending).bit_length() - 1 if pending else len(ops)
    out = [i for i in unknown if i < lo and not mask >> i & 1]
    m = INF
    for i in range(lo, len(ops)):
        o = ops[i]
        if mask >> i & 1:
            continue
        if o["_i"] > m:
            break  # sorted by invocation: no later op can be next
        out.append(i)
        if o["_c"] < m:
            m = o["_c"]
    return [i for i in out if ops[i]["_i"] <= m]


def _absorb_reads(ctx, mask, state):
    """Linearize every read that may go next and returns the current value (repeatedly)."""
    ops = ctx[0]
    while True:
        took = False
        for i in _frontier(ctx, mask):
            o = ops[i]
            if o["op"] == "read" and o["value"] == state:
                mask |= 1 << i
                took = True
                break
        if not took:
            return mask, state


def _candidates(ctx, mask, state):
    """Writes that may go next, and the first read of the frontier that cannot (by completion
    time: the op a failed search is stuck on)."""
    ops = ctx[0]
    front = _frontier(ctx, mask)
    writes = []
    first_unknown_delete = True
    for i in front:  # ascending: the earliest-invoked unknown-outcome delete comes first
        o = ops[i]
        if o["op"] == "delete" and o["_c"] == INF:
            # Unknown-outcome deletes are interchangeable (same value, no deadline): trying
            # the earliest pending one stands for all, so the ones used are always a prefix.
            if not first_unknown_delete:
                continue
            first_unknown_delete = False
        if o["op"] != "read":
            writes.append(i)
    reads = [ops[i] for i in front if ops[i]["op"] == "read" and ops[i]["value"] != state]
    blocked = min(reads, key=lambda o: o["_c"]) if reads else None
    if blocked is None:
        pend = [ops[i] for i in front if ops[i]["_c"] != INF]
        blocked = min(pend, key=lambda o: o["_c"]) if pend else None
    # The stack pops the earliest-completing write first.
    writes.sort(key=lambda i: ops[i]["_c"], reverse=True)
    return writes, blocked


def check(history, initial=None, max_states=200000):
    """Check a whole history (all keys). See the module docstring for the result."""
    per_key = _norm(history)
    keys = {}
    anomalies = []
    verdict = True
    for key in sorted(per_key):
        res = check_key(per_key[key], initial=initial, max_states=max_states)
        if res["anomaly"] is not None:
            res["anomaly"]["key"] = key
            anomalies.append(res["anomaly"])
        keys[key] = {"valid": res["valid"], "ops": len(per_key[key]), "states": res["states"]}
        if res["valid"] is False:
            verdict = False
        elif res["valid"] == "unknown" and verdict is True:
            verdict = "unknown"
    return {"valid": verdict, "keys": keys, "anomalies": anomalies}


def describe(anomaly):
    """One human-readable line for an anomaly."""
    r = anomaly["op"]
    done = "?" if r.get("complete") is None else f"{r['complete']:.3f}"
    could = []
    cands = anomaly["could_have_seen"]
    for c in cands[-8:]:  # the latest; unknown-outcome writes stay candidates for ever
        who = "" if c["op"] == "initial" else f" by client {c.get('client')}"
        could.append(f"{c['value']!r} ({c['op']}{who})")
    if len(cands) > 8:
        could.insert(0, f"{len(cands) - 8} earlier ones")
    return (f"{anomaly['key']}: {anomaly['kind']}: client {r.get('client')} {r['op']} "
            f"[{r['invoke']:.3f}, {done}] got {r.get('value')!r} via {r.get('gateway', '?')}; "
            f"could have seen: {', '.join(could) or 'nothing'}")
