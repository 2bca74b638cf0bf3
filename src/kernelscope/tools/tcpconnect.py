"""tcpconnect: every TCP connect() with the calling process and its result.

One line per active open once its handshake ends: established, refused
(ECONNREFUSED: the peer answered RST), timeout (ETIMEDOUT: no answer to the SYN
retries), another errno name (an ICMP error such as EHOSTUNREACH), or closed (the
socket was closed before the handshake ended). MS is the time from connect() to
that outcome. IPv4 and IPv6.

JSON fields: ts, pid, tid, uid, uid_name, comm, cgroup_id, ip ("IPv4"/"IPv6"),
family, laddr, lport, raddr, rport, result, err (errno, 0 when established),
err_name, latency_ns, direction ("connect").
"""

from __future__ import annotations

from kernelscope.enrich.net import endpoint
from kernelscope.tools import _net
from kernelscope.tools.common import add_common, emit_json_or, fmt_time, run_event_tool

NAME = "tcpconnect"
HELP = "trace TCP connects: process, addresses and result (established/refused/timeout)"

HEADER = (f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'IP':<4} {'LOCAL':<22} {'REMOTE':<22} "
          f"{'RESULT':<12} {'MS':>9}")


def add_arguments(p) -> None:
    p.add_argument("-P", "--port", type=_net.port_arg, action="append", metavar="PORT",
                   help="only connects to this remote port (repeatable)")
    p.add_argument("-x", "--failed", action="store_true", help="only connects that failed")
    _net.add_family_flags(p)
    add_common(p)


def format_line(r: dict) -> str:
    return (f"{fmt_time(r['ts']):<8} {r['pid']:>7} {r['comm']:<16} {r['ip'][-1]:<4} "
            f"{endpoint(r['laddr'], r['lport']):<22} {endpoint(r['raddr'], r['rport']):<22} "
            f"{r['result']:<12} {_net.fmt_ms(r['latency_ns']):>9}")


def run(args) -> int:
    f = _net.flow_filter(args, ports={"port": "rport"})
    keep = (lambda r: r["result"] != "established" and f(r)) if args.failed else f
    return run_event_tool(args, "tcp_connect", emit_json_or(format_line, "connect"),
                          config={"active": 1, "passive": 0, **_net.kernel_filter(args, rports="port")}, header=HEADER, keep=keep)
