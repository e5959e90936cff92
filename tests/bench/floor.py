#!/usr/bin/env python3
"""Issue 10, benchmarks 2 and 3: Headwater's writes against this disk's durability floor, in one
run, rounds alternating (floor round, Headwater round, ...).

How to run: `tests/bench/renditions.sh --floor` (builds everything, see there), or by hand with
HW_NODE_BIN, HW_GATEWAY_BIN and HW_RENDLOAD_BIN set: `python3 tests/bench/floor.py`.

  2. 2 MB PUT vs the floor. Floor = three parallel 2 MB write+fdatasync of new files (three
     threads; os.write and os.fdatasync release the GIL, the syscalls dominate) followed by one
     4 KiB durable append (write+fdatasync), on the file system holding the nodes' data dirs.
     Headwater = sequential 2 MB PUTs through the gateway on one keep-alive connection. p50/p99
     of each, ratio PUT p50 / floor p50 (issue 10 target <= 1.5).
  3. 16 writers vs the floor's bandwidth. Floor = 16 threads, each per object writing 200 KB to
     three new files with an fdatasync each (three replicas) plus a 4 KiB durable append; MB/s
     of objects (copies not counted). Headwater = 16 concurrent PUT loops of 200 KB objects
     (tests/bench/rendload --writers 16) over a bounded key set; MB/s acknowledged. Ratio
     (target >= 0.7).

Env: FLOOR_ROUNDS (10), FLOOR_PER_ROUND (5), BW_ROUNDS (3), BW_ROUND_S (6).
Markdown on stdout, progress on stderr; temp dirs removed and daemons stopped on exit.
"""
import concurrent.futures
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
from bench import commit, machine, pct  # noqa: E402
from cluster import Cluster, _die_with_parent  # noqa: E402

ROUNDS = int(os.environ.get("FLOOR_ROUNDS", "10"))
PER_ROUND = int(os.environ.get("FLOOR_PER_ROUND", "5"))
BW_ROUNDS = int(os.environ.get("BW_ROUNDS", "3"))
BW_ROUND_S = float(os.environ.get("BW_ROUND_S", "6"))
BIG = 2 << 20
SMALL = 200 << 10
WRITERS = 16
APPEND = 4096


LOAD_START = os.getloadavg()[0]


def load_note():
    """The 1-minute load average at the start and now: other work on the shared machine."""
    return f"load average {LOAD_START:.1f} at start, {os.getloadavg()[0]:.1f} at the end"


def log(msg):
    print(f"[floor] {msg}", file=sys.stderr, flush=True)


def durable_write(path, data):
    try:
        os.unlink(path)  # a new file each time, like a replica's new object
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fdatasync(fd)
    finally:
        os.close(fd)


def durable_append(fd, data):
    os.write(fd, data)
    os.fdatasync(fd)


class Floor:
    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.pool = concurrent.futures.ThreadPoolExecutor(3)
        self.log_fd = os.open(os.path.join(d, "append.log"), os.O_WRONLY | os.O_CREAT |
                              os.O_APPEND, 0o600)
        self.big = os.urandom(BIG)
        self.small = os.urandom(SMALL)
        self.rec = os.urandom(APPEND)
        self.n = 0

    def one_big(self):
        """ms of one 2 MB floor operation."""
        self.n += 1
        t0 = time.perf_counter()
        futs = [self.pool.submit(durable_write, os.path.join(self.d, f"big{i}_{self.n % 4}"),
                                 self.big) for i in range(3)]
        for f in futs:
            f.result()
        durable_append(self.log_fd, self.rec)
        return (time.perf_counter() - t0) * 1000.0

    def bandwidth(self, seconds):
        """MB/s of 200 KB objects, each written three times + one durable append, 16 threads."""
        stop = time.monotonic() + seconds
        done = [0] * WRITERS

        def writer(w):
            fd = os.open(os.path.join(self.d, f"w{w}.log"), os.O_WRONLY | os.O_CREAT |
                         os.O_APPEND, 0o600)
            try:
                k = 0
                while time.monotonic() < stop:
                    for copy in range(3):
                        durable_write(os.path.join(self.d, f"w{w}_{k % 4}_{copy}"), self.small)
                    durable_append(fd, self.rec)
                    done[w] += 1
                    k += 1
            finally:
                os.close(fd)
        t0 = time.monotonic()
        ts = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return sum(done) * SMALL / 1e6 / (time.monotonic() - t0)

    def close(self):
        self.pool.shutdown()
        os.close(self.log_fd)


def hw_big_puts(conn, body, n, start):
    lat = []
    for i in range(n):
        path = f"/bench/floor/put_{(start + i) % 16}.ts"
        t0 = time.perf_counter()
        conn.request("PUT", path, body=body, headers={"Content-Type": "video/mp2t"})
        r = conn.getresponse()
        r.read()
        if r.status not in (200, 201, 204):
            raise RuntimeError(f"PUT {path}: HTTP {r.status}")
        lat.append((time.perf_counter() - t0) * 1000.0)
    return lat


