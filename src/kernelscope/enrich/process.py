"""pid -> process context from /proc (comm, exe, cmdline, uid, user, parent), cached.

A cache entry is keyed by pid and checked against the process start time (field 22
of /proc/PID/stat), so a reused pid never inherits a dead process's context. An exec
keeps pid and start time but changes comm/exe/cmdline: callers `forget(pid)` on exec.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from kernelscope.runtime.decode import user_name


@dataclass
class ProcInfo:
    pid: int
    start_ticks: int
    comm: str | None
    exe: str | None
    cmdline: str | None
    uid: int | None
    ppid: int | None


def parse_stat(text: str) -> tuple[str, int, int]:
    """/proc/PID/stat -> (comm, ppid, start time in clock ticks); comm may hold spaces and ')'."""
    lpar, rpar = text.index("("), text.rindex(")")
    comm = text[lpar + 1:rpar]
    rest = text[rpar + 2:].split()
    # rest[0] is field 3 (state): ppid is field 4, starttime field 22
    return comm, int(rest[1]), int(rest[19])


def start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_stat(f.read())[2]
    except (OSError, ValueError, IndexError):
        return None


def read_proc(pid: int) -> ProcInfo | None:
    base = f"/proc/{pid}"
    try:
        with open(base + "/stat") as f:
            comm, ppid, start = parse_stat(f.read())
    except (OSError, ValueError, IndexError):
        return None
    try:
        exe = os.readlink(base + "/exe")
    except OSError:
        exe = None
    try:
        with open(base + "/cmdline", "rb") as f:
            raw = f.read(8192)
        cmdline = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace") or None
    except OSError:
        cmdline = None
    try:
        uid = os.stat(base).st_uid
    except OSError:
        uid = None
    return ProcInfo(pid, start, comm, exe, cmdline, uid, ppid)


class ProcessCache:
    """LRU of ProcInfo by pid, validated by start time; counts hits, misses and gone pids."""

    def __init__(self, max_entries: int = 32768):
        self.max_entries = max_entries
        self._cache: OrderedDict[int, ProcInfo] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.gone = 0

    def forget(self, pid: int) -> None:
        with self._lock:
            self._cache.pop(pid, None)

    def get(self, pid: int, validate: bool = True) -> ProcInfo | None:
        with self._lock:
            info = self._cache.get(pid)
        if info is not None:
            if not validate or start_ticks(pid) in (info.start_ticks, None):
                # None: the process is gone; its last known context is still the right one
                self.hits += 1
                with self._lock:
                    self._cache.move_to_end(pid)
                return info
        self.misses += 1
        info = read_proc(pid)
        if info is None:
            self.gone += 1
            return None
        with self._lock:
            self._cache[pid] = info
            self._cache.move_to_end(pid)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return info

    def __len__(self):
        return len(self._cache)


def process_columns(info: ProcInfo | None, parent: ProcInfo | None) -> dict:
    """The enrichment columns for one record (None where unknown)."""
    if info is None:
        return {"exe": None, "cmdline": None, "proc_uid": None, "proc_user": None,
                "parent_pid": parent.pid if parent else None,
                "parent_comm": parent.comm if parent else None}
    return {"exe": info.exe, "cmdline": info.cmdline, "proc_uid": info.uid,
            "proc_user": user_name(info.uid) if info.uid is not None else None,
            "parent_pid": info.ppid, "parent_comm": parent.comm if parent else None}
