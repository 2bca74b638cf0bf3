"""Prometheus text exposition (format 0.0.4) of Metric objects; no registry, no globals.

`render(metrics)` formats what MetricSources returned at scrape time; the agent's
HTTP server serves it at /metrics with CONTENT_TYPE.
"""

from __future__ import annotations

import math
import re

from kernelscope.export.metrics import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME_OK = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_OK = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape_label_value(v) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _labels(labels: dict, extra: tuple | None = None) -> str:
    items = [(k, v) for k, v in labels.items()]
    if extra:
        items.append(extra)
    if not items:
        return ""
    for k, _ in items:
        if not _LABEL_OK.match(k):
            raise ValueError(f"invalid label name {k!r}")
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in items) + "}"


def render(metrics: list[Metric]) -> str:
    out: list[str] = []
    seen: set[str] = set()
    for m in metrics:
        if not _NAME_OK.match(m.name):
            raise ValueError(f"invalid metric name {m.name!r}")
        if m.name in seen:
            raise ValueError(f"metric {m.name} reported twice")
        seen.add(m.name)
        out.append(f"# HELP {m.name} {escape_help(m.help)}")
        out.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            if m.kind == "histogram":
                buckets, total, count = value
                for ub, c in buckets:
                    out.append(f"{m.name}_bucket{_labels(labels, ('le', format_value(ub)))} {format_value(c)}")
                if not buckets or not math.isinf(buckets[-1][0]):
                    out.append(f"{m.name}_bucket{_labels(labels, ('le', '+Inf'))} {format_value(count)}")
                out.append(f"{m.name}_sum{_labels(labels)} {format_value(total)}")
                out.append(f"{m.name}_count{_labels(labels)} {format_value(count)}")
            else:
                out.append(f"{m.name}{_labels(labels)} {format_value(value)}")
    return "\n".join(out) + "\n"
