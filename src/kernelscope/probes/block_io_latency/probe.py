"""block_io_latency: block I/O request latency, as in-kernel log2 histograms per disk and
flags (the probe behind biolatency) and one event per request (biosnoop).

Requests are keyed by struct request * (tp_btf, raw_tp) or by (dev, sector) with the
plain tracepoints. block_io_start (kernel 6.5+) records the submitting process; older
kernels fall back to the process seen at insert or issue.
"""

from kernelscope.errors import UnavailableError
from kernelscope.runtime.probe import ProbeSpec

HOOKS = ("block_io_start", "block_rq_insert", "block_rq_issue", "block_rq_complete")
ORDER = ["tp_btf", "raw_tp", "tracepoint"]
OPTIONAL = {"block_io_start", "block_rq_insert"}


def skip_missing_tracepoints(obj, config, exists=None):
    """Optional hooks whose tracepoint this kernel lacks (block_io_start before 6.5) are
    not loaded: a tp_btf or raw_tp program for a missing tracepoint fails the load."""
    from kernelscope import host
    exists = exists or host.tracepoint_exists
    for prog in obj.programs.values():
        hook = prog.name.rsplit("__", 1)[0]
        if prog.autoload and hook in OPTIONAL and not exists("block", hook):
            prog.autoload = False


def check_keys(loaded, **_):
    """Requests keyed by pointer (tp_btf, raw_tp) and by (dev, sector) (tracepoint)
    never match each other: every hook must use the same kind of key."""
    kinds = {c.mechanism == "tracepoint" for c in loaded.choices.values()
             if c.program and loaded.obj.programs[c.program].autoload}
    if len(kinds) > 1:
        raise UnavailableError("block_io_latency: this kernel offers the block tracepoints "
                               "through different mechanisms; cannot match requests")


PROBE = ProbeSpec(
    name="block_io_latency",
    doc=__doc__.splitlines()[0],
    event="block_io_latency_event",
    hooks={h: ORDER for h in HOOKS},
    optional_hooks=OPTIONAL,
    prepare=skip_missing_tracepoints,
    attach=check_keys,
    tools=["biolatency", "biosnoop"],
)
