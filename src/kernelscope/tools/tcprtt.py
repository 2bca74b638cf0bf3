"""tcprtt: TCP round-trip time as log2 histograms, aggregated in the kernel.

The kernel's smoothed RTT (srtt) of established connections, sampled on every
segment they receive (tcp:tcp_probe). One histogram in all, or one per remote
address (-a), per local address (-b), or per flow (-F). Filters on ports and
addresses run in the kernel. IPv4 and IPv6.

JSON: {"type": "histogram", "unit": "usecs"|"msecs", "total", "buckets":
[{"low", "high", "count"}], and with -a/-b/-F: "ip", "raddr", "laddr", "lport",
"rport" as they apply}; ts with intervals or -T.
"""

from __future__ import annotations

from kernelscope.enrich.net import endpoint, parse_addr
from kernelscope.tools import _net
from kernelscope.tools._histtool import add_interval_args, emit_hists, read_hists, run_intervals
from kernelscope.tools.common import Output, add_common

NAME = "tcprtt"
HELP = "TCP round-trip time histogram (overall, per remote/local address, per flow)"


def add_arguments(p) -> None:
    add_interval_args(p)
    p.add_argument("-m", "--milliseconds", action="store_true", help="histogram in milliseconds")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-a", "--by-raddr", action="store_true", help="one histogram per remote address")
    g.add_argument("-b", "--by-laddr", action="store_true", help="one histogram per local address")
    g.add_argument("-F", "--by-flow", action="store_true", help="one histogram per flow")
    p.add_argument("-L", "--lport", type=_net.port_arg, metavar="PORT", help="only this local port")
    p.add_argument("-D", "--rport", type=_net.port_arg, metavar="PORT", help="only this remote port")
    p.add_argument("--raddr", type=_net.addr_arg, metavar="ADDR", help="only this remote address")
    p.add_argument("--laddr", type=_net.addr_arg, metavar="ADDR", help="only this local address")
    _net.add_family_flags(p)
    add_common(p, pid=False, comm=False, uid=False)


def grouping(args) -> str:
    if args.by_raddr:
        return "raddr"
    if args.by_laddr:
        return "laddr"
    if args.by_flow:
        return "flow"
    return "all"


def probe_config(args) -> dict:
    from kernelscope.probes.tcp_rtt.probe import BY
    cfg = {"by": BY[grouping(args)], "ms": int(args.milliseconds),
           "lport": args.lport or 0, "rport": args.rport or 0,
           "family": _net.family_wanted(args) or 0}
    for which in ("raddr", "laddr"):
        text = getattr(args, which)
        if text:
            fam, raw = parse_addr(text)
            cfg[f"{which}_family"] = fam
            cfg[which] = list(raw)
    return cfg


def label(labels: dict) -> str | None:
    if "lport" in labels:
        return f"flow = {endpoint(labels['laddr'], labels['lport'])} -> " \
               f"{endpoint(labels['raddr'], labels['rport'])}"
    if "raddr" in labels:
        return f"remote address = {labels['raddr']}"
    if "laddr" in labels:
        return f"local address = {labels['laddr']}"
    return None


def run(args) -> int:
    from kernelscope.probes.tcp_rtt.probe import key_labels
    from kernelscope.runtime.loader import open_probe

    by = grouping(args)
    out = Output(args)
    unit = "msecs" if args.milliseconds else "usecs"
    with open_probe("tcp_rtt", config=probe_config(args)) as p:
        hists = p.map_dtype("hists", key="ks_flow")

        def report(ts):
            groups = []
            keys, all_slots = read_hists(hists)
            for rec, slots in zip(keys, all_slots):
                labels = key_labels(int(rec["family"]), int(rec["lport"]), int(rec["rport"]),
                                    rec["laddr"].tobytes(), rec["raddr"].tobytes(), by)
                groups.append((labels, slots))
            groups.sort(key=lambda g: tuple(str(v) for v in g[0].values()))
            emit_hists(out, groups, unit, label, ts)

        return run_intervals(args, p, out, report,
                             "Tracing TCP RTT... Hit Ctrl-C to end.")
