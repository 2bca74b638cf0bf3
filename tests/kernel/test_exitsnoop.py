"""exitsnoop against children this test starts: exit(7) and SIGKILL, matched by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from conftest import start_ks, wait_attached


def _stop(proc) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


def test_exit_code_and_signal(no_leaks):
    tool = start_ks("exitsnoop", "--json")
    try:
        wait_attached(tool)
        coded = subprocess.Popen(["sh", "-c", "sleep 0.2; exit 7"])
        assert coded.wait(10) == 7
        killed = subprocess.Popen(["sleep", "30"])
        time.sleep(0.3)
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(10) == -signal.SIGKILL
        time.sleep(0.3)
    finally:
        out, err = _stop(tool)
    recs = [json.loads(line) for line in out.splitlines()]
    by_pid = {r["pid"]: r for r in recs if r["type"] == "exit"}
    a = by_pid[coded.pid]
    assert (a["exit_code"], a["sig"], a["sig_name"], a["comm"]) == (7, 0, None, "sh")
    assert a["ppid"] == os.getpid()
    assert 0.2e9 <= a["lifetime_ns"] < 10e9
    b = by_pid[killed.pid]
    assert (b["sig"], b["sig_name"], b["comm"], b["core_dumped"]) == (9, "SIGKILL", "sleep", False)
    assert 0.3e9 <= b["lifetime_ns"] < 10e9
    assert recs[-1]["type"] == "summary" and recs[-1]["lost"] == 0


def test_threads_only_with_flag(no_leaks):
    """A thread's exit shows with --threads (tid != pid), not without."""
    prog = ("import threading,time; t=threading.Thread(target=time.sleep, args=(0.1,)); "
            "t.start(); t.join(); time.sleep(0.2)")
    results = {}
    for flag in ([], ["--threads"]):
        tool = start_ks("exitsnoop", "--json", *flag)
        try:
            wait_attached(tool)
            child = subprocess.Popen(["python3", "-c", prog])
            assert child.wait(10) == 0
            time.sleep(0.3)
        finally:
            out, _ = _stop(tool)
        recs = [json.loads(line) for line in out.splitlines()]
        results[bool(flag)] = [r for r in recs if r["type"] == "exit" and r["pid"] == child.pid]
    assert [r["tid"] for r in results[False]] == [results[False][0]["pid"]]
    threads = [r for r in results[True] if r["tid"] != r["pid"]]
    assert len(threads) == 1 and len(results[True]) == 2
