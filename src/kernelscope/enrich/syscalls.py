"""This architecture's system calls: number <-> name, and argument names/types.

Names come from the shipped table generated from the kernel's syscall table
(syscalls_x86_64.tbl), merged with the system's asm/unistd_64.h when it has
newer entries. Argument names and C types come from the running kernel's
tracefs formats (events/syscalls/sys_enter_<name>/format).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).with_name("syscalls_x86_64.tbl")
UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
TRACEFS = Path("/sys/kernel/tracing")


def parse_tbl(text: str) -> dict[int, str]:
    """Lines `<nr> <name>` or kernel syscall_64.tbl lines `<nr> <abi> <name> ...` -> {nr: name}.

    x32 entries of a kernel table are skipped (they are not x86_64 numbers)."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if not parts[0].isdigit() or len(parts) < 2:
            continue
        if len(parts) >= 3 and parts[1] in ("common", "64", "x32"):
            if parts[1] == "x32":
                continue
            out[int(parts[0])] = parts[2]
        else:
            out[int(parts[0])] = parts[1]
    return out


def parse_unistd(text: str) -> dict[int, str]:
    """`#define __NR_read 0` lines of asm/unistd_64.h -> {nr: name}."""
    return {int(n): name for name, n in re.findall(r"#define\s+__NR_(\w+)\s+(\d+)\b", text)}


@lru_cache(maxsize=1)
def table() -> dict[int, str]:
    """{nr: name} for this machine (x86_64)."""
    if os.uname().machine != "x86_64":
        return {}
    names = parse_tbl(TABLE.read_text())
    try:
        for nr, name in parse_unistd(UNISTD.read_text()).items():
            names.setdefault(nr, name)
    except OSError:
        pass
    return names


@lru_cache(maxsize=1)
def numbers() -> dict[str, int]:
    return {name: nr for nr, name in table().items()}


def name(nr: int) -> str:
    return table().get(int(nr), f"syscall_{int(nr)}")


def number(sysname: str) -> int | None:
    """Number of a syscall name; `syscall_123` style names are accepted too."""
    if sysname in numbers():
        return numbers()[sysname]
    m = re.fullmatch(r"syscall_(\d+)", sysname)
    return int(m.group(1)) if m else None


def resolve(names: list[str]) -> list[int]:
    """Syscall names -> numbers; unknown names raise UsageError with the first one."""
    from kernelscope.errors import UsageError
    out = []
    for n in names:
        nr = number(n)
        if nr is None:
            raise UsageError(f"unknown syscall {n!r} on {os.uname().machine}")
        out.append(nr)
    return out


def parse_format(text: str) -> list[tuple[str, str, int]]:
    """Arguments of a tracefs sys_enter_* format: [(c_type, name, size)] in order."""
    args = []
    seen_nr = False
    for line in text.splitlines():
        m = re.match(r"\s*field:(.+?);\s*offset:\d+;\s*size:(\d+);", line)
        if not m:
            continue
        decl, size = m.group(1).strip(), int(m.group(2))
        dm = re.match(r"(.*?)([A-Za-z_]\w*)$", decl)
        if not dm:
            continue
        ctype, fname = dm.group(1).strip(), dm.group(2)
        if fname == "__syscall_nr":
            seen_nr = True
            continue
        if seen_nr:
            args.append((ctype, fname, size))
    return args


# table names whose tracefs event is named after the kernel function instead
_EVENT_ALIASES = {"sendfile": "sendfile64", "umount2": "umount"}


@lru_cache(maxsize=1024)
def signature(sysname: str) -> list[tuple[str, str, int]] | None:
    """[(c_type, arg_name, size)] of a syscall from the running kernel, or None."""
    base = TRACEFS / "events" / "syscalls"
    for cand in (sysname, _EVENT_ALIASES.get(sysname, ""), "new" + sysname):
        if not cand:
            continue
        try:
            return parse_format((base / f"sys_enter_{cand}" / "format").read_text())
        except OSError:
            continue
    return None


def is_string_arg(ctype: str) -> bool:
    """A NUL-terminated input string: `const char *` (not `const char **`, not output buffers)."""
    t = " ".join(ctype.split())
    return t in ("const char *", "const char __user *", "char const *")
