"""proc_exec: every exec, successful or failed, with argv (the probe behind execsnoop).

argv is read at syscall entry into a 4096-byte buffer: at most 64 arguments,
each cut at 255 bytes; anything cut sets args_truncated.
"""

from kernelscope.runtime.decode import cstr
from kernelscope.runtime.probe import ProbeSpec

ARGS_BUF = 4096
ARG_MAX = 255
MAX_ARGS = 64


def split_args(buf: bytes, size: int, count: int) -> list[str]:
    """The NUL-separated argument buffer -> list of str (empty arguments kept)."""
    parts = bytes(buf[:size]).split(b"\0")
    return [p.decode("utf-8", errors="replace") for p in parts[:count]]


def decode(loaded, batch, records):
    raw_args = batch["args"]
    for rec, buf, size, count in zip(records, raw_args, batch["args_size"], batch["args_count"]):
        # numpy 'S' strips trailing NULs: pad back so empty last args survive
        b = bytes(buf).ljust(int(size), b"\0")
        rec["args"] = split_args(b, int(size), int(count))
        rec["args_truncated"] = bool(rec["args_truncated"])
        rec.pop("args_size", None)
        rec.pop("args_count", None)
    return records


PROBE = ProbeSpec(
    name="proc_exec",
    doc=__doc__.splitlines()[0],
    event="proc_exec_event",
    decode=decode,
    tools=["execsnoop"],
)

__all__ = ["PROBE", "split_args", "cstr"]
