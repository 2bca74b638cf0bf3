"""file_open: open/openat/openat2 with path, decoded flags, mode and fd or errno (opensnoop).

The path pointer is saved at syscall entry and read at exit, when the kernel
has faulted it in; paths longer than 255 bytes are cut.
"""

from kernelscope.probes.file_open.decode import CALLS, creates, mode_str, open_flags
from kernelscope.runtime.probe import ProbeSpec


def decode(loaded, batch, records):
    for r in records:
        r["call"] = CALLS.get(r["call"], str(r["call"]))
        r["flags_str"] = open_flags(r["flags"])
        r["mode_str"] = mode_str(r["mode"]) if creates(r["flags"]) else None
    return records


PROBE = ProbeSpec(
    name="file_open",
    doc=__doc__.splitlines()[0],
    event="file_open_event",
    decode=decode,
    optional_hooks={"open_enter", "open_exit", "openat2_enter", "openat2_exit"},
    tools=["opensnoop"],
)