def hw_writers(port, seconds):
    argv = [os.environ["HW_RENDLOAD_BIN"], "--port", str(port), "--writers", str(WRITERS),
            "--obj-bytes", str(SMALL), "--keys", "8", "--warmup", "1", "--duration",
            str(seconds), "--prefix", "/bench/writers"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                       preexec_fn=_die_with_parent)
    if p.returncode != 0:
        raise RuntimeError(f"rendload --writers failed: {p.stderr[-2000:]}")
    r = json.loads(p.stdout.splitlines()[-1])
    if r["put_fail"]:
        raise RuntimeError(f"{r['put_fail']} writer PUTs failed")
    return r["acked_mb_s"]


def bench_big(cl, fl):
    conn = http.client.HTTPConnection("127.0.0.1", cl.gw_port, timeout=60)
    body = os.urandom(BIG)
    floor, hw = [], []
    try:
        hw_big_puts(conn, body, PER_ROUND, 0)  # warm-up, not counted
        fl.one_big()
        for rnd in range(ROUNDS):
            floor += [fl.one_big() for _ in range(PER_ROUND)]
            hw += hw_big_puts(conn, body, PER_ROUND, rnd * PER_ROUND)
    finally:
        conn.close()
    floor.sort()
    hw.sort()
    return floor, hw


def bench_bw(cl, fl):
    floor, hw = [], []
    for rnd in range(BW_ROUNDS):
        floor.append(fl.bandwidth(BW_ROUND_S))
        hw.append(hw_writers(cl.gw_port, BW_ROUND_S))
        log(f"round {rnd + 1}: floor {floor[-1]:.1f} MB/s, Headwater {hw[-1]:.1f} MB/s")
    return floor, hw


def report(big_floor, big_hw, bw_floor, bw_hw, data_fs):
    fp50, hp50 = statistics.median(big_floor), statistics.median(big_hw)
    fbw, hbw = statistics.median(bw_floor), statistics.median(bw_hw)
    when = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    print(f"### Writes vs the durability floor — {when}"
          f", commit {os.environ.get('HW_BENCH_COMMIT') or commit()}")
    print()
    print(f"Machine: {machine()}; data dirs and floor files on {data_fs}. One run, rounds "
          f"alternating floor / Headwater (3 nodes + gateway, release build); {load_note()}.")
    print()
    print("| metric | floor | Headwater | Headwater / floor | target |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| 2 MB write p50 (ms) | {fp50:.1f} | {hp50:.1f} | {hp50 / fp50:.2f}x | <= 1.5x |")
    print(f"| 2 MB write p99 (ms) | {pct(big_floor, 99):.1f} | {pct(big_hw, 99):.1f} | "
          f"{pct(big_hw, 99) / pct(big_floor, 99):.2f}x | |")
    print(f"| 16 writers x 200 KB (MB/s of objects) | {fbw:.1f} | {hbw:.1f} | {hbw / fbw:.2f}x"
          " | >= 0.7x |")
    print()
    print(f"2 MB: {ROUNDS} rounds of {PER_ROUND} floor operations then {PER_ROUND} sequential "
          f"PUTs (one keep-alive connection, keys cycling over 16), {len(big_floor)} samples "
          "each. Floor = 3 parallel 2 MB write+fdatasync of new files + one 4 KiB "
          "write+fdatasync append. 16 writers: "
          f"{BW_ROUNDS} alternating rounds of {BW_ROUND_S:.0f} s, medians of the rounds "
          f"(floor {', '.join(f'{x:.1f}' for x in bw_floor)}; Headwater "
          f"{', '.join(f'{x:.1f}' for x in bw_hw)} MB/s). Headwater MB/s = acknowledged 200 KB "
          "objects (`rendload --writers 16`, 8 keys per writer). Command: "
          "`tests/bench/renditions.sh --floor`.")
    sys.stdout.flush()


def fs_of(path):
    try:
        out = subprocess.run(["df", "--output=source,fstype", path], capture_output=True,
                             text=True).stdout.split("\n")[1].split()
        return f"{out[0]} ({out[1]})"
    except (OSError, IndexError):
        return "?"


def main():
    cl, fl, rc = None, None, 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        log("starting 3 nodes + gateway")
        cl = Cluster(nodes=3, name="hw-floor")
        cl.start(ready_timeout=60)
        fl = Floor(os.path.join(cl.tmp, "floor"))
        log(f"2 MB PUT vs floor: {ROUNDS} rounds x {PER_ROUND}")
        big_floor, big_hw = bench_big(cl, fl)
        log(f"16 writers vs floor bandwidth: {BW_ROUNDS} rounds x {BW_ROUND_S:.0f} s")
        bw_floor, bw_hw = bench_bw(cl, fl)
        report(big_floor, big_hw, bw_floor, bw_hw, fs_of(cl.tmp))
        rc = 0
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - diagnostics, then clean up
        log(f"FAILED: {type(e).__name__}: {e}")
        if cl is not None:
            cl.dump_logs(20)
    finally:
        if fl is not None:
            fl.close()
        if cl is not None:
            for p in cl.stop():
                log(f"daemon: {p}")
            cl.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
