"""map: the service map: TCP connections seen during a window, aggregated into edges
from workloads (process name, or container when its cgroup shows one) to remote
services (address:port, named from /etc/hosts; there is no DNS probe yet).

Both ends of a connection seen on this host (loopback, or network namespaces
standing for hosts) are joined into one conversation, so the destination shows
the serving process too. Per edge: connections, failed connects, bytes each way,
retransmits, resets, drops, and smoothed-RTT percentiles over its connections.

--format table (default) | json | dot | svg (runs Graphviz `dot`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from kernelscope.errors import UsageError
from kernelscope.tools import _net
from kernelscope.tools.common import Output, StopFlag, add_common, positive_int

NAME = "map"
HELP = "service map: TCP edges between workloads and services (table, json, dot, svg)"
DEFAULT_DURATION = 10.0


def add_arguments(p) -> None:
    p.add_argument("--format", choices=["table", "json", "dot", "svg"], default=None,
                   help="output format (default table; --json means json)")
    p.add_argument("--hosts", metavar="FILE", default="/etc/hosts",
                   help="names for addresses, hosts-file format (default /etc/hosts)")
    p.add_argument("--max-flows", type=positive_int, default=None, metavar="N",
                   help="kernel flow table size (default 16384)")
    _net.add_family_flags(p)
    add_common(p)


def collect(ft, stop: StopFlag, interval: float = 0.5) -> dict:
    """Every flow seen until `stop`: closed ones and the last view of live ones."""
    from kernelscope.net.flows import flow_key
    seen: dict = {}
    while True:
        closed, live = ft.poll()
        for r in live + closed:
            seen[flow_key(r)] = r
        if stop():
            return seen
        stop.wait(interval)


def render_svg(dot_text: str) -> str:
    exe = shutil.which("dot")
    if not exe:
        raise UsageError("--format svg needs Graphviz `dot` (apt-get install graphviz)")
    r = subprocess.run([exe, "-Tsvg"], input=dot_text, capture_output=True, text=True)
    if r.returncode:
        raise UsageError(f"dot failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return r.stdout


def run(args) -> int:
    from kernelscope.net import servicemap as sm
    from kernelscope.net.flows import open_flow_table
    from kernelscope.tools.common import announce_attached

    fmt = args.format or ("json" if args.json else "table")
    if args.json and fmt != "json":
        raise UsageError("--json conflicts with --format " + fmt)
    if args.hosts != "/etc/hosts" and not os.access(args.hosts, os.R_OK):
        raise UsageError(f"--hosts: cannot read {args.hosts}")
    names = sm.hosts_names(args.hosts)
    keep = _net.flow_filter(args)
    duration = args.duration or DEFAULT_DURATION
    out = Output(args)
    out.json = False    # the whole map is one document, written below
    stop = StopFlag(duration)
    with open_flow_table(max_flows=args.max_flows) as ft:
        announce_attached("tcp_flow")
        if fmt == "table":
            sys.stderr.write(f"kernelscope: collecting for {duration:g} s\n")
        t0 = time.time()
        seen = collect(ft, stop)
        stats = ft.stats()
    records = [r for r in seen.values() if keep(r)]
    m = sm.build_map(records, names)
    m.update({"type": "map", "duration_s": round(time.time() - t0, 3), "flows": len(records),
              "lost": stats["lost"], "evicted": stats["evicted"],
              "insert_failed": stats["insert_failed"]})
    if fmt == "json":
        import json
        out.line(json.dumps(m, default=str))
    elif fmt == "table":
        out.line(sm.format_table(m))
    elif fmt == "dot":
        out.line(sm.format_dot(m))
    else:
        out.line(render_svg(sm.format_dot(m)))
    if stats["lost"] or stats["evicted"] or stats["insert_failed"]:
        sys.stderr.write(f"kernelscope: {stats['lost']} close events lost, {stats['evicted']} flows "
                         f"evicted, {stats['insert_failed']} not inserted: the map is incomplete\n")
    out.close()
    return 0
