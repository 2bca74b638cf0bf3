"""biosnoop: one line per block I/O request: time, process, disk, R/W, sector, bytes, latency."""

from __future__ import annotations

from kernelscope.tools.common import add_common, run_event_tool

NAME = "biosnoop"
HELP = "trace block I/O requests with process, disk, sector, size and latency"

HEADER = (f"{'TIME(s)':<11} {'COMM':<16} {'PID':>7} {'DISK':<9} {'T':<2} {'SECTOR':>12} "
          f"{'BYTES':>8} {'LAT(ms)':>8}")
NO_SECTOR = (1 << 64) - 1   # flushes carry no sector
HEADER_Q = HEADER + f" {'QUE(ms)':>8}"


def add_arguments(p) -> None:
    p.add_argument("-Q", "--queue", action="store_true",
                   help="also show OS queued time (insert -> issue)")
    p.add_argument("-d", "--disk", metavar="DISK", help="only this disk (sda, /dev/loop0, 8:0)")
    add_common(p, uid=False)


def rw(flags_name: str) -> str:
    """bcc's one-letter type from the flags text: R, W, or the op's first letter."""
    op = flags_name.rsplit("-", 1)[-1]
    return {"Read": "R", "Write": "W", "Discard": "D", "Flush": "F"}.get(op, op[:1] or "?")


def run(args) -> int:
    from kernelscope.enrich.disks import disk_dev, disk_name, disk_table
    from kernelscope.tools.biolatency import flag_names

    dev = disk_dev(args.disk) if args.disk else 0
    table = disk_table()
    first_ts = []

    def emit(out, recs):
        for r in recs:
            name = table.get(r["dev"])
            if name is None:
                table.update(disk_table())
                name = disk_name(r["dev"], table)
            r["disk"] = name
            r["flags"] = flag_names(r["cmd_flags"])
            r["rw"] = rw(r["flags"])
            r["latency_ms"] = r["latency_ns"] / 1e6
            r["queue_ms"] = r["queue_ns"] / 1e6
            if out.json:
                out.obj({"type": "bio", **r})
                continue
            if not first_ts:
                first_ts.append(r["ts"])
            sector = "-" if r["sector"] == NO_SECTOR else r["sector"]
            line = (f"{r['ts'] - first_ts[0]:<11.6f} {r['comm']:<16} {r['pid']:>7} "
                    f"{name:<9} {r['rw']:<2} {sector:>12} {r['bytes']:>8} "
                    f"{r['latency_ms']:>8.2f}")
            if args.queue:
                line += f" {r['queue_ms']:>8.2f}"
            out.line(line)

    config = {"hist": 0, "events": 1, "queued": 0, "dev": dev}
    return run_event_tool(args, "block_io_latency", emit, config=config,
                          header=HEADER_Q if args.queue else HEADER)
