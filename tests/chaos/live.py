"""The cross-key check "listed means servable" (Python 3 stdlib only).

A writer behaves like a live encoder under <prefix>/live/: it PUTs seg_N.ts (N = 0, 1, ...;
retried until acknowledged; content and length a function of N), then overwrites live.m3u8
naming the last LISTED acknowledged segments, then DELETEs the segments that fell out of a
WINDOW-segment window. Readers fetch the playlist through each gateway and at once every
segment it names through every gateway. A violation is a named segment answered 404 (before the
writer began to delete it), or 200 with the wrong length or content, or a body cut short.
5xx, timeouts and refused connections are counted as "unavailable" (a gateway that is down or
cut off answers nothing; that is not an inconsistency). A playlist older than one already
acknowledged when the read began is counted as a stale playlist.

    lv = Live(gateways, "/chaos/<run>", timeout=5.0)
    threads: lv.writer(stop_at), lv.reader(i, stop_at) ...
    doc = lv.report(t0)          # counts + violations, times relative to t0
"""
import http.client
import re
import threading
import time

from cluster import HOST

LISTED = 5
WINDOW = 10
PERIOD = 0.5  # seconds between two segments


def seg_body(tag, n):
    """Segment n's bytes: 600..4599 of them, naming the run and n throughout."""
    unit = f"{tag}/seg_{n}|".encode()
    size = 600 + (n * 7919) % 4000
    return (unit * (size // len(unit) + 1))[:size]


def playlist_body(first, names):
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1",
             f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for name in names:
        lines += [f"#EXTINF:{PERIOD:.3f},", name]
    return ("\n".join(lines) + "\n").encode()


def fetch(port, method, path, body=None, timeout=5.0):
    """-> (status or None, body bytes or None, error string or None). A 200 whose body ends
    early is (200, partial, "IncompleteRead")."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        try:
            return r.status, r.read(), None
        except http.client.IncompleteRead as e:
            return r.status, e.partial, "IncompleteRead"
    except (OSError, http.client.HTTPException) as e:
        return None, None, f"{type(e).__name__}: {e}"
    finally:
        conn.close()


class Live:
    def __init__(self, gateways, prefix, timeout=5.0, rnd=None, period=PERIOD, list_early=False):
        """list_early: a broken encoder that publishes the playlist naming segment N before
        it PUTs seg_N.ts (the check's own self-test: readers must flag it)."""
        self.gateways = list(gateways)
        self.dir = f"{prefix}/live"
        self.tag = prefix
        self.timeout = timeout
        self.rnd = rnd
        self.period = period
        self.list_early = list_early
        self.lock = threading.Lock()
        self.segments = {}       # n -> time its PUT was acknowledged
        self.deletes = {}        # n -> time its first DELETE was sent
        self.playlists = []      # (ack time, last segment named) in order
        self.playlist_retries = 0
        self.violations = []
        self.stale_playlists = []
        self.unavailable = {}    # status or error kind -> count
        self.reads = 0           # segment fetches
        self.playlist_reads = 0

    def key(self, name):
        return f"{self.dir}/{name}"

    # ---- the encoder ----------------------------------------------------------------------
    def _put_until_acked(self, name, body, stop_at):
        """PUT through a random gateway until 200/201/204; -> (ack time, attempts) or None."""
        tries = 0
        while time.monotonic() < stop_at:
            tries += 1
            port = self.rnd.choice(self.gateways)[1]
            status, _, _ = fetch(port, "PUT", self.key(name), body, self.timeout)
            if status in (200, 201, 204):
                return time.monotonic(), tries
            time.sleep(0.1)
        return None

    def _segment(self, n, stop_at):
        got = self._put_until_acked(f"seg_{n}.ts", seg_body(self.tag, n), stop_at)
        if got is not None:
            with self.lock:
                self.segments[n] = got[0]
        return got is not None

    def writer(self, stop_at):
        n = 0
        acked = []
        t_next = time.monotonic()
        while time.monotonic() < stop_at:
            if not self.list_early and not self._segment(n, stop_at):
                return
            acked.append(n)
            names = acked[-LISTED:]
            pl = playlist_body(names[0], [f"seg_{m}.ts" for m in names])
            got = self._put_until_acked("live.m3u8", pl, stop_at)
            if got is None:
                return
            with self.lock:
                self.playlists.append((got[0], n))
                self.playlist_retries += got[1] - 1
            if self.list_early:
                time.sleep(self.period / 2)  # a reader has time to fetch it first
                if not self._segment(n, stop_at):
                    return
            for m in [m for m in acked if m <= n - WINDOW]:
                with self.lock:
                    self.deletes[m] = time.monotonic()
                fetch(self.rnd.choice(self.gateways)[1], "DELETE", self.key(f"seg_{m}.ts"),
                      None, self.timeout)
                acked.remove(m)
            n += 1
            t_next += self.period
            time.sleep(max(0.0, t_next - time.monotonic()))

    # ---- the players ----------------------------------------------------------------------
    def _unavailable(self, what):
        with self.lock:
            self.unavailable[what] = self.unavailable.get(what, 0) + 1

    def _check_segment(self, n, gw, port, pl):
        want = seg_body(self.tag, n)
        t0 = time.monotonic()
        status, body, err = fetch(port, "GET", self.key(f"seg_{n}.ts"), None, self.timeout)
        t1 = time.monotonic()
        with self.lock:
            self.reads += 1
            deleting = self.deletes.get(n)
        why = None
        if status == 404:
            if deleting is not None and deleting < t1:
                return  # the encoder began to delete it meanwhile: the reader was too slow
            why = "404 for a listed segment"
        elif status == 200 and err:
            why = f"body cut short ({len(body or b'')} of {len(want)} bytes)"
        elif status == 200 and body != want:
            why = (f"wrong content ({len(body)} bytes, want {len(want)})"
                   if len(body) != len(want) else "wrong content (same length)")
        elif status != 200:
            self._unavailable(str(status) if status is not None else (err or "?").split(":")[0])
            return
        else:
            return
        with self.lock:
            self.violations.append({"why": why, "segment": f"seg_{n}.ts", "gateway": gw,
                                    "status": status, "invoke": t0, "complete": t1,
                                    "playlist": pl, "segment_acked": self.segments.get(n),
                                    "delete_sent": deleting})

    def _read_playlist(self, gw, port):
        t0 = time.monotonic()
        with self.lock:
            newest = self.playlists[-1][1] if self.playlists else None
        status, body, err = fetch(port, "GET", self.key("live.m3u8"), None, self.timeout)
        t1 = time.monotonic()
        with self.lock:
            self.playlist_reads += 1
        if status == 404 and newest is None:
            return None
        if status != 200 or err:
            self._unavailable(f"playlist {status if status is not None else 'error'}")
            return None
        names = [int(m) for m in re.findall(rb"^seg_(\d+)\.ts$", body, re.M)]
        pl = {"gateway": gw, "invoke": t0, "complete": t1, "segments": names}
        if names and newest is not None and names[-1] < newest:
            with self.lock:
                self.stale_playlists.append(dict(pl, newest_acked=newest))
        return pl

    def reader(self, idx, stop_at):
        while time.monotonic() < stop_at:
            for gw, port in self.gateways:
                pl = self._read_playlist(gw, port)
                if pl is None:
                    continue
                for n in pl["segments"]:
                    for gw2, port2 in self.gateways:
                        self._check_segment(n, gw2, port2, pl)
            time.sleep(0.05)

    # ---- the result -----------------------------------------------------------------------
    def report(self, t0):
        def rel(d):
            return {k: (v - t0 if k in ("invoke", "complete", "segment_acked", "delete_sent",
                                        "newest_acked_at") and v is not None else v)
                    for k, v in d.items()}
        viol = []
        for v in self.violations:
            v = rel(v)
            v["playlist"] = rel(v["playlist"])
            viol.append(v)
        return {"segments_written": len(self.segments), "playlists_written": len(self.playlists),
                "playlist_put_retries": self.playlist_retries,
                "segments_deleted": len(self.deletes), "playlist_reads": self.playlist_reads,
                "segment_reads": self.reads, "violations": viol,
                "stale_playlists": [rel(s) for s in self.stale_playlists],
                "unavailable": dict(sorted(self.unavailable.items()))}
