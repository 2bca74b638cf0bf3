"""tcpaccept: TCP connections as a process accepts them (accept/accept4).

One line per accepted connection: the accepting process, the local (listening)
and remote ends, and MS, the time the connection waited in the accept queue
(from handshake completion to accept(); "-" when it completed before tracing
started). IPv4 and IPv6.

JSON fields: ts, pid, tid, uid, uid_name, comm, cgroup_id, ip, family, laddr,
lport, raddr, rport, latency_ns (accept-queue wait, 0 if unknown), result
("established"), direction ("accept").
"""

from __future__ import annotations

from kernelscope.enrich.net import endpoint
from kernelscope.tools import _net
from kernelscope.tools.common import add_common, emit_json_or, fmt_time, run_event_tool

NAME = "tcpaccept"
HELP = "trace TCP accepts: accepting process, local and remote address, queue time"

HEADER = (f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'IP':<4} {'LOCAL':<22} {'REMOTE':<22} "
          f"{'QUEUE_MS':>9}")


def add_arguments(p) -> None:
    p.add_argument("-P", "--port", type=_net.port_arg, action="append", metavar="PORT",
                   help="only this local (listening) port (repeatable)")
    _net.add_family_flags(p)
    add_common(p)


def format_line(r: dict) -> str:
    q = _net.fmt_ms(r["latency_ns"]) if r["latency_ns"] else "-"
    return (f"{fmt_time(r['ts']):<8} {r['pid']:>7} {r['comm']:<16} {r['ip'][-1]:<4} "
            f"{endpoint(r['laddr'], r['lport']):<22} {endpoint(r['raddr'], r['rport']):<22} "
            f"{q:>9}")


def run(args) -> int:
    keep = _net.flow_filter(args, ports={"port": "lport"})
    return run_event_tool(args, "tcp_connect", emit_json_or(format_line, "accept"),
                          config={"active": 0, "passive": 1, **_net.kernel_filter(args, lports="port")}, header=HEADER, keep=keep)
