"""proc_exit: process (and optionally thread) exits with code or signal and lifetime (exitsnoop).

The exiting task's exit_code is read at sched_process_exit: a normal exit gives
exit_code (0-255) and sig 0; a fatal signal gives sig (and core_dumped).
"""

from kernelscope.runtime.probe import ProbeSpec


def decode(loaded, batch, records):
    for r in records:
        r["core_dumped"] = bool(r["core_dumped"])
    return records


PROBE = ProbeSpec(
    name="proc_exit",
    doc=__doc__.splitlines()[0],
    event="proc_exit_event",
    decode=decode,
    tools=["exitsnoop"],
)
