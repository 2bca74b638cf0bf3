"""biolatency: block I/O latency as a log2 histogram, aggregated in the kernel.

Issue to completion by default; -Q measures from the request's insertion into the
OS queue. -D gives one histogram per disk, -F one per operation and flags.
"""

from __future__ import annotations

from kernelscope.tools._histtool import add_interval_args, emit_hists, read_hists, run_intervals
from kernelscope.tools.common import Output, add_common

NAME = "biolatency"
HELP = "block I/O latency histogram (per disk, per flags, with OS queue time)"


def add_arguments(p) -> None:
    add_interval_args(p)
    p.add_argument("-m", "--milliseconds", action="store_true", help="histogram in milliseconds")
    p.add_argument("-Q", "--queued", action="store_true", help="include OS queued time")
    p.add_argument("-D", "--disks", action="store_true", help="one histogram per disk")
    p.add_argument("-F", "--flags", action="store_true", help="one histogram per I/O flags")
    p.add_argument("-d", "--disk", metavar="DISK", help="only this disk (sda, /dev/loop0, 8:0)")
    add_common(p, pid=False, comm=False, uid=False)


def flag_names(opf: int) -> str:
    """REQ_OP_* | REQ_* bits -> "Sync-Write" style names (this kernel's numbering)."""
    from kernelscope.btf import vmlinux_enum
    try:
        ops = {v: k.removeprefix("REQ_OP_") for k, v in vmlinux_enum("req_op").items()}
        bits = {k.removeprefix("__REQ_"): v for k, v in vmlinux_enum("req_flag_bits").items()}
    except Exception:
        ops, bits = {0: "READ", 1: "WRITE", 2: "FLUSH", 3: "DISCARD"}, {}
    return format_flags(opf, ops, bits)


def format_flags(opf: int, ops: dict[int, str], bits: dict[str, int]) -> str:
    op = opf & 0xff
    name = ops.get(op, "Unknown") if op != 0xff else "Unknown"
    words = [w for w in ("PREFLUSH", "RAHEAD", "SYNC", "META", "FUA")
             if w in bits and opf >> bits[w] & 1]
    pretty = {"PREFLUSH": "PreFlush", "RAHEAD": "ReadAhead", "SYNC": "Sync", "META": "Meta",
              "FUA": "FUA"}
    op_pretty = "".join(part.capitalize() for part in name.split("_"))
    return "-".join([pretty[w] for w in words] + [op_pretty])


def run(args) -> int:
    from kernelscope.enrich.disks import disk_dev, disk_name, disk_table
    from kernelscope.runtime.loader import open_probe

    dev = disk_dev(args.disk) if args.disk else 0
    out = Output(args)
    unit = "msecs" if args.milliseconds else "usecs"
    config = {"hist": 1, "events": 0, "queued": int(args.queued), "per_disk": int(args.disks),
              "per_flag": int(args.flags), "ms": int(args.milliseconds), "dev": dev}
    with open_probe("block_io_latency", config=config) as p:
        hists = p.map_dtype("hists", key="block_io_latency_key")

        def report(ts):
            table = disk_table()
            groups = []
            key_batch, all_slots = read_hists(hists)
            for dev, flags, slots in zip(key_batch["dev"].tolist(),
                                         key_batch["cmd_flags"].tolist(), all_slots):
                labels = {}
                if args.disks:
                    labels["disk"] = disk_name(dev, table)
                if args.flags:
                    labels["flags"] = flag_names(flags)
                groups.append((labels, slots))
            groups.sort(key=lambda g: (g[0].get("disk", ""), g[0].get("flags", "")))
            emit_hists(out, groups, unit, _label, ts)

        return run_intervals(args, p, out, report,
                             "Tracing block device I/O... Hit Ctrl-C to end.")


def _label(labels: dict) -> str | None:
    parts = []
    if "disk" in labels:
        parts.append(f"disk = {labels['disk']}")
    if "flags" in labels:
        parts.append(f"flags = {labels['flags']}")
    return "  ".join(parts) or None
