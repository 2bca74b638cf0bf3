"""Turn a batch of records (numpy, layout from BTF) into dicts, enriched by field meaning.

The meaning comes from the semantic typedef of each field (see ks.bpf.h); the
raw value stays and a readable one is added beside it:
  ks_retval_t   retval -> retval, retval_name ("ENOENT" when negative, else None)
  ks_errno_t    err    -> err, err_name
  ks_uid_t      uid    -> uid, uid_name (user name)
  ks_signal_t   sig    -> sig, sig_name
  ks_boot_ns_t  ts     -> ts as wall-clock UNIX seconds (float)
  ks_drop_reason_t r   -> r, r_name (from the running kernel's enum skb_drop_reason)
char arrays become str (up to the first NUL, UTF-8 with replacement).
"""

from __future__ import annotations

import errno as _errno
import pwd
import signal as _signal
import time
from functools import lru_cache

import numpy as np


def errno_name(n: int) -> str:
    return _errno.errorcode.get(abs(int(n)), f"E{abs(int(n))}")


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def signal_name(n: int) -> str:
    try:
        return _signal.Signals(int(n)).name
    except ValueError:
        return f"SIG{int(n)}"


@lru_cache(maxsize=1)
def _drop_reasons() -> dict[int, str]:
    from kernelscope.btf import vmlinux_enum
    try:
        vals = vmlinux_enum("skb_drop_reason")
    except Exception:
        return {}
    return {v: k.removeprefix("SKB_DROP_REASON_") for k, v in vals.items()}


def drop_reason_name(n: int) -> str:
    return _drop_reasons().get(int(n), f"REASON_{int(n)}")


def boot_offset_ns() -> int:
    """Add to a CLOCK_BOOTTIME ns value to get UNIX-epoch ns."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", errors="replace")


class Decoder:
    """Decode batches of one struct; `to_dicts` is the generic path for every probe."""

    def __init__(self, btf, struct_name: str, skip=("pad",)):
        self.dtype = btf.dtype(struct_name)
        self.meanings = btf.meanings(struct_name)
        self.skip = set(skip)
        self._boot_off = boot_offset_ns()
        self._fields = [n for n in self.dtype.names if n not in self.skip and not n.startswith("__")]

    def wall_seconds(self, boot_ns) -> np.ndarray:
        return (np.asarray(boot_ns, dtype=np.int64) + self._boot_off) / 1e9

    def columns(self, batch: np.ndarray) -> dict[str, list]:
        """Column-wise python values (what stores and JSON want), with readable siblings."""
        out: dict[str, list] = {}
        for name in self._fields:
            col = batch[name]
            kind = self.dtype.fields[name][0]
            meaning = self.meanings.get(name)
            if kind.kind == "S":
                out[name] = [cstr(b) for b in col.tolist()]
                continue
            if meaning == "ks_boot_ns_t":
                out[name] = self.wall_seconds(col).tolist()
                continue
            if kind.subdtype is not None or kind.names:
                out[name] = col.tolist()
                continue
            vals = col.tolist()
            out[name] = vals
            if meaning == "ks_retval_t":
                out[name + "_name"] = [errno_name(v) if v < 0 else None for v in vals]
            elif meaning == "ks_errno_t":
                out[name + "_name"] = [errno_name(v) if v else None for v in vals]
            elif meaning == "ks_uid_t":
                out[name + "_name"] = [user_name(v) for v in vals]
            elif meaning == "ks_signal_t":
                out[name + "_name"] = [signal_name(v) if v else None for v in vals]
            elif meaning == "ks_drop_reason_t":
                out[name + "_name"] = [drop_reason_name(v) for v in vals]
        return out

    def to_dicts(self, batch: np.ndarray) -> list[dict]:
        if len(batch) == 0:
            return []
        cols = self.columns(batch)
        keys = list(cols)
        return [dict(zip(keys, row)) for row in zip(*cols.values())]
