#!/usr/bin/env python3
"""Issue 11, LL-HLS origin rules over real daemons: 3 nodes + 2 caching gateways on loopback.

The encoder writes playlists through gateway A; players read through gateway B (and A). Each test
is a rule of draft-pantos-hls-rfc8216bis §6.2.5 a player or CDN would notice: a blocking playlist
reload is answered by the commit of the playlist that satisfies it (not before, not by timeout),
a part index past a segment's last part means part 0 of the next, requests too far ahead are 400
at once, an unsatisfied one is 503 after three target durations, ENDLIST and an encoder restart
answer held requests, delta updates skip what CAN-SKIP-UNTIL allows, and blocking answers carry
cache lifetimes and validators a CDN can use. Before issue 11 every such request was answered at
once with whatever playlist was stored."""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwtest  # noqa: E402
from cluster import TwoGateways, poll, request  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)
GW_ARGS = ["--threads", "2", "--cache-size", "64M"]
PT = 0.2  # part target, s
PARTS = 5  # parts per 1 s segment


def playlist(msq, complete, parts_open, target=1, skip_until=None, endlist=False,
             parts_kept=3, hint=True):
    """A media playlist as an LL-HLS packager writes it: `complete` segments from media sequence
    msq (the newest parts_kept with their parts listed), then parts_open parts of the next."""
    ctl = f"CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * PT:.1f}"
    if skip_until:
        ctl += f",CAN-SKIP-UNTIL={skip_until:.1f}"
    lines = ["#EXTM3U", "#EXT-X-VERSION:9", f"#EXT-X-TARGETDURATION:{target}",
             f"#EXT-X-SERVER-CONTROL:{ctl}", f"#EXT-X-PART-INF:PART-TARGET={PT}",
             f"#EXT-X-MEDIA-SEQUENCE:{msq}", '#EXT-X-MAP:URI="init.mp4"']
    for i in range(msq, msq + complete):
        if i >= msq + complete - parts_kept:
            for p in range(PARTS):
                lines.append(f'#EXT-X-PART:DURATION={PT},URI="s{i}.{p}.m4s"'
                             + (",INDEPENDENT=YES" if p == 0 else ""))
        lines += ["#EXTINF:1.000,", f"s{i}.m4s"]
    nxt = msq + complete
    if not endlist:
        for p in range(parts_open):
            lines.append(f'#EXT-X-PART:DURATION={PT},URI="s{nxt}.{p}.m4s"')
        if hint:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s{nxt}.{parts_open}.m4s"')
    else:
        lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def put_ok(cl, key, body):
    r = cl.a("PUT", key, body)
    assert r.status in (201, 204), f"PUT {key}: {r}"


class Held:
    """A request in a thread: started now, its answer (and when it came) later."""

    def __init__(self, port, path, headers=None):
        self.t0 = time.monotonic()
        self.resp = None
        self.err = None
        self.at = None
        self.th = threading.Thread(target=self._run, args=(port, path, headers), daemon=True)
        self.th.start()

    def _run(self, port, path, headers):
        try:
            self.resp = request(port, "GET", path, headers=headers, timeout=30)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.err = e
        self.at = time.monotonic()

    def done(self):
        return not self.th.is_alive()

    def wait(self, timeout=15):
        self.th.join(timeout)
        assert not self.th.is_alive(), "request still not answered"
        assert self.err is None, f"request failed: {self.err}"
        return self.resp


def held_count(cl, admin):
    r = request(admin, "GET", "/metrics", timeout=5)
    for line in r.body.decode().splitlines():
        if line.startswith("headwater_gateway_hls_held_total "):
            return int(float(line.split()[1]))
    raise AssertionError("headwater_gateway_hls_held_total not in /metrics")


def wait_parked(cl, admin, before, n=1):
    """The gateway says it parked n more requests (its counter), so they really are held."""
    poll(lambda: held_count(cl, admin) >= before + n, 10, f"{n} request(s) parked")


@test
def a_request_for_the_next_part_is_released_by_the_commit_that_has_it(cl):
    key = "/live/ll1/v.m3u8"
    put_ok(cl, key, playlist(10, 3, 2))  # segments 10-12, parts 0-1 of 13
    for port, admin in ((cl.b_port, cl.b_admin), (cl.gw_port, cl.admin_port)):
        before = held_count(cl, admin)
        h = Held(port, f"{key}?_HLS_msn=13&_HLS_part=2")
        wait_parked(cl, admin, before)
        assert not h.done(), f"answered before the part existed: {h.resp}"
        new = playlist(10, 3, 3)
        t_put = time.monotonic()
        put_ok(cl, key, new)
        r = h.wait()
        assert r.status == 200 and r.body == new, f"held request got {r}"
        assert h.at >= t_put, "answered before the playlist was written"
        assert h.at - t_put < 2.5, f"released {h.at - t_put:.2f}s after the commit (not woken)"
        put_ok(cl, key, playlist(10, 3, 2))  # back, for the next gateway


