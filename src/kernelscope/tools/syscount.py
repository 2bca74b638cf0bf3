"""syscount: system calls counted in the kernel, per syscall (or per process with -P),
with errors and total / average latency; printed every -i seconds or at the end.

JSON: one object per row, type "syscall_count": ts (end of the interval, UNIX
seconds), interval_s, then either syscall, nr (per syscall) or pid, comm (-P),
and count, errors, total_ns, avg_ns.
"""

from __future__ import annotations

import time

import numpy as np

from kernelscope.errors import UsageError
from kernelscope.tools.common import (
    Output, StopFlag, add_common, announce_attached, positive_float, report_lost,
)

NAME = "syscount"
HELP = "count system calls and their latency, per syscall or per process (in-kernel)"


def add_arguments(p) -> None:
    p.add_argument("-P", "--process", action="store_true", help="count per process, not per syscall")
    p.add_argument("-i", "--interval", type=positive_float, metavar="SECONDS",
                   help="print and reset the counts every SECONDS (default: once at the end)")
    p.add_argument("-e", "--syscall", action="append", metavar="NAME[,NAME...]",
                   help="count only these syscalls (repeatable)")
    p.add_argument("-T", "--top", type=int, default=20, metavar="N",
                   help="print the N busiest rows (0: all; default 20)")
    p.add_argument("-s", "--sort", choices=("count", "time", "errors"), default="count",
                   help="order rows by count (default), total time or errors")
    add_common(p)


def split_names(values: list[str] | None) -> list[str]:
    """['open,read', 'write'] -> ['open', 'read', 'write'] (blank items dropped)."""
    return [n.strip() for v in values or () for n in v.split(",") if n.strip()]


def rows_from_arrays(keys: np.ndarray, vals: np.ndarray, per_process: bool) -> list[dict]:
    """Per-CPU map contents (keys (n,), values (n, ncpus)) -> summed rows."""
    from kernelscope.enrich import syscalls
    from kernelscope.runtime.decode import cstr
    rows = []
    for i in range(len(keys)):
        v = vals[i]
        count = int(v["count"].sum())
        if not count:
            continue
        row = {"count": count, "errors": int(v["errors"].sum()),
               "total_ns": int(v["total_ns"].sum())}
        row["avg_ns"] = row["total_ns"] // count
        kid = int(keys[i]["id"] if keys.dtype.names else keys[i])  # hash key struct, or array index
        if per_process:
            comms = [cstr(c) for c in v["comm"].tolist() if cstr(c)]
            row = {"pid": kid, "comm": comms[0] if comms else "", **row}
        else:
            row = {"syscall": syscalls.name(kid), "nr": kid, **row}
        rows.append(row)
    return rows


def prune_exited(counts, before: dict) -> None:
    """Drop the map rows of processes that have exited (nothing adds to them any more)."""
    import os
    for pid in [p for p in before if not os.path.exists(f"/proc/{p}")]:
        counts.delete(np.array([(pid,)], dtype=counts.key_dtype)[0])
        del before[pid]


def subtract(rows: list[dict], before: dict) -> list[dict]:
    """Cumulative rows minus the previous snapshot ({key: row}); rows with no new calls dropped."""
    out = []
    for r in rows:
        key = r.get("nr", r.get("pid"))
        prev = before.get(key)
        if prev:
            r = {**r, "count": r["count"] - prev["count"], "errors": r["errors"] - prev["errors"],
                 "total_ns": r["total_ns"] - prev["total_ns"]}
            if r["count"] <= 0:
                continue
            r["avg_ns"] = r["total_ns"] // r["count"]
        out.append(r)
    return out


def sort_rows(rows: list[dict], by: str, top: int) -> list[dict]:
    field = {"count": "count", "time": "total_ns", "errors": "errors"}[by]
    rows = sorted(rows, key=lambda r: (-r[field], -r["count"], str(r.get("syscall", r.get("pid")))))
    return rows[:top] if top else rows


def format_table(rows: list[dict], per_process: bool) -> list[str]:
    head = f"{'PID':>7} {'COMM':<16}" if per_process else f"{'SYSCALL':<24}"
    lines = [f"{head} {'COUNT':>10} {'ERRORS':>8} {'TOTAL(ms)':>12} {'AVG(us)':>10}"]
    for r in rows:
        who = f"{r['pid']:>7} {r['comm']:<16}" if per_process else f"{r['syscall']:<24}"
        lines.append(f"{who} {r['count']:>10} {r['errors']:>8} {r['total_ns'] / 1e6:>12.3f} "
                     f"{r['avg_ns'] / 1e3:>10.3f}")
    return lines


def run(args) -> int:
    from kernelscope.enrich import syscalls
    from kernelscope.runtime.loader import open_probe

    if args.top < 0:
        raise UsageError("--top must not be negative")
    if args.pid and len(args.pid) > 1:
        raise UsageError("syscount counts one process at a time: give -p once")
    if args.comm and len(args.comm) > 1:
        raise UsageError("syscount filters one command name: give -c once")
    wanted = syscalls.resolve(split_names(args.syscall))
    config = {"per_process": 1 if args.process else 0, "filter": 1 if wanted else 0}
    if args.pid:
        config["pid"] = args.pid[0]
    if args.uid is not None:
        config["uid"] = args.uid
    if args.comm:
        raw = args.comm[0].encode()
        if len(raw) > 15:
            raise UsageError(f"command names have at most 15 bytes: {args.comm[0]!r}")
        config["comm"] = raw

    out = Output(args)
    stop = StopFlag(getattr(args, "duration", None))
    with open_probe("syscall_count", config=config) as p:
        for nr in wanted:
            p.maps["wanted"].update(nr, b"\x01")
        # totals only grow in the kernel (no read-and-delete race); each report is the
        # difference from the previous one
        if args.process:   # a hash by tgid; rows of exited processes are pruned
            counts = p.map_dtype("counts")
        else:              # an array by syscall number
            counts = p.map_dtype("counts_by_nr")
        before: dict = {}
        announce_attached("syscall_count")
        if not out.json:
            out.line("Tracing syscalls" + (f", printing every {args.interval:g}s" if args.interval
                                            else ", printing at the end") + "... Ctrl-C to stop")
            out.flush()
        started = last = time.monotonic()
        while True:
            done = stop.wait(args.interval if args.interval else 3600)
            now = time.monotonic()
            if args.interval or done:
                keys, vals = counts.lookup_batch()
                totals = rows_from_arrays(keys, vals, args.process)
                rows = sort_rows(subtract(totals, before), args.sort, args.top)
                before = {r.get("nr", r.get("pid")): r for r in totals}
                if args.process and args.interval:
                    prune_exited(counts, before)
                emit(out, rows, args.process, now - last if args.interval else now - started)
                last = now
            if done:
                break
        report_lost(out, p.lost())
    out.close()
    return 0


def emit(out: Output, rows: list[dict], per_process: bool, interval_s: float) -> None:
    ts = time.time()
    if out.json:
        for r in rows:
            out.obj({"type": "syscall_count", "ts": ts, "interval_s": round(interval_s, 3), **r})
    else:
        out.line(f"[{time.strftime('%H:%M:%S')}]")
        for line in format_table(rows, per_process):
            out.line(line)
        out.line("")
    out.flush()
