#!/usr/bin/env python3
"""What the clients saw during each fault of a chaos history (tests/chaos/workload.py's JSON):
per fault, the writes and reads whose interval overlaps it, split by the gateway that was cut
off or killed and the others: how many, how many succeeded, and the longest. Issue 9's "writes
find a way": writes through a gateway cut off from the leader must commit (relayed through a
follower) or fail fast, never time out one after another.

    python3 tests/chaos/faultops.py build-test/chaos/history-*.json
"""
import json
import sys

OK = {"write": (201, 204), "read": (200, 404), "delete": (204, 404)}


def summarize(path):
    d = json.load(open(path))
    print(f"{path}:")
    for ev in d["nemesis"]:
        start, end = ev["start"], ev.get("end", ev["start"])
        rows = {}
        for op in d["history"]:
            if op.get("complete") is None or op["complete"] < start or op["invoke"] > end:
                continue
            kind = op["op"].rstrip("?")
            side = "cut" if op.get("gateway") == (ev.get("target") or "").split(" ")[0] else "other"
            r = rows.setdefault((kind, side), [0, 0, 0.0])
            r[0] += 1
            r[1] += op.get("status") in OK.get(kind, ())
            r[2] = max(r[2], op["complete"] - op["invoke"])
        desc = ", ".join(f"{k}/{s} {n} ({ok} ok, max {mx:.2f}s)"
                         for (k, s), (n, ok, mx) in sorted(rows.items()))
        print(f"  {ev['fault']:<13} {ev.get('target', ''):<6} {end - start:4.1f}s: {desc}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        summarize(p)
