"""Pure decoders for open(2) flags and modes (Linux x86_64 values)."""

from __future__ import annotations

ACCMODES = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}
# asm-generic/fcntl.h (x86_64); O_TMPFILE includes O_DIRECTORY, O_SYNC includes O_DSYNC
FLAG_BITS = [
    (0o20200000, "O_TMPFILE"),
    (0o4010000, "O_SYNC"),
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
]
CALLS = {0: "open", 1: "openat", 2: "openat2"}
AT_FDCWD = -100


def open_flags(flags: int) -> str:
    """0o2101 -> 'O_WRONLY|O_CREAT|O_CLOEXEC'; unknown bits are kept in hex."""
    flags = int(flags)
    parts = [ACCMODES[flags & 3]]
    rest = flags & ~3
    for bit, name in FLAG_BITS:
        if rest & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def creates(flags: int) -> bool:
    """Whether the mode argument matters (O_CREAT or O_TMPFILE)."""
    return bool(int(flags) & 0o100) or int(flags) & 0o20200000 == 0o20200000


def mode_str(mode: int) -> str:
    return f"0{int(mode):o}" if mode else "0"


def dirfd_str(dfd: int) -> str:
    return "AT_FDCWD" if int(dfd) == AT_FDCWD else str(int(dfd))
