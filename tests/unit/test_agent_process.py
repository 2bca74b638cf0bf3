"""Process context from /proc: stat parsing, the pid-reuse-safe cache."""

import os
import subprocess

from kernelscope.enrich import process
from kernelscope.enrich.process import ProcessCache, parse_stat, read_proc


def test_parse_stat_odd_comm():
    text = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0"
    comm, ppid, start = parse_stat(text)
    assert comm == "a) b (c)" and ppid == 17 and start == 987654


def test_read_self():
    info = read_proc(os.getpid())
    assert info.ppid == os.getppid() and info.uid == os.getuid()
    assert info.exe == os.path.realpath("/proc/self/exe")
    assert "pytest" in info.cmdline or "python" in info.cmdline


def test_cache_detects_pid_reuse(monkeypatch):
    p = subprocess.Popen(["sleep", "30"])
    try:
        cache = ProcessCache()
        first = cache.get(p.pid)
        assert first.comm == "sleep"
        assert cache.get(p.pid) is first and cache.hits == 1
        # the same pid with another start time is another process: re-read
        real = process.start_ticks
        monkeypatch.setattr(process, "start_ticks", lambda pid: real(pid) + 1)
        monkeypatch.setattr(process, "read_proc", lambda pid: process.ProcInfo(
            pid, real(pid) + 1, "other", None, None, 0, 1))
        again = cache.get(p.pid)
        assert again.comm == "other" and cache.misses == 2
    finally:
        p.kill()
        p.wait()


def test_cache_keeps_context_of_exited_process():
    p = subprocess.Popen(["sleep", "0.01"])
    cache = ProcessCache()
    info = cache.get(p.pid)
    p.wait()
    assert cache.get(p.pid) is info   # gone: its last known context still describes its events
    cache.forget(p.pid)
    assert cache.get(p.pid) is None and cache.gone == 1
