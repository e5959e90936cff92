#!/usr/bin/env python3
"""E2E ingest with real encoders beyond plain HLS:

- LL-DASH: ffmpeg `-f dash -streaming 1 -ldash 1` PUTs chunked CMAF (one segment's PUT lasts the
  whole segment, a tiny chunk per frame) into the gateway; the MPD, init segments and every
  media segment it implies are served with the right content types, and ffmpeg decodes the
  MPD back from the gateway.
- Failover during ingest: the shard leader is SIGKILLed while ffmpeg pushes HLS; ffmpeg
  still exits 0 without an error line, and every segment of the final playlist is served."""
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import hwtest  # noqa: E402
from cluster import Cluster  # noqa: E402
from test_ffmpeg import FFMPEG, media_type, segments_of  # noqa: E402

TESTS = []
test = hwtest.collector(TESTS)
MPD = "/live/dash1/manifest.mpd"
HLS = "/live/fo/index.m3u8"


def encoder_input(seconds):
    return ["-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
            "-c:a", "aac"]


@test
def ffmpeg_pushes_low_latency_dash(cl):
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"] + encoder_input(8) + [
        "-f", "dash", "-method", "PUT", "-streaming", "1", "-ldash", "1",
        "-use_template", "1", "-use_timeline", "0", "-seg_duration", "2",
        "-http_persistent", "1", f"http://127.0.0.1:{cl.gw_port}{MPD}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"ffmpeg exit {p.returncode}: {p.stderr[-2000:]}"
    # ffmpeg exits without waiting for the answer to its last MPD PUT: let it commit.
    r = cl.wait_for(lambda: (lambda x: x if x.status == 200 and b'type="static"' in x.body
                                        else None)(cl.get(MPD)),
                    10.0, "the final (static) MPD")
    assert media_type(r.header("content-type")) == "application/dash+xml", r.headers
    mpd = r.body.decode()
    assert 'type="static"' in mpd, "the final MPD (static) was stored"
    dur = re.search(r'mediaPresentationDuration="PT([0-9.]+)S"', mpd)
    assert dur, mpd[:500]
    templates = re.findall(r'initialization="([^"]+)" media="([^"]+)" startNumber="(\d+)"', mpd)
    reps = re.findall(r'<Representation id="(\d+)"', mpd)
    assert len(templates) == len(reps) == 2, mpd
    count = math.ceil(float(dur.group(1)) / 2.0 - 1e-6)
    for (init, media, start), rep in zip(templates, reps):
        key = "/live/dash1/" + init.replace("$RepresentationID$", rep)
        s = cl.get(key)
        assert s.status == 200 and media_type(s.header("content-type")) == "video/mp4", (key, s)
        assert s.body[4:8] == b"ftyp", f"{key} is not an init segment"
        for n in range(int(start), int(start) + count):
            name = re.sub(r"\$Number%05d\$", f"{n:05d}", media.replace("$RepresentationID$", rep))
            s = cl.get("/live/dash1/" + name)
            assert s.status == 200, (name, s)
            assert s.header("content-length") == str(len(s.body)) and len(s.body) > 0
            assert b"moof" in s.body[:4096], f"{name} is not a CMAF fragment"


@test(needs=["ffmpeg_pushes_low_latency_dash"])
def ffmpeg_decodes_dash_from_gateway(cl):
    url = f"http://127.0.0.1:{cl.gw_port}{MPD}"
    p = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", url, "-map", "0", "-f", "null",
                        "-"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"decode exit {p.returncode}: {p.stderr[-2000:]}"
    # ffmpeg's DASH demuxer probes one media segment past the end of a static MPD and logs
    # its 404 ("Error when loading first fragment"); nothing else may appear.
    noise = [ln for ln in p.stderr.splitlines()
             if ln.strip() and "Error when loading first fragment" not in ln
             and "Last message repeated" not in ln]
    assert not noise, "\n".join(noise[-20:])


@test
def leader_dies_while_ffmpeg_pushes_hls(cl):
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"] + encoder_input(12) + [
        "-f", "hls", "-hls_time", "2", "-hls_list_size", "0", "-method", "PUT",
        "-http_persistent", "1", f"http://127.0.0.1:{cl.gw_port}{HLS}"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cl.wait_for(lambda: cl.get(HLS).status == 200, 30, "the first playlist")
        leader = cl.leader_id()
        killed_at = time.monotonic()
        cl.kill(leader)
        print(f"  killed leader node{leader} mid-ingest")
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    print(f"  ffmpeg finished {time.monotonic() - killed_at:.1f}s after the kill")
    assert p.returncode == 0, f"ffmpeg exit {p.returncode}: {err[-2000:]}"
    assert err.strip() == "", f"ffmpeg saw errors: {err[-2000:]}"
    # ffmpeg exits without waiting for the answer to its last playlist PUT: let it commit.
    r = cl.wait_for(lambda: (lambda x: x if x.status == 200 and b"#EXT-X-ENDLIST" in x.body
                                        else None)(cl.get(HLS)),
                    10.0, "the final playlist (with #EXT-X-ENDLIST)")
    segs = segments_of(r.body.decode(), base="/live/fo/")
    assert len(segs) >= 5, r.body
    for uri, _ in segs:
        s = cl.get(uri)
        assert s.status == 200 and media_type(s.header("content-type")) == "video/mp2t", (uri, s)
    cl.restart(leader)
    cl.wait_for(lambda: cl.caught_up(leader), 60, f"node{leader} to catch up")


if __name__ == "__main__":
    hwtest.main(TESTS, fixture=lambda: Cluster(nodes=3, name="hw-ingest"))
