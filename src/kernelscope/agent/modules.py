"""The modules the agent knows, by config name, as import paths (nothing registers itself).

A module whose probe is not in this build, or cannot load on this kernel, is skipped
with the reason (shown by `kernelscope status`). To add one: write a Module (see
agent/module.py), usually a ProbeModule subclass, and list it in MODULES.
"""

from __future__ import annotations

import importlib

import numpy as np

import time

from kernelscope.agent.config import _int, parse_duration
from kernelscope.agent.module import ProbeModule
from kernelscope.export.metrics import Metric, log2_histogram
from kernelscope.runtime.decode import cstr


def _duration(v):
    return parse_duration(v)


def _size_pow2(v):
    from kernelscope.agent.config import parse_size
    n = parse_size(v)
    if n and (n & (n - 1) or n < 4096):
        raise ValueError(f"must be a power of two of at least 4096 bytes, got {v!r}")
    return n

# config name -> "module.path:Class"; order is start order
MODULES: dict[str, str] = {
    "exec": "kernelscope.agent.modules:ExecModule",
    "flows": "kernelscope.agent.modules:FlowModule",
    "syscalls": "kernelscope.agent.modules:SyscallModule",
    "disk": "kernelscope.agent.modules:DiskModule",
    "runqueue": "kernelscope.agent.modules:RunqueueModule",
}


def module_class(name: str):
    path = MODULES[name]
    mod, _, cls = path.partition(":")
    return getattr(importlib.import_module(mod), cls)


def module_options() -> dict[str, dict]:
    return {name: module_class(name).OPTIONS for name in MODULES}


class ExecModule(ProbeModule):
    """Every exec (proc_exec probe) as rows of table proc_exec; exec counts by command
    and outcome from the in-kernel map exec_count as kernelscope_exec_total."""

    name = "exec"
    probe = "proc_exec"
    exec_events = True
    OPTIONS = {
        "max_args": (_int(1, 64), 64, "arguments read per exec (1-64)"),
        "uid": (_int(-1, 2 ** 32 - 2), -1, "only execs by this user id (-1: all)"),
    }

    def load_config(self) -> dict:
        cfg = {"max_args": self.options.get("max_args", 64)}
        if self.options.get("uid", -1) >= 0:
            cfg["uid"] = self.options["uid"]
        return cfg

    def start(self) -> None:
        super().start()
        # exec_count is labelled by hand below; the generic counter would duplicate it
        self._maps = [m for m in self._maps if m[1] != "exec_count"]
        self.loaded.map_dtype("exec_count")

    def collect(self) -> list[Metric]:
        if self.loaded is None:
            return []
        keys, vals = self.loaded.maps["exec_count"].lookup_batch()
        samples = []
        for k, v in zip(keys, vals):
            comm = cstr(bytes(k["comm"]))
            samples.append(({"comm": comm, "result": "error" if k["failed"] else "ok"}, int(v)))
        not_counted = self.loaded.maps["exec_count_full"].percpu_sum(0)
        return [
            Metric("kernelscope_exec_total", "counter",
                   "execs completed, by new command name and result (counted in the kernel)", samples),
            Metric("kernelscope_exec_uncounted_total", "counter",
                   "execs not in kernelscope_exec_total because its kernel map was full",
                   [({}, not_counted)]),
        ] + super().collect()


