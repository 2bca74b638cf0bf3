"""Context added to every record the agent stores: host, process, cgroup/container, pod.

One Enricher per agent, shared by all modules; caches live in enrich/*.
"""

from __future__ import annotations

import time

from kernelscope.enrich.cgroups import CgroupInfo, CgroupResolver, best_info, proc_cgroups
from kernelscope.enrich.process import ProcessCache, process_columns

_CG_EMPTY = CgroupInfo(path=None).columns()
_K8S_EMPTY = {"pod_name": None, "pod_namespace": None, "pod_labels": None}


class Enricher:
    def __init__(self, host: str, process: bool = True, cgroups: bool = True, kubernetes=None):
        self.host = host
        self.procs = ProcessCache() if process else None
        self.cgroups = CgroupResolver() if cgroups else None
        self.k8s = kubernetes
        self._v1: dict[tuple[int, int], CgroupInfo] = {}
        self._ctx: dict[tuple, tuple[float, dict]] = {}   # (pid, cgroup id) -> (when, columns)
        self.revalidate = 1.0
        self.seconds = 0.0
        self.records = 0

    def _cgroup(self, rec: dict, pinfo, fresh: bool = False) -> dict:
        info = None
        cgid = rec.get("cgroup_id")
        if cgid:
            info = self.cgroups.lookup(int(cgid))
        if (info is None or not (info.container_id or info.pod_uid)) and pinfo is not None:
            # hybrid hosts: runtimes with the cgroupfs driver create v1 groups only
            key = (pinfo.pid, pinfo.start_ticks)
            v1 = None if fresh else self._v1.get(key)
            if v1 is None:
                paths = proc_cgroups(pinfo.pid)
                if paths:
                    v1 = best_info(paths)
                    if len(self._v1) > 65536:
                        self._v1.clear()
                    self._v1[key] = v1
            if v1 is not None and (info is None or v1.container_id or v1.pod_uid):
                info = v1
        return info.columns() if info is not None else _CG_EMPTY

    def stamp(self, records: list[dict]) -> list[dict]:
        """Only host and ingest time (rows about the host, not a process)."""
        now = time.time()
        for rec in records:
            rec["host"] = self.host
            rec["ingest_ts"] = now
        return records

    def _context(self, pid, cgid, ppid, exec_event: bool) -> dict:
        cols: dict = {}
        pinfo = None
        if self.procs is not None and pid:
            if exec_event:
                self.procs.forget(pid)
            pinfo = self.procs.get(pid)
            # a short-lived process is often gone before we look: its parent usually is not
            ppid = pinfo.ppid if pinfo else ppid
            parent = self.procs.get(ppid, validate=False) if ppid else None
            cols.update(process_columns(pinfo, parent))
            if pinfo is None and ppid:
                cols["parent_pid"] = ppid
        if self.cgroups is not None:
            cg = self._cgroup({"cgroup_id": cgid}, pinfo, exec_event)
            cols.update(cg)
            if self.k8s is not None:
                cols.update(self.k8s.lookup(cg.get("pod_uid")) or _K8S_EMPTY)
        return cols

    def enrich(self, records: list[dict], pid_field: str = "pid", exec_event: bool = False) -> list[dict]:
        """Add context columns in place; `exec_event`: the pid just exec'd (drop cached context).

        The context of a (pid, cgroup id) pair is reused for `revalidate` seconds; after
        that the process's start time is checked again, so a reused pid gets its own."""
        if not records:
            return records
        t0 = time.perf_counter()
        now = time.time()
        mono = time.monotonic()
        cache = self._ctx
        stamp = {"host": self.host, "ingest_ts": now}
        merged: dict[tuple, dict] = {}     # this batch: key -> context + stamp
        for rec in records:
            key = (rec.get(pid_field), rec.get("cgroup_id"), rec.get("ppid"))
            m = merged.get(key)
            if m is None:
                hit = None if exec_event else cache.get(key)
                if hit is None or mono - hit[0] > self.revalidate:
                    cols = self._context(key[0], key[1], key[2], exec_event)
                    if len(cache) >= 65536:
                        cache.clear()
                    cache[key] = hit = (mono, cols)
                m = merged[key] = {**hit[1], **stamp}
            rec.update(m)
        self.seconds += time.perf_counter() - t0
        self.records += len(records)
        return records

    def stats(self) -> dict:
        out = {"records": self.records, "seconds": self.seconds}
        if self.procs is not None:
            out.update(process_cache_entries=len(self.procs), process_cache_hits=self.procs.hits,
                       process_cache_misses=self.procs.misses)
        if self.cgroups is not None:
            out["cgroup_scans"] = self.cgroups.scans
        if self.k8s is not None:
            out.update({f"kubernetes_{k}": v for k, v in self.k8s.stats().items()})
        return out
