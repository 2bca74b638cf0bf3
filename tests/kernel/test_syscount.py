"""syscount counts exactly the N getppid() calls a child of this test makes (filtered
by its pid and by syscall name, counted in the kernel)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import start_ks, wait_attached

N = 4321
PROG = f"""
import os, sys
sys.stdin.readline()          # wait until the tool is attached
for _ in range({N}):
    os.getppid()
print("done", flush=True)
sys.stdin.readline()
"""


def _stop(proc) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


def _worker():
    return subprocess.Popen([sys.executable, "-c", PROG], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _go(worker):
    worker.stdin.write("\n")
    worker.stdin.flush()
    assert worker.stdout.readline().strip() == "done"


def test_exact_getppid_count(no_leaks):
    worker = _worker()
    tool = start_ks("syscount", "--json", "-p", str(worker.pid), "-e", "getppid")
    try:
        wait_attached(tool)
        _go(worker)
        time.sleep(0.2)
    finally:
        out, _ = _stop(tool)
        worker.stdin.write("\n")
        worker.stdin.close()
        worker.wait(10)
    rows = [json.loads(line) for line in out.splitlines()]
    counts = [r for r in rows if r["type"] == "syscall_count"]
    assert [(r["syscall"], r["nr"], r["count"], r["errors"]) for r in counts] == [("getppid", 110, N, 0)]
    assert 0 < counts[0]["total_ns"] < 5e9 and counts[0]["avg_ns"] == counts[0]["total_ns"] // N


def test_per_process_and_interval(no_leaks):
    """-P keys by process: the worker's row has its pid, comm and the same N."""
    worker = _worker()
    tool = start_ks("syscount", "--json", "-P", "-e", "getppid", "-i", "0.5")
    try:
        wait_attached(tool)
        _go(worker)
        time.sleep(1.2)   # at least one interval after the calls
    finally:
        out, _ = _stop(tool)
        worker.stdin.write("\n")
        worker.stdin.close()
        worker.wait(10)
    rows = [json.loads(line) for line in out.splitlines()]
    mine = [r for r in rows if r["type"] == "syscall_count" and r["pid"] == worker.pid]
    # counts reset every interval: the intervals together hold exactly N
    assert sum(r["count"] for r in mine) == N
    assert {r["comm"] for r in mine} == {os.path.basename(sys.executable)[:15]}


def test_unknown_syscall_is_one_line_error():
    from conftest import run_ks
    r = run_ks("syscount", "-e", "no_such_call")
    assert r.returncode == 2 and r.stderr.strip() == "kernelscope: unknown syscall 'no_such_call' on x86_64"