class FlowModule(ProbeModule):
    """TCP flows through kernelscope.net.flows.FlowTable: closed flows as rows of table
    tcp_flow; open flows snapshotted into tcp_flow_live every `live_interval`; flow table
    counters and the open-flow count as metrics."""

    name = "flows"
    probe = "tcp_flow"
    OPTIONS = {
        "max_flows": (_int(0, 10_000_000), 0, "kernel flow table size (0: the probe's default)"),
        "live_interval": (_duration, 30.0, "seconds between snapshots of open flows (0: none)"),
        # 2 MiB holds ~12,000 close records; the agent drains it on every wakeup. Its
        # pages are resident twice over (the kernel maps the data area twice), so the
        # size is the agent's memory: raise it for hosts with bursts of >50k conn/s
        "ring_size": (_size_pow2, 2 << 20, 'close-event ring buffer size, a power of two ("16MiB"; 0: the '
                                           "probe's default, 4 MiB)"),
    }

    @property
    def tables(self):
        return ("tcp_flow", "tcp_flow_live") if self.options.get("live_interval") else ("tcp_flow",)

    def start(self) -> None:
        from kernelscope.net.flows import FlowTable
        from kernelscope.runtime.loader import open_probe
        from kernelscope.store.schema import decoder_types
        sizes = {}
        if self.options.get("max_flows"):
            sizes["flows"] = self.options["max_flows"]
        if self.options.get("ring_size"):
            sizes["events"] = self.options["ring_size"]
        self.loaded = open_probe(self.probe, map_sizes=sizes or None)
        self.table = FlowTable(self.loaded, cmdline=False, containers=False)
        self._ring = self.table.ring
        self._types = decoder_types(self.table.decoder)
        self._last_live = time.monotonic()
        # drop-reason names come from a scan of vmlinux BTF: do it now, before the
        # agent trims its heap after start (see Agent.start)
        from kernelscope.runtime.decode import drop_reason_name
        drop_reason_name(0)

    def poll(self, final: bool = False) -> dict[str, list[dict]]:
        out = {}
        t0 = time.perf_counter()
        closed = self.table.read_closed()
        self.received += len(closed)
        self.decode_seconds += time.perf_counter() - t0
        if closed:
            out["tcp_flow"] = self.ctx.enricher.enrich(closed)
        every = self.options.get("live_interval") or 0
        if every and (time.monotonic() - self._last_live >= every or final):
            self._last_live = time.monotonic()
            live = [r for r in self.table.read_live() if r["open"]]
            if live:
                out["tcp_flow_live"] = self.ctx.enricher.enrich(live)
        return out

    def collect(self) -> list[Metric]:
        if self.loaded is None:
            return []
        st = self.table.stats()
        return [
            Metric("kernelscope_tcp_flows_open", "gauge", "TCP flows in the kernel flow table",
                   [({}, st["live"])]),
            Metric("kernelscope_tcp_flows_total", "counter", "TCP flows seen (inserted in the table)",
                   [({}, st["inserted"])]),
            Metric("kernelscope_tcp_flows_evicted_total", "counter",
                   "flows pushed out of the full LRU table before they closed", [({}, st["evicted"])]),
            Metric("kernelscope_tcp_flows_insert_failed_total", "counter",
                   "flows the kernel could not insert", [({}, st["insert_failed"])]),
        ]


class _SummaryModule(ProbeModule):
    """Map-only probes: metrics at scrape time, and every `summary_interval` one row per
    map key with the deltas since the previous summary (table <probe>_summary)."""

    store_events = False
    OPTIONS = {"summary_interval": (_duration, 60.0, "seconds between summary rows (0: none)")}

    @property
    def tables(self):
        return (f"{self.probe}_summary",) if self.options.get("summary_interval") else ()

    def start(self) -> None:
        super().start()
        self._last_summary = time.monotonic()
        self._prev: dict = {}
        self.summary()       # baseline: the first row covers the first interval only

    def summary(self) -> list[dict]:
        raise NotImplementedError

    def poll(self, final: bool = False) -> dict[str, list[dict]]:
        every = self.options.get("summary_interval") or 0
        if not every or not (final or time.monotonic() - self._last_summary >= every):
            return {}
        self._last_summary = time.monotonic()
        rows = self.summary()
        if not rows:
            return {}
        now = time.time()
        for r in rows:
            r["ts"] = now
            r["interval_seconds"] = float(every)
        self.ctx.enricher.stamp(rows)
        return {f"{self.probe}_summary": rows}

    def column_types(self) -> dict:
        from kernelscope.store.schema import TS
        return {"ts": TS}


