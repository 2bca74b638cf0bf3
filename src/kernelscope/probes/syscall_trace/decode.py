"""Pure formatting of traced syscalls: arguments by name and C type, return values.

Argument names and types come from the kernel's tracefs formats
(kernelscope.enrich.syscalls.signature); this module only turns raw 64-bit
values into strace-like text.
"""

from __future__ import annotations

import os

from kernelscope.probes.file_open.decode import creates, dirfd_str, open_flags
from kernelscope.runtime.decode import errno_name

STR_MAX = 255      # bytes of a string argument kept (NUL excluded)
SHOW_MAX = 32      # bytes of a buffer shown, like strace's default -s 32

PROT = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")]
MAP = [(0x01, "MAP_SHARED"), (0x02, "MAP_PRIVATE"), (0x03, "MAP_SHARED_VALIDATE"),
       (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x100, "MAP_GROWSDOWN"),
       (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"),
       (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"),
       (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
       (0x100000, "MAP_FIXED_NOREPLACE")]
AT_FLAGS = [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"),
            (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH")]
# calls whose return value is an address
ADDRESS_RESULT = {"mmap", "brk", "mremap", "shmat"}
FD_NAMES = {"fd", "oldfd", "newfd", "epfd", "out_fd", "in_fd", "fd_in", "fd_out"}
DIRFD_NAMES = {"dfd", "dirfd", "olddfd", "newdfd", "fromfd", "tofd"}
OPEN_CALLS = {"open", "openat", "creat"}
MODE_CALLS = {"open", "openat", "creat", "mkdir", "mkdirat", "chmod", "fchmod", "fchmodat",
              "fchmodat2", "mknod", "mknodat"}
SIGNED32 = {"int", "pid_t", "key_t", "clockid_t", "mqd_t", "timer_t", "uid_t", "gid_t",
            "qid_t", "rwf_t"}
SIGNED64 = {"long", "off_t", "loff_t", "ssize_t", "time_t", "__s64", "long int"}


def bit_flags(value: int, table: list[tuple[int, str]], zero: str = "0") -> str:
    """value -> 'A|B|0x40' from (bit, name) pairs; multi-bit names must match fully."""
    value = int(value)
    if value == 0:
        return zero
    parts, rest = [], value
    for bit, name in sorted(table, key=lambda t: -bin(t[0]).count("1")):
        if bit and rest & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def mmap_flags(value: int) -> str:
    value = int(value)
    kind = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}.get(value & 3)
    rest = bit_flags(value & ~3, [t for t in MAP if t[0] > 3], zero="")
    return "|".join(p for p in (kind, rest) if p) or "0"


def c_string(raw: bytes, limit: int = SHOW_MAX, truncated: bool = False) -> str:
    """bytes -> a C-escaped, double-quoted string, cut at `limit` with '...' after."""
    esc = {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\"}
    body = "".join(esc.get(b, chr(b) if 32 <= b < 127 else f"\\{b:o}") for b in raw[:limit])
    more = truncated or len(raw) > limit
    return f'"{body}"' + ("..." if more else "")


def to_signed(value: int, bits: int) -> int:
    value = int(value) & ((1 << bits) - 1)
    return value - (1 << bits) if value >> (bits - 1) else value


def format_arg(sysname: str, ctype: str, name: str, value: int) -> str:
    """One non-string argument, by the call, its C type and its name."""
    t = " ".join(ctype.replace("__user", "").split())
    if name in DIRFD_NAMES:
        return dirfd_str(to_signed(value, 32))
    if name in FD_NAMES:
        return str(to_signed(value, 32))
    if name == "sig" and t == "int":
        from kernelscope.runtime.decode import signal_name
        n = to_signed(value, 32)
        return signal_name(n) if 0 < n < 65 else str(n)
    if name == "flags" and sysname in OPEN_CALLS:
        return open_flags(value)
    if name == "mode" and sysname in MODE_CALLS:
        return f"0{int(value) & 0o7777:o}"
    if name == "prot" and sysname in ("mmap", "mprotect", "pkey_mprotect"):
        return bit_flags(value, PROT, zero="PROT_NONE")
    if name == "flags" and sysname == "mmap":
        return mmap_flags(value)
    if name == "flag" or (name == "flags" and sysname in ("newfstatat", "fstatat", "unlinkat",
                                                         "faccessat2", "fchownat", "linkat",
                                                         "statx", "utimensat", "execveat")):
        return bit_flags(value, AT_FLAGS)
    if name in ("addr", "start", "brk") and sysname in ADDRESS_RESULT | {"munmap", "mprotect", "madvise"}:
        return "NULL" if int(value) == 0 else hex(int(value) & (2**64 - 1))
    if "*" in t:
        return "NULL" if int(value) == 0 else hex(int(value) & (2**64 - 1))
    if t in SIGNED32 or t == "int":
        return str(to_signed(value, 32))
    if t in SIGNED64:
        return str(to_signed(value, 64))
    if t.startswith("unsigned int") or t in ("u32", "umode_t", "__u32"):
        return str(int(value) & 0xFFFFFFFF)
    return str(int(value) & (2**64 - 1))


ARGV_CUT = 256   # added to the packed argv size when entries or bytes were left out


def format_argv(raw: bytes, packed: int) -> str:
    """execve's argv as packed in the kernel (NUL-separated) -> '["ls", "-l"]' (+ '...' if cut)."""
    cut = packed >= ARGV_CUT
    size = packed - ARGV_CUT if cut else packed
    if size <= 0 and not cut:
        return "[]"
    # numpy's fixed-size bytes drop trailing NULs: pad back to the packed size
    parts = bytes(raw).ljust(size, b"\0")[:size].split(b"\0")[:-1] if size else []
    body = ", ".join(c_string(p, STR_MAX) for p in parts)
    return f"[{body}{', ...' if cut else ''}]"


def format_args(sysname: str, signature, args, strings: list[tuple[bytes, int]],
                argv: tuple[bytes, int] | None = None) -> str:
    """All arguments of a call, strace-style.

    signature: [(c_type, name, size)] or None (unknown: six hex values);
    strings: [(bytes, str_len)] for the call's string arguments, in order, as read
    in the kernel (str_len <= 0: not readable); argv: (packed bytes, packed size) of
    execve/execveat."""
    from kernelscope.enrich.syscalls import is_string_arg
    if signature is None:
        return ", ".join(hex(int(a)) for a in args)
    out, si = [], 0
    names = [n for _t, n, _s in signature]
    for i, (ctype, name, _size) in enumerate(signature[:6]):
        v = int(args[i])
        if name == "argv" and argv is not None and sysname in ("execve", "execveat"):
            out.append(format_argv(*argv) if v else "NULL")
            continue
        if name == "mode" and sysname in OPEN_CALLS - {"creat"} and "flags" in names \
                and not creates(args[names.index("flags")]):
            continue   # like strace: no mode without O_CREAT / O_TMPFILE
        if is_string_arg(ctype) and si < len(strings):
            raw, n = strings[si]
            si += 1
            if n is None or n <= 0:
                out.append("NULL" if v == 0 else hex(v))
                continue
            data = raw[: max(n - 1, 0)]
            nxt = signature[i + 1][1] if i + 1 < len(signature) else ""
            if nxt in ("count", "len", "size", "nbytes") and i + 1 < len(args):
                # a buffer with a length: show exactly that many bytes (as read)
                want = int(args[i + 1])
                data = raw[:min(want, len(raw))]
                out.append(c_string(data, SHOW_MAX, truncated=want > len(data)))
            else:
                out.append(c_string(data, STR_MAX, truncated=n - 1 >= STR_MAX))
            continue
        out.append(format_arg(sysname, ctype, name, v))
    return ", ".join(out)


def format_ret(sysname: str, ret: int, returned: bool = True) -> str:
    """'3', '-1 ENOENT (No such file or directory)', '0x7f..' for addresses, '?' when none."""
    if not returned:
        return "?"
    ret = int(ret)
    if -4095 <= ret < 0:
        code = -ret
        return f"-1 {errno_name(code)} ({os.strerror(code)})"
    if sysname in ADDRESS_RESULT:
        return hex(ret & (2**64 - 1))
    return str(ret)


def ret_errno(ret: int) -> str | None:
    ret = int(ret)
    return errno_name(-ret) if -4095 <= ret < 0 else None
