"""Unit tests of the register linearizability checker (tests/chaos/linearize.py) on hand-made
histories: valid ones must pass, each kind of anomaly must be flagged and explained."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hwtest  # noqa: E402
import linearize  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)

K = "/k/seg.ts"


def w(v, t0, t1, client=0, key=K):
    return {"key": key, "op": "write", "value": v, "invoke": t0, "complete": t1, "client": client}


def d(t0, t1, client=0, key=K):
    return {"key": key, "op": "delete", "value": None, "invoke": t0, "complete": t1,
            "client": client}


def r(v, t0, t1, client=1, key=K):
    return {"key": key, "op": "read", "value": v, "invoke": t0, "complete": t1, "client": client}


def valid(h):
    res = linearize.check(h)
    assert res["valid"] is True, res
    return res


def invalid(h, kind=None):
    res = linearize.check(h)
    assert res["valid"] is False, res
    assert res["anomalies"], res
    if kind is not None:
        assert res["anomalies"][0]["kind"] == kind, res["anomalies"][0]
    return res["anomalies"][0]


@test
def empty_and_sequential_histories_are_valid():
    valid([])
    valid([r(None, 0, 1)])
    valid([w("a", 0, 1), r("a", 2, 3), w("b", 4, 5), r("b", 6, 7), d(8, 9), r(None, 10, 11)])


@test
def concurrent_writes_either_order():
    # a and b overlap: a read after both may see either, but two later reads must agree
    # with one order.
    valid([w("a", 0, 10, 0), w("b", 1, 9, 1), r("a", 11, 12)])
    valid([w("a", 0, 10, 0), w("b", 1, 9, 1), r("b", 11, 12)])
    valid([w("a", 0, 10, 0), w("b", 1, 9, 1), r("b", 11, 12), r("b", 13, 14)])


@test
def reads_overlapping_a_write_see_old_or_new():
    valid([w("a", 0, 1), w("b", 2, 10), r("a", 3, 4), r("b", 5, 6), r("b", 7, 8)])
    valid([w("a", 0, 1), w("b", 2, 10), r("a", 3, 11, 1), r("b", 4, 5, 2)])


@test
def uncompleted_write_seen_later_or_never():
    # A write with an unknown outcome (504/timeout) may take effect at any time after its
    # invocation, or never.
    valid([w("a", 0, 1), w("b", 2, None), r("a", 5, 6), r("b", 50, 51), r("b", 60, 61)])
    valid([w("a", 0, 1), w("b", 2, None), r("a", 5, 6), r("a", 50, 51)])
    valid([w("b", 2, None), r(None, 3, 4), r("b", 100, 101)])


@test
def delete_then_404():
    valid([w("a", 0, 1), d(2, 3), r(None, 4, 5), r(None, 6, 7)])
    valid([w("a", 0, 1), d(2, 6), r("a", 3, 4), r(None, 5, 7)])


@test
def unknown_outcome_reads_are_ignored():
    valid([w("a", 0, 1), r("zzz", 2, None)])


@test
def stale_read_is_flagged():
    a = invalid([w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)], "stale or out-of-order read")
    assert a["key"] == K
    assert a["op"]["value"] == "a"
    assert [c["value"] for c in a["could_have_seen"]] == ["b"], a["could_have_seen"]
    assert "stale" in linearize.describe(a)


@test
def read_of_a_value_never_written_is_flagged():
    a = invalid([w("a", 0, 1), r("x", 2, 3)], "read of a value never written")
    assert a["op"]["value"] == "x"


@test
def read_going_back_in_time_is_flagged():
    # b overlaps both reads, but the reads are sequential: new then old is impossible.
    a = invalid([w("a", 0, 1), w("b", 2, 20), r("b", 3, 4, 1), r("a", 5, 6, 2)])
    assert a["op"]["value"] == "a" and a["op"]["client"] == 2, a


@test
def read_of_a_deleted_object_is_flagged():
    a = invalid([w("a", 0, 1), d(2, 3), r("a", 4, 5)], "stale or out-of-order read")
    assert [c["op"] for c in a["could_have_seen"]] == ["delete"], a


@test
def missing_object_after_creation_is_flagged():
    invalid([w("a", 0, 1), r(None, 2, 3)], "404 for an object that exists")


@test
def keys_are_checked_separately():
    h = [w("a", 0, 1, key="/x.ts"), w("a", 0, 1, key="/y.m3u8"), r("a", 2, 3, key="/x.ts"),
         r(None, 2, 3, key="/y.m3u8")]
    res = linearize.check(h)
    assert res["valid"] is False
    assert res["keys"]["/x.ts"]["valid"] is True and res["keys"]["/y.m3u8"]["valid"] is False
    assert [a["key"] for a in res["anomalies"]] == ["/y.m3u8"]


@test
def explanation_is_a_small_window():
    # Lots of history before the stale read; the window holds only what explains it.
    h = []
    t = 0
    for i in range(50):
        h.append(w(f"v{i}", t, t + 1))
        h.append(r(f"v{i}", t + 2, t + 3))
        t += 4
    h.append(r("v48", t, t + 1))
    a = invalid(h)
    assert len(a["window"]) <= 4, a["window"]
    assert a["window"][0]["value"] == "v48", a["window"]  # where the stale value came from


@test
def impossible_reads_are_counted_one_by_one():
    h = [w("a", 0, 1), w("b", 2, 3), r("a", 4, 5), r("b", 6, 7), r("a", 8, 9), d(10, 11),
         r("b", 12, 13), r(None, 14, 15)]
    bad = linearize.impossible_reads(h)
    got = [(b["key"], b["read"]["value"], b["read"]["invoke"]) for b in bad]
    assert got == [(K, "a", 4), (K, "a", 8), (K, "b", 12)], bad
    assert bad[2]["could_have_seen"] == [None] and bad[2]["superseded_by"]["op"] == "delete"
    assert linearize.impossible_reads([w("a", 0, 10), r("a", 1, 2), r(None, 3, 4)]) == []


@test
def search_is_bounded():
    # Many concurrent writes and one impossible read: with a tiny limit the verdict is
    # "unknown", not a hang; with the default it is found invalid.
    h = [w(f"v{i}", 0, 100, i) for i in range(9)]
    h += [r("v1", 101, 102), r("v2", 103, 104), r("v1", 105, 106)]
    assert linearize.check(h, max_states=50)["valid"] == "unknown"
    assert linearize.check(h)["valid"] is False


@test
def long_valid_history_is_fast():
    # 4 clients, 2000 operations with overlaps: must be checked well within the unit budget.
    h = []
    t = 0.0
    for i in range(500):
        h.append(w(f"c0-{i}", t, t + 3.0, 0))
        h.append(r(f"c0-{i - 1}" if i else None, t + 0.5, t + 1.0, 1))
        h.append(r(f"c0-{i}", t + 3.5, t + 4.0, 2))
        h.append(r(f"c0-{i}", t + 3.2, t + 3.8, 3))
        t += 4.0
    res = valid(h)
    assert res["keys"][K]["ops"] == 2000


def u(v, t0, client=0, key=K):  # a write with an unknown outcome (504, timeout)
    return {"key": key, "op": "write", "value": v, "invoke": t0, "complete": None,
            "client": client}


def ud(t0, client=0, key=K):  # a delete with an unknown outcome
    return {"key": key, "op": "delete", "value": None, "invoke": t0, "complete": None,
            "client": client}


@test
def many_unknown_outcomes_keep_the_search_small():
    # Under faults many writes and deletes time out; those no read saw and the interchangeable
    # unknown deletes must not multiply the search (a fault run has hundreds of them).
    h = []
    t = 0.0
    for i in range(300):
        h.append(w(f"c0-{i}", t, t + 1.0, 0))
        h.append(w(f"c5-{i}", t + 0.1, t + 0.9, 5))  # tried last first: a dead end each time
        h.append(u(f"c1-{i}", t + 0.2, 1))      # never read: may be left out
        h.append(ud(t + 0.3, 2))                # some 404 below may be explained by it
        h.append(r(f"c5-{i}", t + 1.5, t + 2.0, 3))
        if i % 3 == 0:
            h.append(r(None, t + 1.6, t + 2.1, 4))  # only an unknown delete explains it
        t += 2.5
    res = linearize.check(h, max_states=5000)
    assert res["valid"] is True, res["keys"]
    assert res["keys"][K]["states"] < 2000, res["keys"]


@test
def an_unknown_write_that_was_read_is_placed():
    h = [w("a", 0, 1), u("b", 2), r("b", 3, 4), r("b", 5, 6), w("c", 7, 8), r("c", 9, 10)]
    valid(h)
    invalid(h + [r("b", 11, 12)], "stale or out-of-order read")


@test
def impossible_reads_match_the_definition_on_random_histories():
    # The O(log n) real-time test (used to prove anomalies without a search) against the
    # plain definition (_seen_candidates), on random overlapping histories.
    import random
    rnd = random.Random(7)
    for trial in range(200):
        h = []
        for i in range(rnd.randrange(1, 25)):
            t0 = rnd.uniform(0, 20)
            t1 = None if rnd.random() < 0.15 else t0 + rnd.uniform(0, 4)
            kind = rnd.choice(["write", "write", "delete", "read", "read", "read"])
            v = f"v{rnd.randrange(6)}" if kind == "read" else f"v{i}"
            if kind == "read" and rnd.random() < 0.3:
                v = None
            if kind == "read" and t1 is None:
                t1 = t0 + 1
            h.append({"key": K, "op": kind, "value": None if kind == "delete" else v,
                      "invoke": t0, "complete": t1})
        ops = linearize._norm(h).get(K, [])
        rt = linearize._RealTime(ops)
        for o in ops:
            if o["op"] != "read":
                continue
            cands, init_ok = linearize._seen_candidates(ops, o, None)
            slow = o["value"] in [c["value"] for c in cands] + ([None] if init_ok else [])
            assert rt.possible(o, None) == slow, (trial, o, ops)
        if linearize.impossible_reads(h):
            assert linearize.check(h)["valid"] is False, h


hwtest.main(TESTS)
