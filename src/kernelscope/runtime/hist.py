"""log2 histograms (struct ks_hist in ks.bpf.h): buckets, bcc-style bars, JSON.

Slot i holds values v with floor(log2(v)) == i (v == 0 lands in slot 0), so its
range is [2^i, 2^(i+1) - 1], printed as bcc prints it: "2 -> 3".
"""

from __future__ import annotations

from typing import Sequence


def bucket_range(i: int) -> tuple[int, int]:
    if i == 0:
        return 0, 1
    return 1 << i, (1 << (i + 1)) - 1


def buckets(slots: Sequence[int]) -> list[dict]:
    """Non-empty range of the histogram as [{"low", "high", "count"}], zeros inside kept."""
    slots = [int(x) for x in slots]
    nz = [i for i, c in enumerate(slots) if c]
    if not nz:
        return []
    out = []
    for i in range(0, nz[-1] + 1):
        lo, hi = bucket_range(i)
        out.append({"low": lo, "high": hi, "count": slots[i]})
    return out


def total(slots: Sequence[int]) -> int:
    return sum(int(x) for x in slots)


def format_log2(slots: Sequence[int], unit: str = "usecs", width: int = 40) -> str:
    """The histogram as bcc's print_log2_hist prints it (same columns)."""
    rows = buckets(slots)
    wide = len(rows) > 32   # bcc widens the columns past 2^32
    head = f"{'':{15 if wide else 5}}{unit:<{29 if wide else 19}} : count    distribution"
    if not rows:
        return f"{head}\n(no events)"
    peak = max(r["count"] for r in rows) or 1
    col = 20 if wide else 10
    lines = [head]
    for r in rows:
        stars = int(r["count"] * width / peak)
        if r["count"] and not stars:
            stars = 1 if r["count"] * width / peak >= 0.5 else 0
        lines.append(f"{r['low']:>{col}} -> {r['high']:<{col}} : {r['count']:<8} "
                     f"|{'*' * stars:<{width}}|")
    return "\n".join(lines)


def merge(*hists: Sequence[int]) -> list[int]:
    n = max(len(h) for h in hists)
    return [sum(int(h[i]) if i < len(h) else 0 for h in hists) for i in range(n)]


def percentile(slots: Sequence[int], q: float) -> float | None:
    """Approximate q-quantile (0..1): the upper bound of the bucket that holds it."""
    n = total(slots)
    if not n:
        return None
    need = q * n
    run = 0
    for i, c in enumerate(slots):
        run += int(c)
        if run >= need:
            return float(bucket_range(i)[1])
    return float(bucket_range(len(slots) - 1)[1])
