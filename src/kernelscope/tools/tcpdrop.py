"""tcpdrop: TCP packets the kernel dropped, with the kernel's reason for each.

One line per dropped TCP packet (skb:kfree_skb): the drop reason by its name in
the running kernel (enum skb_drop_reason: NETFILTER_DROP, TCP_OLD_DATA,
NO_SOCKET, ...), the packet's flow as on the wire (SOURCE -> DESTINATION), its
TCP flags, the state of its socket, where in the kernel it was dropped, and the
process owning the socket or flow when known (the one that connected, accepted,
or sent/received on it). Frees with reason NOT_SPECIFIED are mostly not real
drops and are skipped unless --all. IPv4 and IPv6.

JSON fields: ts, pid, uid, uid_name, comm, ip, family, saddr, sport, daddr, dport,
tcp_flags ("SYN|ACK"), seq, ack, ip_len, state (socket state or null), skaddr,
reason (name), reason_code, location ("nf_hook_slow+0x9a").
"""

from __future__ import annotations

from kernelscope.enrich.net import endpoint
from kernelscope.errors import UsageError
from kernelscope.tools import _net
from kernelscope.tools.common import add_common, emit_json_or, fmt_time, run_event_tool

NAME = "tcpdrop"
HELP = "trace dropped TCP packets with the kernel's drop reason, flow and owner"

HEADER = (f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'IP':<2} {'SOURCE':<22} {'DESTINATION':<22} "
          f"{'FLAGS':<12} {'STATE':<12} {'REASON':<20} LOCATION")


def add_arguments(p) -> None:
    p.add_argument("--all", action="store_true",
                   help="also frees with reason NOT_SPECIFIED (mostly not drops)")
    p.add_argument("-r", "--reason", action="append", metavar="NAME",
                   help="only this drop reason, e.g. NETFILTER_DROP (repeatable)")
    p.add_argument("-P", "--port", type=_net.port_arg, action="append", metavar="PORT",
                   help="only packets from or to this port (repeatable)")
    _net.add_family_flags(p)
    add_common(p)


def format_line(r: dict) -> str:
    return (f"{fmt_time(r['ts']):<8} {r['pid'] or '-':>7} {r['comm'] or '-':<16} {r['ip'][-1]:<2} "
            f"{endpoint(r['saddr'], r['sport']):<22} {endpoint(r['daddr'], r['dport']):<22} "
            f"{r['tcp_flags']:<12} {r['state'] or '-':<12} {r['reason']:<20} {r['location']}")


def known_reasons() -> set[str]:
    from kernelscope.runtime.decode import _drop_reasons
    return set(_drop_reasons().values())


def run(args) -> int:
    reasons = None
    if args.reason:
        names = known_reasons()
        reasons = {x.strip().upper().removeprefix("SKB_DROP_REASON_") for x in args.reason}
        bad = sorted(reasons - names) if names else []
        if bad:
            raise UsageError(f"unknown drop reason {bad[0]!r} for this kernel "
                             f"(e.g. NETFILTER_DROP, TCP_OLD_DATA, NO_SOCKET)")
    ports = set(args.port or ())
    f = _net.flow_filter(args)

    def keep(r: dict) -> bool:
        if reasons and r["reason"] not in reasons:
            return False
        if ports and r["sport"] not in ports and r["dport"] not in ports:
            return False
        return f(r)

    return run_event_tool(args, "tcp_drop", emit_json_or(format_line, "drop"),
                          config={"all": int(args.all), **_net.kernel_filter(args, ports="port")}, header=HEADER, keep=keep)