class SyscallModule(_SummaryModule):
    """Syscall calls, errors and time per syscall from probe syscall_count (in-kernel
    per-CPU counters): kernelscope_syscalls_total, _errors_total, _seconds_total."""

    name = "syscalls"
    probe = "syscall_count"

    def start(self) -> None:
        super().start()

    def _read(self) -> dict[str, tuple[int, int, int]]:
        from kernelscope.enrich import syscalls
        # per-CPU array indexed by syscall number, or (older objects) a hash
        mp = self.loaded.map_dtype("counts_by_nr" if "counts_by_nr" in self.loaded.maps else "counts")
        keys, vals = mp.lookup_batch()
        out = {}
        counts = vals["count"].sum(axis=1)
        for k, v, c in zip(keys, vals, counts):
            if not c:
                continue
            name = syscalls.name(int(k["id"] if mp.key_dtype.names else k))
            c, e, t = int(c), int(v["errors"].sum()), int(v["total_ns"].sum())
            pc, pe, pt = out.get(name, (0, 0, 0))
            out[name] = (pc + c, pe + e, pt + t)
        return out

    def summary(self) -> list[dict]:
        cur = self._read()
        rows = []
        for name, (c, e, t) in sorted(cur.items()):
            pc, pe, pt = self._prev.get(name, (0, 0, 0))
            if c - pc:
                rows.append({"syscall": name, "calls": c - pc, "errors": e - pe,
                             "total_ns": t - pt, "avg_ns": (t - pt) / (c - pc)})
        self._prev = cur
        return rows

    def collect(self) -> list[Metric]:
        if self.loaded is None:
            return []
        cur = self._read()
        items = sorted(cur.items())
        return [
            Metric("kernelscope_syscalls_total", "counter", "syscalls completed, by syscall",
                   [({"syscall": n}, c) for n, (c, _e, _t) in items]),
            Metric("kernelscope_syscall_errors_total", "counter", "syscalls that returned an error",
                   [({"syscall": n}, e) for n, (_c, e, _t) in items]),
            Metric("kernelscope_syscall_seconds_total", "counter", "time spent in syscalls",
                   [({"syscall": n}, t / 1e9) for n, (_c, _e, t) in items]),
        ]


class _HistModule(_SummaryModule):
    """Latency histograms (struct ks_hist, microseconds) -> Prometheus histograms in
    seconds and summary rows with count and p50/p90/p99 (upper bucket bounds, us)."""

    metric = ""
    help = ""

    def labels(self, key) -> dict:
        return {}

    def _read(self) -> dict[tuple, np.ndarray]:
        mp = self.loaded.maps["hists"]
        keys, vals = mp.lookup_batch()
        out: dict[tuple, np.ndarray] = {}
        for k, v in zip(keys, vals):
            lab = tuple(sorted(self.labels(k).items()))
            slots = np.asarray(v["slots"], dtype=np.int64)
            out[lab] = out[lab] + slots if lab in out else slots
        return out

    def start(self) -> None:
        super().start()
        self._maps = []    # hists handled below with units and labels

    def summary(self) -> list[dict]:
        from kernelscope.runtime import hist
        cur = self._read()
        rows = []
        for lab, slots in cur.items():
            prev = self._prev.get(lab)
            d = slots - prev if prev is not None else slots
            n = int(d.sum())
            if n:
                rows.append({**dict(lab), "count": n, "p50_us": hist.percentile(d, 0.5),
                             "p90_us": hist.percentile(d, 0.9), "p99_us": hist.percentile(d, 0.99)})
        self._prev = cur
        return rows

    def collect(self) -> list[Metric]:
        if self.loaded is None:
            return []
        return [Metric(self.metric, "histogram", self.help,
                       [(dict(lab), log2_histogram(slots, 1e-6)) for lab, slots in self._read().items()])]


class DiskModule(_HistModule):
    """Block I/O latency per disk from probe block_io_latency (issue -> complete)."""

    name = "disk"
    probe = "block_io_latency"
    config = {"hist": 1, "events": 0, "per_disk": 1}
    metric = "kernelscope_block_io_latency_seconds"
    help = "block I/O request latency (issue to completion), per disk"

    def labels(self, key) -> dict:
        from kernelscope.enrich.disks import disk_name
        if not hasattr(self, "_disks"):
            self._disks = {}
        dev = int(key["dev"])
        if dev not in self._disks:
            self._disks[dev] = disk_name(dev)
        return {"disk": self._disks[dev]}


class RunqueueModule(_HistModule):
    """Run-queue latency (runnable -> running) over all tasks from probe sched_runq_latency."""

    name = "runqueue"
    probe = "sched_runq_latency"
    metric = "kernelscope_runqueue_latency_seconds"
    help = "time tasks waited runnable before running on a CPU"
