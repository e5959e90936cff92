#!/usr/bin/env python3
"""E2E with a real encoder: ffmpeg pushes a 10 s live HLS stream (testsrc2 + sine, libx264/aac,
-f hls -method PUT -http_persistent 1) into the gateway of a 3-node cluster. While it pushes,
every playlist the gateway serves must only name segments it can serve. Afterwards every segment
of the stored playlist is served with the right content type, and ffmpeg decodes the stream
back from the gateway without a single error line."""
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import hwtest  # noqa: E402
from cluster import Cluster  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)
FFMPEG = os.environ.get("HW_FFMPEG") or shutil.which("ffmpeg") or "ffmpeg"
PLAYLIST = "/live/ch1/index.m3u8"
state = {}


def media_type(v):
    return (v or "").split(";")[0].strip().lower()


def segments_of(playlist_text, base="/live/ch1/"):
    """(uri, duration) for each media segment of a media playlist, URIs resolved to keys."""
    out, dur = [], None
    for line in playlist_text.splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            dur = float(line[len("#EXTINF:"):].split(",")[0])
        elif line and not line.startswith("#"):
            uri = line if line.startswith("/") else base + line
            if "://" in line:
                uri = "/" + line.split("://", 1)[1].split("/", 1)[1]
            out.append((uri, dur))
            dur = None
    return out


def push_cmd(cl):
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
            "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
            "-c:a", "aac", "-f", "hls", "-hls_time", "2", "-hls_list_size", "0",
            "-method", "PUT", "-http_persistent", "1",
            f"http://127.0.0.1:{cl.gw_port}{PLAYLIST}"]


class LiveWatcher(threading.Thread):
    """Polls the playlist while ffmpeg pushes; every segment a served playlist names must be
    served (200) right away: a CDN would fetch it as soon as it saw the playlist."""

    def __init__(self, cl):
        super().__init__(daemon=True)
        self.cl = cl
        self.stop = threading.Event()
        self.errors = []
        self.playlists = 0
        self.checked = set()

    def run(self):
        while not self.stop.is_set():
            try:
                r = self.cl.get(PLAYLIST, timeout=10)
                if r.status == 200:
                    self.playlists += 1
                    for uri, _ in segments_of(r.body.decode("utf-8", "replace")):
                        if uri in self.checked:
                            continue
                        s = self.cl.get(uri, timeout=10)
                        if s.status != 200:
                            self.errors.append(f"{uri} named by a served playlist: {s.status}")
                        self.checked.add(uri)
                elif r.status != 404:
                    self.errors.append(f"playlist during push: {r}")
            except Exception as e:  # noqa: BLE001 - reported, not swallowed
                self.errors.append(f"watcher: {type(e).__name__}: {e}")
            self.stop.wait(0.3)


@test
def ffmpeg_pushes_live_hls(cl):
    if shutil.which(FFMPEG) is None and not os.access(FFMPEG, os.X_OK):
        raise AssertionError(f"ffmpeg not found ({FFMPEG}); run scripts/deps")
    watcher = LiveWatcher(cl)
    watcher.start()
    t0 = time.monotonic()
    p = subprocess.run(push_cmd(cl), capture_output=True, text=True, timeout=180)
    watcher.stop.set()
    watcher.join(15)
    print(f"  ffmpeg push took {time.monotonic() - t0:.1f}s; watcher saw {watcher.playlists} "
          f"playlists, checked {len(watcher.checked)} segments live")
    assert p.returncode == 0, f"ffmpeg exit {p.returncode}: {p.stderr[-2000:]}"
    assert p.stderr.strip() == "", f"ffmpeg complained: {p.stderr[-2000:]}"
    assert not watcher.errors, "\n".join(watcher.errors[:20])
    assert watcher.playlists > 0, "never saw a playlist while ffmpeg pushed"


@test(needs=["ffmpeg_pushes_live_hls"])
def stored_playlist_and_segments_are_served(cl):
    # ffmpeg does not wait for the answer to its last playlist PUT before it exits, so that
    # PUT may still be committing: wait for it (reads are read-your-writes once it is acked).
    r = cl.wait_for(lambda: (lambda x: x if x.status == 200 and b"#EXT-X-ENDLIST" in x.body
                                        else None)(cl.get(PLAYLIST)),
                    5.0, "the final playlist (with #EXT-X-ENDLIST)")
    assert media_type(r.header("content-type")) == "application/vnd.apple.mpegurl", r.headers
    text = r.body.decode("utf-8")
    assert text.startswith("#EXTM3U"), text[:200]
    assert "#EXT-X-ENDLIST" in text, f"final playlist not stored:\n{text}"
    segs = segments_of(text)
    total = sum(d or 0 for _, d in segs)
    print(f"  playlist: {len(segs)} segments, {total:.2f}s")
    assert len(segs) >= 4, text
    assert 9.0 <= total <= 11.5, f"segments add up to {total:.2f}s, want ~10 s"
    for uri, _ in segs:
        s = cl.get(uri)
        assert s.status == 200, f"{uri}: {s}"
        assert media_type(s.header("content-type")) == "video/mp2t", f"{uri}: {s.headers}"
        assert s.header("content-length") == str(len(s.body)), f"{uri}: {s.headers}"
        assert len(s.body) > 0 and len(s.body) % 188 == 0 and s.body[0] == 0x47, \
            f"{uri}: not an MPEG-TS segment ({len(s.body)} bytes)"


@test(needs=["ffmpeg_pushes_live_hls"])
def ffmpeg_decodes_from_gateway(cl):
    url = f"http://127.0.0.1:{cl.gw_port}{PLAYLIST}"
    p = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", url, "-f", "null", "-"],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, f"ffmpeg decode exit {p.returncode}: {p.stderr[-2000:]}"
    assert p.stderr == "", f"ffmpeg decode errors: {p.stderr[-2000:]}"


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=lambda: Cluster(nodes=3, name="hw-e2e"))
