"""tcpstates: TCP state changes, with how long the socket spent in the old state.

One line per transition (CLOSE -> SYN_SENT -> ESTABLISHED -> FIN_WAIT1 -> ...).
MS is the time spent in the old state ("-" when the socket entered it before
tracing started). PID/COMM are the socket's owner — the process that connected,
listened, accepted, or sent/received on it — not whatever ran when the
transition happened (most run in softirq context); empty until known. SKADDR
groups the lines of one socket. IPv4 and IPv6.

JSON fields: ts, skaddr, pid, uid, comm, ip, family, laddr, lport, raddr, rport,
oldstate, newstate (names such as "SYN_SENT"), prev_state_ns, prev_state_ms
(null when unknown).
"""

from __future__ import annotations

from kernelscope.enrich.net import endpoint, tcp_state_number
from kernelscope.errors import UsageError
from kernelscope.tools import _net
from kernelscope.tools.common import add_common, emit_json_or, fmt_time, run_event_tool

NAME = "tcpstates"
HELP = "trace TCP state changes with time spent in each state"

HEADER = (f"{'TIME':<8} {'SKADDR':<18} {'PID':>7} {'COMM':<16} {'LOCAL':<22} {'REMOTE':<22} "
          f"{'OLDSTATE':>11} -> {'NEWSTATE':<11} {'MS':>9}")


def add_arguments(p) -> None:
    _net.add_port_flags(p, "sockets")
    p.add_argument("-s", "--state", action="append", metavar="STATE",
                   help="only transitions into or out of this state, e.g. CLOSE_WAIT (repeatable)")
    _net.add_family_flags(p)
    add_common(p, uid=False)


def prev_ms(ns: int) -> float | None:
    return round(ns / 1e6, 3) if ns else None


def format_line(r: dict) -> str:
    ms = "-" if r["prev_state_ms"] is None else f"{r['prev_state_ms']:.3f}"
    pid = r["pid"] or "-"
    return (f"{fmt_time(r['ts']):<8} {r['skaddr']:<18} {pid:>7} {r['comm'] or '-':<16} "
            f"{endpoint(r['laddr'], r['lport']):<22} {endpoint(r['raddr'], r['rport']):<22} "
            f"{r['oldstate']:>11} -> {r['newstate']:<11} {ms:>9}")


def run(args) -> int:
    states = set()
    for s in args.state or ():
        try:
            tcp_state_number(s)
        except ValueError as e:
            raise UsageError(str(e))
        states.add(s.strip().upper().removeprefix("TCP_"))
    f = _net.flow_filter(args, ports={"lport": "lport", "rport": "rport"})
    ports = set(args.port or ())

    def keep(r: dict) -> bool:
        r["prev_state_ms"] = prev_ms(r["prev_state_ns"])
        if states and r["oldstate"] not in states and r["newstate"] not in states:
            return False
        if ports and r["lport"] not in ports and r["rport"] not in ports:
            return False
        return f(r)

    config = _net.kernel_filter(args, lports="lport", rports="rport", ports="port")
    return run_event_tool(args, "tcp_state", emit_json_or(format_line, "state"),
                          config=config, header=HEADER, keep=keep)
