#!/usr/bin/env python3
"""Syscall-counting overhead: a syscall-heavy workload alone and under three counters.

Workload: `dd if=/dev/zero of=/dev/null bs=1 count=N` (2N read/write syscalls).
Modes, interleaved round by round so drift hits all of them alike:
  baseline    the workload alone
  kernelscope `kernelscope syscount` (system-wide, per-syscall calls + latency, in-kernel
              per-CPU hash, tp_btf raw_syscalls enter/exit)
  bpftrace    `bpftrace -e 'tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }'`
              (system-wide, counts only)
  strace      `strace -c -f -o /dev/null <workload>` (ptrace, this process only)
The workload's wall time is measured from spawn to exit, and its CPU time (user +
system, from wait4's rusage: BPF programs on its syscalls run in its context and count
as its system time; under strace, strace's own CPU is included) is reported beside
it, being less sensitive to other load on the machine. The counters are attached
before the workload starts (their ready line is awaited) and stopped after.

usage: python bench/syscount_overhead.py [--rounds R] [--count N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import wait_line  # noqa: E402

HERE = Path(__file__).resolve().parent
KS = [sys.executable, "-m", "kernelscope"]
BPFTRACE_PROG = "tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }"


def workload(count: int) -> list[str]:
    return ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={count}", "status=none"]


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, user+system CPU seconds of the process and its children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed with {proc.returncode}")
    return wall, ru.ru_utime + ru.ru_stime


def under(tool_cmd: list[str], ready_stream: str, needle: str, count: int) -> tuple[float, float]:
    proc = subprocess.Popen(tool_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_line(proc, getattr(proc, ready_stream), needle)
        time.sleep(0.2)
        return timed(workload(count))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=500000)
    args = ap.parse_args()
    for tool in ("dd", "bpftrace", "strace"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed")
    modes = {
        "baseline": lambda: timed(workload(args.count)),
        "kernelscope syscount": lambda: under(KS + ["syscount", "-T", "5"], "stderr", "attached",
                                              args.count),
        "bpftrace one-liner": lambda: under(["bpftrace", "-e", BPFTRACE_PROG], "stdout",
                                            "Attaching", args.count),
        "strace -c -f": lambda: timed(["strace", "-c", "-f", "-o", "/dev/null"] + workload(args.count)),
    }
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for name, fn in modes.items():
            wall, cpu = fn()
            times[name].append(wall)
            cpus[name].append(cpu)
        print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.3f}s (cpu {cpus[n][-1]:.3f}s)"
                                             for n, t in times.items()), file=sys.stderr)
    base = statistics.median(times["baseline"])
    base_cpu = statistics.median(cpus["baseline"])
    print(f"\nworkload: {' '.join(workload(args.count))} ({2 * args.count:,} syscalls), "
          f"{args.rounds} interleaved rounds\n")
    print("| mode | wall median s | wall min–max s | wall slowdown | CPU median s | CPU slowdown |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ts in times.items():
        med, cmed = statistics.median(ts), statistics.median(cpus[name])
        print(f"| {name} | {med:.3f} | {min(ts):.3f}–{max(ts):.3f} | {med / base:.2f}x "
              f"| {cmed:.3f} | {cmed / base_cpu:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
