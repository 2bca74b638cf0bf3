"""The metric model every source and exporter shares (no registry, no globals).

A MetricSource is asked for its metrics at scrape/push time: `collect()` reads BPF
maps or counters then and returns Metric objects. Exporters (Prometheus text in
export/prometheus.py, OTLP push in export/otlp.py) only format them.

    Metric(name="kernelscope_exec_total", kind="counter", help="execs seen",
           samples=[({"comm": "bash"}, 12), ...])
    Metric(name="kernelscope_syscall_latency_seconds", kind="histogram", help="...",
           samples=[({"syscall": "read"}, ([(0.001, 5), (0.002, 9), (inf, 9)], 0.0123, 9))])

Histogram values are (buckets, sum, count) with cumulative bucket counts keyed by
their upper bound, the last bound being +inf (math.inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

from kernelscope.runtime.hist import bucket_range

Labels = dict
HistValue = tuple  # (list[(upper_bound: float, cumulative_count: int)], sum: float, count: int)
Value = Union[int, float, HistValue]

KINDS = ("counter", "gauge", "histogram")
OVERFLOW = "__overflow__"


@dataclass
class Metric:
    name: str
    kind: str          # 'counter' | 'gauge' | 'histogram'
    help: str
    samples: list = field(default_factory=list)   # [(labels: dict, value)]

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {KINDS}, not {self.kind!r}")


class MetricSource:
    """Something that can report metrics now; modules and the agent itself are sources."""

    def collect(self) -> list[Metric]:
        raise NotImplementedError


def log2_histogram(slots, scale: float = 1.0) -> HistValue:
    """A ks_hist log2 slot array -> (cumulative buckets, approximate sum, count).

    Slot i holds values in [2^i, 2^(i+1)-1] (slot 0: 0..1); bounds are upper edges
    2^(i+1) times `scale` (e.g. 1e-6 to turn microseconds into seconds). The sum is
    estimated from bucket midpoints since the kernel keeps counts only.
    """
    slots = [int(x) for x in slots]
    last = max((i for i, c in enumerate(slots) if c), default=-1)
    buckets, run, total = [], 0, 0.0
    for i in range(last + 1):
        c = slots[i]
        run += c
        lo, hi = bucket_range(i)
        hi += 1   # upper edge of the bucket, exclusive
        total += c * (lo + hi) / 2 * scale
        buckets.append((hi * scale, run))
    buckets.append((math.inf, run))
    return buckets, total, run


class CardinalityLimiter:
    """Bounds the label sets of each metric: past `cap` distinct series, new ones are
    folded into one overflow series whose varying labels read "__overflow__".

    The first `cap` series seen keep their labels for the life of the limiter (stable
    across scrapes); `folded` counts the samples folded per metric name.
    """

    def __init__(self, cap: int):
        self.cap = cap
        self._seen: dict[str, set] = {}
        self.folded: dict[str, int] = {}

    def apply(self, metric: Metric) -> Metric:
        if self.cap <= 0 or not metric.samples:
            return metric
        seen = self._seen.setdefault(metric.name, set())
        kept: list = []
        over: dict[tuple, object] = {}
        over_labels: dict[tuple, dict] = {}
        for labels, value in metric.samples:
            key = tuple(sorted(labels.items()))
            if key in seen or len(seen) < self.cap:
                seen.add(key)
                kept.append((labels, value))
                continue
            self.folded[metric.name] = self.folded.get(metric.name, 0) + 1
            ol = {k: OVERFLOW for k in labels}
            okey = tuple(sorted(ol))
            over_labels[okey] = ol
            over[okey] = _add(over.get(okey), value, metric.kind)
        for okey, value in over.items():
            kept.append((over_labels[okey], value))
        return Metric(metric.name, metric.kind, metric.help, kept)


def _add(a, b, kind):
    if a is None:
        return b
    if kind == "histogram":
        ba, sa, ca = a
        bb, sb, cb = b
        merged: dict[float, int] = {}
        # cumulative buckets with different bounds: merge by bound, keep cumulative
        for bounds in (ba, bb):
            for ub, _ in bounds:
                merged.setdefault(ub, 0)
        out = []
        for ub in sorted(merged):
            out.append((ub, _cum_at(ba, ub) + _cum_at(bb, ub)))
        return out, sa + sb, ca + cb
    return a + b


def _cum_at(buckets, ub) -> int:
    best = 0
    for b, c in buckets:
        if b <= ub:
            best = c
        else:
            break
    return best