@test
def a_request_already_satisfied_is_answered_at_once(cl):
    key = "/live/ll2/v.m3u8"
    body = playlist(20, 4, 3)
    put_ok(cl, key, body)
    for q in ("_HLS_msn=23", "_HLS_msn=23&_HLS_part=4", "_HLS_msn=24&_HLS_part=2",
              "_HLS_msn=20&_HLS_part=0", "_HLS_msn=5"):
        r = cl.b("GET", f"{key}?{q}")
        assert r.status == 200 and r.body == body, f"{q}: {r}"
        assert r.elapsed < 2.5, f"{q}: held {r.elapsed:.2f}s although satisfied"


@test
def a_part_past_the_last_part_of_a_segment_means_part_zero_of_the_next(cl):
    key = "/live/ll3/v.m3u8"
    put_ok(cl, key, playlist(30, 3, 0))  # segment 32 complete with parts 0-4, none of 33
    before = held_count(cl, cl.b_admin)
    h = Held(cl.b_port, f"{key}?_HLS_msn=32&_HLS_part=5")
    wait_parked(cl, cl.b_admin, before)
    put_ok(cl, key, playlist(30, 3, 0, hint=False))  # a change that adds no part: still held
    assert not h.done(), f"answered without part 0 of 33: {h.resp}"
    new = playlist(30, 3, 1)
    put_ok(cl, key, new)
    r = h.wait()
    assert r.status == 200 and r.body == new, f"{r}"


@test
def requests_too_far_ahead_or_malformed_are_400_at_once(cl):
    key = "/live/ll4/v.m3u8"
    put_ok(cl, key, playlist(40, 3, 1))  # last complete 42, next 43 has part 0
    for q in ("_HLS_part=1", "_HLS_msn=45", "_HLS_msn=44&_HLS_part=20", "_HLS_msn=43&_HLS_part=17",
              "_HLS_msn=abc", "_HLS_msn=43&_HLS_msn=43", "_HLS_msn=-1", "_HLS_skip=NO",
              "_HLS_msn=99999999999999999999"):
        r = cl.b("GET", f"{key}?{q}")
        assert r.status == 400, f"{q}: want 400, got {r}"
        assert r.json()["error"] == "bad_request", f"{q}: {r.body!r}"
        assert r.elapsed < 2.5, f"{q}: 400 came after {r.elapsed:.2f}s"
    # within the Advance Part Limit (3 / 0.2 s = 15 parts ahead) it is held, not refused
    before = held_count(cl, cl.b_admin)
    h = Held(cl.b_port, f"{key}?_HLS_msn=44&_HLS_part=2")
    wait_parked(cl, cl.b_admin, before)
    put_ok(cl, key, playlist(40, 5, 3))
    assert h.wait().status == 200


@test
def an_unsatisfied_request_is_503_after_three_target_durations(cl):
    key = "/live/ll5/v.m3u8"
    put_ok(cl, key, playlist(50, 3, 1, target=1))
    r = cl.b("GET", f"{key}?_HLS_msn=53&_HLS_part=1")
    assert r.status == 503, f"want 503, got {r}"
    assert 2.9 <= r.elapsed < 6, f"503 after {r.elapsed:.2f}s, want three target durations (3 s)"
    assert "no-store" in (r.header("cache-control") or ""), f"a CDN may keep this 503: {r}"
    assert r.json()["error"] == "not_yet_available", r.body


@test
def directives_are_ignored_once_the_playlist_has_endlist(cl):
    key = "/live/ll6/v.m3u8"
    body = playlist(60, 4, 0, endlist=True)
    put_ok(cl, key, body)
    r = cl.b("GET", f"{key}?_HLS_msn=65&_HLS_part=3")
    assert r.status == 200 and r.body == body and r.elapsed < 2.5, f"{r}"
    # and a request held before the ENDLIST came is answered by it
    key = "/live/ll6b/v.m3u8"
    put_ok(cl, key, playlist(60, 3, 1))
    before = held_count(cl, cl.b_admin)
    h = Held(cl.b_port, f"{key}?_HLS_msn=63&_HLS_part=2")
    wait_parked(cl, cl.b_admin, before)
    end = playlist(60, 3, 0, endlist=True)
    put_ok(cl, key, end)
    r = h.wait()
    assert r.status == 200 and r.body == end, f"{r}"


@test
def a_playlist_request_without_directives_is_never_held(cl):
    key = "/live/ll7/v.m3u8"
    body = playlist(70, 3, 1)
    put_ok(cl, key, body)
    for q in ("", "?foo=1", "?_HLS_other=2"):
        r = cl.b("GET", f"{key}{q}")
        assert r.status == 200 and r.body == body and r.elapsed < 2.5, f"{q!r}: {r}"


