"""runqlat: run-queue (scheduler) latency as a log2 histogram, aggregated in the kernel.

The time from a task becoming runnable (woken, or preempted while runnable) to its
running on a CPU. -P gives one histogram per process, -L one per thread.
"""

from __future__ import annotations

import os

from kernelscope.errors import UsageError
from kernelscope.tools._histtool import add_interval_args, emit_hists, read_hists, run_intervals
from kernelscope.tools.common import Output, add_common

NAME = "runqlat"
HELP = "run-queue latency histogram (overall, per process, per thread)"


def add_arguments(p) -> None:
    add_interval_args(p)
    p.add_argument("-m", "--milliseconds", action="store_true", help="histogram in milliseconds")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-P", "--pids", action="store_true", help="one histogram per process")
    g.add_argument("-L", "--tids", action="store_true", help="one histogram per thread")
    add_common(p, comm=False, uid=False)


def tgid_of(tid: int) -> int:
    """The process of a thread id (itself when it is gone)."""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return tid


def group_by_pid(entries, tid_keys: bool) -> list[tuple[dict, list[int]]]:
    """(pid, comm, slots) -> one summed histogram per pid; with `tid_keys` the pids are
    thread ids, merged into their processes."""
    merged: dict[int, tuple[str, list[int]]] = {}
    for pid, comm, slots in entries:
        if tid_keys:
            pid = tgid_of(pid)
        name, acc = merged.get(pid, (comm, [0] * len(slots)))
        merged[pid] = (name, [a + b for a, b in zip(acc, slots)])
    return [({"pid": pid, "comm": comm}, slots)
            for pid, (comm, slots) in sorted(merged.items())]


def run(args) -> int:
    from kernelscope.runtime.decode import cstr
    from kernelscope.runtime.loader import open_probe

    if args.pid and len(args.pid) > 1:
        raise UsageError("runqlat takes one -p PID")
    if args.pid and not os.path.exists(f"/proc/{args.pid[0]}"):
        raise UsageError(f"no such process: {args.pid[0]}")
    tgid = args.pid[0] if args.pid else 0
    out = Output(args)
    unit = "msecs" if args.milliseconds else "usecs"
    config = {"per_process": int(args.pids), "per_thread": int(args.tids),
              "ms": int(args.milliseconds), "tgid": tgid}
    with open_probe("sched_runq_latency", config=config, tgid=tgid) as p:
        hists = p.map_dtype("hists", key="sched_runq_latency_key")
        tid_keys = p.choices["sched_switch"].mechanism == "tracepoint"

        def report(ts):
            key_batch, all_slots = read_hists(hists)
            if args.pids or args.tids:
                entries = [(pid, cstr(comm), slots) for pid, comm, slots in
                           zip(key_batch["pid"].tolist(), key_batch["comm"].tolist(), all_slots)]
                if args.pids:
                    groups = group_by_pid(entries, tid_keys)
                else:
                    groups = [({"tid": pid, "comm": comm}, slots)
                              for pid, comm, slots in sorted(entries)]
            else:
                groups = [({}, slots) for slots in all_slots]
            emit_hists(out, groups, unit, _label, ts)

        return run_intervals(args, p, out, report,
                             "Tracing run queue latency... Hit Ctrl-C to end.")


def _label(labels: dict) -> str | None:
    if "pid" in labels:
        return f"pid = {labels['pid']} {labels['comm']}"
    if "tid" in labels:
        return f"tid = {labels['tid']} {labels['comm']}"
    return None
