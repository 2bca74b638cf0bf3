"""Block devices: kernel dev_t (major << 20 | minor) <-> disk names from /sys/class/block."""

from __future__ import annotations

from pathlib import Path

from kernelscope.errors import UsageError

SYS_BLOCK = Path("/sys/class/block")
MINORBITS = 20


def mkdev(major: int, minor: int) -> int:
    """The kernel-internal dev_t (what block tracepoints and struct gendisk give)."""
    return (major << MINORBITS) | minor


def split_dev(dev: int) -> tuple[int, int]:
    return dev >> MINORBITS, dev & ((1 << MINORBITS) - 1)


def parse_dev_file(text: str) -> int:
    """A sysfs `dev` file ("259:0\\n") -> kernel dev_t."""
    major, minor = text.strip().split(":")
    return mkdev(int(major), int(minor))


def disk_table(root: Path = SYS_BLOCK) -> dict[int, str]:
    """kernel dev_t -> name for every block device (disks and partitions)."""
    table = {}
    try:
        entries = sorted(Path(root).iterdir())
    except OSError:
        return table
    for d in entries:
        try:
            table[parse_dev_file((d / "dev").read_text())] = d.name
        except (OSError, ValueError):
            continue
    return table


def disk_name(dev: int, table: dict[int, str] | None = None) -> str:
    """The device's name, or "major:minor" when sysfs does not know it (gone, or 0)."""
    table = disk_table() if table is None else table
    name = table.get(dev)
    if name:
        return name
    major, minor = split_dev(dev)
    return f"{major}:{minor}"


def disk_dev(name: str, root: Path = SYS_BLOCK) -> int:
    """A disk name ("sda", "/dev/loop3", "7:3") -> kernel dev_t; UsageError if unknown."""
    text = name.strip()
    if text.startswith("/dev/"):
        text = text[5:]
    if ":" in text:
        try:
            return parse_dev_file(text)
        except ValueError:
            raise UsageError(f"not a disk: {name!r}")
    for dev, n in disk_table(root).items():
        if n == text:
            return dev
    raise UsageError(f"no such disk: {name!r} (see /sys/class/block)")
