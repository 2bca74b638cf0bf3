"""sched_runq_latency: run-queue latency (runnable -> on CPU) as in-kernel log2 histograms,
overall, per process or per thread (the probe behind runqlat).

A task's wait starts at sched_wakeup/sched_wakeup_new, or at sched_switch when it was
preempted while runnable, and ends when sched_switch puts it on a CPU. The plain
tracepoint variant sees thread ids only: per-process histograms are keyed by thread
and merged into processes in Python, and the pid filter is a set of thread ids taken
when the probe starts.
"""

from kernelscope.runtime.probe import ProbeSpec

ORDER = ["tp_btf", "raw_tp", "tracepoint"]


def thread_ids(tgid: int) -> list[int]:
    import os
    try:
        return [int(t) for t in os.listdir(f"/proc/{tgid}/task")]
    except OSError:
        return []


def fill_tids(loaded, tgid: int | None = None, **_):
    """open_probe(..., tgid=N): the tracepoint variant filters by thread id, so list
    the process's threads into `tids` (tp_btf and raw_tp filter by cfg_tgid)."""
    if not tgid or not any(c.mechanism == "tracepoint" for c in loaded.choices.values()):
        return
    mp = loaded.maps["tids"]
    for tid in thread_ids(tgid):
        mp.update(tid, b"\x01")


PROBE = ProbeSpec(
    name="sched_runq_latency",
    doc=__doc__.splitlines()[0],
    hooks={h: ORDER for h in ("sched_wakeup", "sched_wakeup_new", "sched_switch")},
    attach=fill_tids,
    tools=["runqlat"],
)
