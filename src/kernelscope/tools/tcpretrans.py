"""tcpretrans: TCP retransmissions, one line each, or counted per flow (-c).

A line per retransmitted segment (tcp:tcp_retransmit_skb: data, SYN, FIN after a
timeout, fast retransmit, ...) and per retransmitted SYN-ACK
(tcp:tcp_retransmit_synack), with the flow (local -> remote) and the socket's
TCP state. Retransmissions run from timers and softirqs, so no process is
shown. With -c, the kernel only counts per flow; the table is printed at exit
(and every --interval seconds). IPv4 and IPv6.

JSON fields (events): ts, skaddr, ip, family, laddr, lport, raddr, rport, state,
kind ("segment" or "synack"), err, err_name (why the retransmission failed, if it did).
JSON fields (-c): {"type": "count", ip, family, laddr, lport, raddr, rport, retransmits}.
"""

from __future__ import annotations

import time

from kernelscope.enrich.net import endpoint
from kernelscope.tools import _net
from kernelscope.tools.common import (Output, StopFlag, add_common, announce_attached,
                                      emit_json_or, fmt_time, positive_float, report_lost,
                                      run_event_tool)

NAME = "tcpretrans"
HELP = "trace TCP retransmissions (flow and state), or count them per flow (-c)"

HEADER = (f"{'TIME':<8} {'IP':<2} {'LOCAL':<22} {'REMOTE':<22} {'STATE':<12} {'KIND':<7}")


def add_arguments(p) -> None:
    p.add_argument("-c", "--count", action="store_true",
                   help="count retransmissions per flow in the kernel; print the table at exit")
    p.add_argument("-i", "--interval", type=positive_float, metavar="SECONDS",
                   help="with -c: also print the table every SECONDS")
    _net.add_port_flags(p, "flows")
    _net.add_family_flags(p)
    add_common(p, pid=False, comm=False, uid=False)


def format_line(r: dict) -> str:
    kind = r["kind"] if not r["err"] else f"{r['kind']}:{r['err_name']}"
    return (f"{fmt_time(r['ts']):<8} {r['ip'][-1]:<2} {endpoint(r['laddr'], r['lport']):<22} "
            f"{endpoint(r['raddr'], r['rport']):<22} {r['state']:<12} {kind:<7}")


def format_counts(rows: list[dict]) -> list[str]:
    lines = [f"{'LOCAL':<40} {'REMOTE':<40} {'RETRANSMITS':>11}"]
    for r in rows:
        lines.append(f"{endpoint(r['laddr'], r['lport']):<40} "
                     f"{endpoint(r['raddr'], r['rport']):<40} {r['retransmits']:>11}")
    return lines


def _run_count(args, keep, config: dict) -> int:
    from kernelscope.probes.tcp_retrans.probe import read_counts
    from kernelscope.runtime.loader import open_probe

    out = Output(args)
    stop = StopFlag(getattr(args, "duration", None))
    with open_probe("tcp_retrans", config={"count": 1, **config}) as p:
        announce_attached("tcp_retrans")
        if not out.json:
            out.line("Counting TCP retransmissions per flow... Ctrl-C to end")
            out.flush()

        def dump():
            rows = [r for r in read_counts(p) if keep(r)]
            if out.json:
                for r in rows:
                    out.obj({"type": "count", **r})
            else:
                out.line(time.strftime("%H:%M:%S"))
                for line in format_counts(rows):
                    out.line(line)
            out.flush()

        while not stop.wait(args.interval or 3600.0):
            dump()
        dump()
        report_lost(out, p.lost())
    out.close()
    return 0


def run(args) -> int:
    base = _net.flow_filter(args, ports={"lport": "lport", "rport": "rport"}, process=False)
    ports = set(args.port or ())

    def keep(r: dict) -> bool:
        if ports and r["lport"] not in ports and r["rport"] not in ports:
            return False
        return base(r)

    config = _net.kernel_filter(args, lports="lport", rports="rport", ports="port")
    if args.count:
        return _run_count(args, keep, config)
    if args.interval:
        from kernelscope.errors import UsageError
        raise UsageError("--interval needs -c/--count")
    return run_event_tool(args, "tcp_retrans", emit_json_or(format_line, "retrans"),
                          config=config, header=HEADER, keep=keep)
