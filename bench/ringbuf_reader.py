#!/usr/bin/env python3
"""Ring-buffer reader speed: kernelscope's batch reader vs a minimal C libbpf consumer.

Records are fixed 64-byte structs emitted in the kernel by bench/bpf/bench_ringbuf
(bpf_loop, cfg_burst records per getppid() of the benchmark process).

drain:  the ring (256 MiB) is filled with N records while nobody reads, then each
        consumer, pinned to one CPU, takes all N; rate = N / time. Zero loss is
        checked (lost counter 0, every seq present).
stream: a producer process on CPU 1 emits as fast as it can for T seconds while the
        Python reader on CPU 0 consumes; delivered rate and lost count are reported.

usage: python bench/ringbuf_reader.py [--records N] [--rounds R] [--stream-seconds T]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from kernelscope.build import build  # noqa: E402
from kernelscope.libbpf import CallbackRingBuffer  # noqa: E402
from kernelscope.runtime.loader import open_probe  # noqa: E402
from kernelscope.runtime.probe import ProbeSpec  # noqa: E402

OBJ = HERE / "bpf" / "bench_ringbuf" / "bench_ringbuf.bpf.o"
SPEC = ProbeSpec(name="bench_ringbuf", doc="benchmark producer", event="bench_ringbuf_event",
                 object=str(OBJ))
BURST = 10000
BATCH = 1 << 16  # records per read: a batch that stays in cache


def build_consumer() -> Path:
    exe = Path(tempfile.gettempdir()) / "ks_ringbuf_consumer"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "ringbuf_consumer.c"), "-lbpf"], check=True)
    return exe


def fill(n: int) -> None:
    for _ in range(n // BURST):
        os.getppid()


def drain_python(p, n: int) -> float:
    ring = p.ring()
    fill(n)
    t0 = time.perf_counter()
    taken = 0
    seq_min, seq_max, seq_sum = None, 0, 0
    while taken < n:
        batch = ring.read(max_records=BATCH)
        if not len(batch):
            continue
        seqs = batch["seq"]  # decode by field name, whole batch at once
        seq_sum += int(seqs.sum())
        seq_min = int(seqs[0]) if seq_min is None else seq_min
        seq_max = int(seqs[-1])
        taken += len(batch)
    dt = time.perf_counter() - t0
    ring.close()
    assert taken == n and seq_max - seq_min + 1 == n, "records missing"
    assert seq_sum == n * (seq_min + seq_max) // 2, "records corrupted"
    return n / dt


def drain_callback(p, n: int) -> float:
    got = [0]
    unpack = struct.Struct("<QQII5Q").unpack_from

    def on_rec(data: bytes):
        unpack(data)
        got[0] += 1

    with CallbackRingBuffer(p.maps["events"], on_rec) as rb:
        fill(n)
        t0 = time.perf_counter()
        while got[0] < n:
            rb.consume()
        dt = time.perf_counter() - t0
    return n / dt


def drain_c(p, n: int, exe: Path) -> float:
    fd = p.maps["events"].fd
    fill(n)
    r = subprocess.run(["taskset", "-c", "0", str(exe), str(fd), str(n)], pass_fds=[fd],
                       capture_output=True, text=True, check=True)
    count, secs, _ = r.stdout.split()
    assert int(count) == n
    return n / float(secs)


def stream_python(seconds: float) -> tuple[float, int, int]:
    r, w = os.pipe()
    producer = subprocess.Popen(
        [sys.executable, "-c",
         "import os,sys,time\n"
         "os.sched_setaffinity(0,{1}); os.read(int(sys.argv[1]),1)\n"
         "end=time.monotonic()+float(sys.argv[2])\n"
         "while time.monotonic()<end:\n  os.getppid()\n", str(r), str(seconds)],
        pass_fds=[r])
    with open_probe(SPEC, config={"pid": producer.pid, "burst": 200},
                    map_sizes={"events": 1 << 26}) as p:
        ring = p.ring()
        os.write(w, b"x")
        taken = 0
        t0 = time.perf_counter()
        while producer.poll() is None:
            ring.wait(0.05)
            taken += len(ring.read(max_records=BATCH))
        taken += len(ring.read())
        dt = time.perf_counter() - t0
        lost = p.lost()
    os.close(r)
    os.close(w)
    return taken / dt, taken, lost


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stream-seconds", type=float, default=5.0)
    a = ap.parse_args()
    build([HERE / "bpf"], quiet=True)
    exe = build_consumer()
    os.sched_setaffinity(0, {0})
    n = a.records // BURST * BURST
    rates = {"python batch": [], "python callback": [], "C libbpf": []}
    for _ in range(a.rounds):
        with open_probe(SPEC, config={"pid": os.getpid(), "burst": BURST},
                        map_sizes={"events": 1 << 28}) as p:
            rates["python batch"].append(drain_python(p, n))
            rates["C libbpf"].append(drain_c(p, n, exe))
            rates["python callback"].append(drain_callback(p, min(n, 200_000)))
            assert p.lost() == 0, f"lost {p.lost()}"
    print(f"drain: {n:,} records of 64 bytes, {a.rounds} interleaved rounds, reader pinned to CPU 0")
    print("| consumer | records/s (median) | min | max | vs C |")
    print("|---|---:|---:|---:|---:|")
    c_med = statistics.median(rates["C libbpf"])
    for name, vals in rates.items():
        med = statistics.median(vals)
        print(f"| {name} | {med:,.0f} | {min(vals):,.0f} | {max(vals):,.0f} | {med / c_med:.2f}x |")
    rate, taken, lost = stream_python(a.stream_seconds)
    print(f"\nstream: producer on CPU 1 for {a.stream_seconds:g} s, Python batch reader on CPU 0")
    print("| delivered records | records/s | lost |")
    print("|---:|---:|---:|")
    print(f"| {taken:,} | {rate:,.0f} | {lost} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
