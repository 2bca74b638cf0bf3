"""What the log2-histogram tools share (biolatency, runqlat): `[interval [count]]`,
reading and clearing in-kernel histogram maps, bcc-style text and JSON buckets."""

from __future__ import annotations

import time
from typing import Callable, Iterable

from kernelscope.runtime import hist
from kernelscope.tools.common import (
    Output, StopFlag, announce_attached, positive_float, positive_int, report_lost,
)


def add_interval_args(p) -> None:
    p.add_argument("interval", nargs="?", type=positive_float, default=None,
                   help="print a histogram every INTERVAL seconds (default: once, at exit)")
    p.add_argument("count", nargs="?", type=positive_int, default=None,
                   help="stop after COUNT intervals")
    p.add_argument("-T", "--timestamp", action="store_true", help="print a time with each output")


def read_hists(mp, delete: bool = True):
    """(key batch, [slots per key]) of a hash map of struct ks_hist, emptied when `delete`.

    The key batch is a numpy structured array when the map's key_dtype is set
    (LoadedProbe.map_dtype), so fields are read by name."""
    import numpy as np
    key_batch, vals = mp.lookup_batch(delete=delete)
    if not len(key_batch):
        return key_batch, []
    raw = np.frombuffer(vals.tobytes(), dtype="<u8").reshape(len(key_batch), -1)
    return key_batch, [[int(x) for x in row] for row in raw]


def emit_hists(out: Output, groups: Iterable[tuple[dict, list[int]]], unit: str,
               label: Callable[[dict], str | None], ts: float | None) -> None:
    """One bcc-style histogram per group (labels like "disk = sda" above it), or JSON."""
    groups = list(groups)
    if out.json:
        for labels, slots in groups:
            obj = {"type": "histogram", "unit": unit, **labels, "total": hist.total(slots),
                   "buckets": hist.buckets(slots)}
            if ts is not None:
                obj["ts"] = ts
            out.obj(obj)
        if not groups:
            obj = {"type": "histogram", "unit": unit, "total": 0, "buckets": []}
            if ts is not None:
                obj["ts"] = ts
            out.obj(obj)
        out.flush()
        return
    out.line("")
    if ts is not None:
        out.line(time.strftime("%H:%M:%S", time.localtime(ts)))
    if not groups:
        out.line(hist.format_log2([], unit))
    for labels, slots in groups:
        text = label(labels)
        if text:
            out.line("")
            out.line(text)
        out.line(hist.format_log2(slots, unit))
    out.flush()


def show_banner(out: Output, probe, banner: str) -> None:
    """bcc's "Tracing ... Hit Ctrl-C to end." in text mode; the stderr "attached" line
    that scripts and tests wait for in every mode."""
    if not out.json:
        out.line(banner)
        out.flush()
    announce_attached(probe.name)


def run_intervals(args, probe, out: Output, report: Callable[[float | None], None],
                  banner: str) -> int:
    """Call `report(ts)` every interval (or once at the end), then report losses."""
    stop = StopFlag(getattr(args, "duration", None))
    show_banner(out, probe, banner)
    done = 0
    if args.interval is None:
        while not stop.wait(3600):
            pass
        report(time.time() if args.timestamp else None)
    else:
        while True:
            stopped = stop.wait(args.interval)
            report(time.time() if args.timestamp or out.json else None)
            done += 1
            if stopped or (args.count and done >= args.count):
                break
    report_lost(out, probe.lost())
    out.close()
    return 0
