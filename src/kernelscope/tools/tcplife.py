"""tcplife: one line per closed TCP connection: process, addresses, exact bytes, duration.

Bytes are the kernel's own per-connection counters (struct tcp_sock), so they are
exact and include what was sent before kernelscope started: TX_BYTES is payload
sent once (retransmissions not counted twice), RX_BYTES payload received. PID/COMM
are the process that connected (client) or accepted (server). IPv4 and IPv6.

JSON: one {"type": "flow", ...} per connection with every flow-table field
(see docs/network.md), then {"type": "summary", "lost": N}.
"""

from __future__ import annotations

from kernelscope.tools import _net
from kernelscope.tools.common import (
    Output, StopFlag, add_common, announce_attached, emit_json_or, fmt_time, positive_int,
    stream_records,
)

NAME = "tcplife"
HELP = "closed TCP connections: pid, comm, addresses, exact tx/rx bytes, duration"


def add_arguments(p) -> None:
    p.add_argument("-T", "--time", action="store_true", help="include a time column (HH:MM:SS)")
    p.add_argument("-w", "--wide", action="store_true", help="wide columns (IPv6 addresses)")
    p.add_argument("-L", "--localport", type=_net.port_arg, action="append", metavar="PORT",
                   help="only this local port (repeatable)")
    p.add_argument("-D", "--remoteport", type=_net.port_arg, action="append", metavar="PORT",
                   help="only this remote port (repeatable)")
    p.add_argument("--max-flows", type=positive_int, default=None, metavar="N",
                   help="kernel flow table size (default 16384)")
    _net.add_family_flags(p)
    add_common(p)


def header(args) -> str:
    aw = 39 if args.wide else 15
    t = f"{'TIME':<8} " if args.time else ""
    return (f"{t}{'PID':>7} {'COMM':<16} {'LADDR':<{aw}} {'LPORT':>5} {'RADDR':<{aw}} "
            f"{'RPORT':>5} {'TX_BYTES':>12} {'RX_BYTES':>12} {'MS':>10}")


def formatter(args):
    aw = 39 if args.wide else 15

    def fmt(r: dict) -> str:
        t = f"{fmt_time(r['end_ts']):<8} " if args.time else ""
        return (f"{t}{r['pid']:>7} {r['comm'] or '-':<16} {r['laddr']:<{aw}} {r['lport']:>5} "
                f"{r['raddr']:<{aw}} {r['rport']:>5} {r['tx_bytes']:>12} {r['rx_bytes']:>12} "
                f"{r['duration_ms']:>10.2f}")
    return fmt


def run(args) -> int:
    from kernelscope.net.flows import open_flow_table, report_table
    from kernelscope.runtime.reader import Reader

    keep = _net.flow_filter(args, ports={"localport": "lport", "remoteport": "rport"})
    emit = emit_json_or(formatter(args), "flow")
    out = Output(args)
    stop = StopFlag(getattr(args, "duration", None))
    with open_flow_table(max_flows=args.max_flows, cmdline=args.json,
                         containers=args.json) as ft, Reader({"events": ft.ring}) as reader:
        if not out.json:
            out.line(header(args))
            out.flush()
        announce_attached("tcp_flow")
        # batches are taken from the ring by the reader and decoded through the table
        stream_records(out, reader, ft.records, keep, emit, stop)
        report_table(out, ft.stats())
    out.close()
    return 0
