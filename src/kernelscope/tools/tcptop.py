"""tcptop: the TCP connections (or, with -P, processes) that moved the most bytes in each
interval, from the in-kernel flow table: `tcptop [interval [count]]`.

RX_KB/TX_KB are kilobytes (1024) received/sent in the interval: live connections
are read from the kernel map, those that closed in the interval from the ring
buffer, so short connections are counted too. Live counters are refreshed from
each socket in the kernel at every interval (bytes transmitted, not just queued).

JSON: one {"type": "interval", "ts", "rows": [...]} per interval; each row has the
flow fields plus tx_delta/rx_delta (bytes); then {"type": "summary", "lost", ...}.
"""

from __future__ import annotations

import os
import time

from kernelscope.enrich.net import endpoint
from kernelscope.tools import _net
from kernelscope.tools.common import (
    Output, StopFlag, add_common, nonneg_int, positive_float, positive_int,
)

NAME = "tcptop"
HELP = "top TCP connections or processes by throughput per interval"


def add_arguments(p) -> None:
    p.add_argument("interval", nargs="?", type=positive_float, default=1.0,
                   help="seconds between outputs (default 1)")
    p.add_argument("count", nargs="?", type=nonneg_int, default=None,
                   help="stop after COUNT intervals")
    p.add_argument("-C", "--noclear", action="store_true", help="do not clear the screen")
    p.add_argument("-P", "--processes", action="store_true", help="one row per process")
    p.add_argument("-n", "--rows", type=positive_int, default=20, metavar="N",
                   help="at most N rows per interval (default 20)")
    p.add_argument("--max-flows", type=positive_int, default=None, metavar="N",
                   help="kernel flow table size (default 16384)")
    _net.add_family_flags(p)
    add_common(p)


def _loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "-"


def format_interval(rows: list[dict], processes: bool, ts: float) -> list[str]:
    lines = [f"{time.strftime('%H:%M:%S', time.localtime(ts))} loadavg: {_loadavg()}", ""]
    if processes:
        lines.append(f"{'PID':>7} {'COMM':<16} {'CONNS':>5} {'RX_KB':>10} {'TX_KB':>10}")
        for r in rows:
            lines.append(f"{r['pid']:>7} {r['comm'] or '-':<16} {r['connections']:>5} "
                         f"{r['rx_delta'] // 1024:>10} {r['tx_delta'] // 1024:>10}")
    else:
        lines.append(f"{'PID':>7} {'COMM':<16} {'LADDR':<26} {'RADDR':<26} {'RX_KB':>10} {'TX_KB':>10}")
        for r in rows:
            lines.append(f"{r['pid']:>7} {r['comm'] or '-':<16} "
                         f"{endpoint(r['laddr'], r['lport']):<26} {endpoint(r['raddr'], r['rport']):<26} "
                         f"{r['rx_delta'] // 1024:>10} {r['tx_delta'] // 1024:>10}")
    return lines


def run(args) -> int:
    from kernelscope.net.flows import ThroughputTracker, by_process, open_flow_table, report_table
    from kernelscope.tools.common import announce_attached

    keep = _net.flow_filter(args)
    out = Output(args)
    stop = StopFlag(getattr(args, "duration", None))
    tracker = ThroughputTracker()
    clear = not args.noclear and not out.json and os.isatty(1) and not args.output
    n = 0
    with open_flow_table(max_flows=args.max_flows, containers=False) as ft:
        tracker.update(*ft.poll())      # what existed before we looked is the baseline
        announce_attached("tcp_flow")
        while not stop.wait(args.interval):
            rows = [r for r in tracker.update(*ft.poll()) if keep(r)]
            if args.processes:
                rows = by_process(rows)
            rows.sort(key=lambda r: -(r["tx_delta"] + r["rx_delta"]))
            rows = rows[:args.rows]
            ts = time.time()
            if out.json:
                out.obj({"type": "interval", "ts": ts, "rows": rows})
            else:
                if clear:
                    out.line("\033[H\033[2J")
                for line in format_interval(rows, args.processes, ts):
                    out.line(line)
                out.line("")
            out.flush()
            n += 1
            if args.count and n >= args.count:
                break
        report_table(out, ft.stats())
    out.close()
    return 0