@test
def an_encoder_restart_answers_requests_held_for_the_old_numbering(cl):
    key = "/live/ll8/v.m3u8"
    put_ok(cl, key, playlist(500, 3, 4))
    before = held_count(cl, cl.b_admin)
    h = Held(cl.b_port, f"{key}?_HLS_msn=504")
    wait_parked(cl, cl.b_admin, before)
    restarted = playlist(0, 1, 1)  # the encoder started over
    t_put = time.monotonic()
    put_ok(cl, key, restarted)
    r = h.wait()
    assert r.status == 200 and r.body == restarted, f"{r}"
    assert h.at - t_put < 2, f"answered {h.at - t_put:.2f}s after the restart (timed out?)"
    # a request for the old numbering that arrives afterwards is refused at once
    assert cl.b("GET", f"{key}?_HLS_msn=504").status == 400


@test
def a_delta_update_skips_what_can_skip_until_allows(cl):
    key = "/live/ll9/v.m3u8"
    full = playlist(100, 20, 2, skip_until=6.0)
    put_ok(cl, key, full)
    plain = cl.b("GET", key)
    for q in ("_HLS_skip=YES", "_HLS_msn=120&_HLS_part=1&_HLS_skip=YES", "_HLS_skip=v2"):
        r = cl.b("GET", f"{key}?{q}")
        assert r.status == 200, f"{q}: {r}"
        text = r.body.decode()
        # 20 one-second segments, 20 s: those ending by 14 s (100-113) go, 114-119 stay
        assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=14" in text, f"{q}: {text}"
        assert "s113.m4s" not in text and "s114.m4s" in text and "s119.m4s" in text, text
        assert "#EXT-X-MEDIA-SEQUENCE:100" in text and '#EXT-X-MAP:URI="init.mp4"' in text, text
        assert text.index("#EXT-X-SKIP") < text.index("s114.m4s"), text
        assert "#EXT-X-PRELOAD-HINT" in text and "s120.1.m4s" in text, text
        assert len(r.body) < len(full) - 14 * 20, f"{q}: delta not smaller ({len(r.body)} bytes)"
        assert r.header("etag") != plain.header("etag"), f"{q}: same ETag as the full playlist"
        assert int(r.header("content-length")) == len(r.body)
        # a conditional request with the delta's own validator
        again = cl.b("GET", f"{key}?{q}", headers={"If-None-Match": r.header("etag")})
        assert again.status == 304, f"{q}: {again}"
    # a playlist that does not allow skipping answers in full
    key2 = "/live/ll9b/v.m3u8"
    body = playlist(100, 20, 2)
    put_ok(cl, key2, body)
    r = cl.b("GET", f"{key2}?_HLS_skip=YES")
    assert r.status == 200 and r.body == body, f"{r}"


@test
def blocking_answers_carry_cache_lifetimes_and_fresh_validators(cl):
    key = "/live/ll10/v.m3u8"
    one = playlist(200, 3, 1, target=2)
    put_ok(cl, key, one)
    r1 = cl.b("GET", f"{key}?_HLS_msn=203&_HLS_part=0")
    assert r1.status == 200 and r1.body == one
    assert r1.header("cache-control") == "max-age=12", f"six target durations: {r1}"
    assert r1.header("date") and r1.header("last-modified") and r1.header("etag")
    plain = cl.b("GET", key)
    assert plain.header("cache-control") == "max-age=1", f"non-blocking answer: {plain}"
    two = playlist(200, 3, 2, target=2)  # changed again within the same second
    put_ok(cl, key, two)
    r2 = cl.b("GET", f"{key}?_HLS_msn=203&_HLS_part=1")
    assert r2.status == 200 and r2.body == two
    assert r2.header("etag") != r1.header("etag"), "validator did not change with the playlist"
    stale = cl.b("GET", f"{key}?_HLS_msn=203&_HLS_part=0",
                 headers={"If-None-Match": r1.header("etag")})
    assert stale.status == 200 and stale.body == two, f"old validator matched: {stale}"


@test
def many_held_requests_are_released_by_one_commit(cl):
    key = "/live/ll11/v.m3u8"
    put_ok(cl, key, playlist(300, 3, 1))
    before = held_count(cl, cl.b_admin)
    hs = [Held(cl.b_port, f"{key}?_HLS_msn=303&_HLS_part=1") for _ in range(40)]
    wait_parked(cl, cl.b_admin, before, 40)
    new = playlist(300, 3, 2)
    put_ok(cl, key, new)
    for h in hs:
        r = h.wait()
        assert r.status == 200 and r.body == new, f"{r}"


@test
def a_missing_playlist_is_404_and_a_garbage_one_is_served_as_stored(cl):
    r = cl.b("GET", "/live/none/v.m3u8?_HLS_msn=3")
    assert r.status == 404, f"{r}"
    key = "/live/ll12/v.m3u8"
    put_ok(cl, key, b"not a playlist at all\n")
    r = cl.b("GET", f"{key}?_HLS_msn=3&_HLS_part=1&_HLS_skip=YES")
    assert r.status == 200 and r.body == b"not a playlist at all\n", f"{r}"


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=lambda: TwoGateways(GW_ARGS, name="hw-llhls"))
