"""Flows -> conversations (both ends of one connection joined) -> service-map edges, and
the map's table, JSON and Graphviz renderings. Pure functions: no kernel, no /proc.

A flow record is what kernelscope.net.flows produces (laddr, lport, raddr, rport,
direction, pid, comm, tx_bytes, ...). Names for addresses come from a dict
(`hosts_names()` reads /etc/hosts; there is no DNS probe yet).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from kernelscope.enrich.net import endpoint

# Clock slack when deciding whether two ends' lifetimes overlap (seconds): each
# host stamps its own end, and a fleet's clocks differ a little.
OVERLAP_SLACK_S = 2.0


# -- names -------------------------------------------------------------------
def parse_hosts(text: str) -> dict[str, str]:
    """/etc/hosts text -> {address: first name} (the reverse lookup a resolver does)."""
    names: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].split()
        if len(line) >= 2:
            names.setdefault(line[0], line[1])
    return names


def hosts_names(path: str = "/etc/hosts") -> dict[str, str]:
    try:
        return parse_hosts(Path(path).read_text())
    except OSError:
        return {}


def side(rec: dict) -> str:
    """client or server; a flow older than the probe (direction unknown) is taken as the
    client when its remote port is the lower one (services listen on low ports)."""
    d = rec.get("direction")
    if d in ("client", "server"):
        return d
    return "client" if rec["rport"] < rec["lport"] else "server"


def workload(rec: dict) -> str:
    """The local workload of a flow: its container when the cgroup shows one, else the
    process name."""
    cid = rec.get("container_id")
    if cid:
        return f"{rec.get('container_runtime') or 'container'}:{cid[:12]}"
    return rec.get("comm") or f"pid {rec.get('pid')}"


# -- the join of both ends ------------------------------------------------------
def _overlap(a: dict, b: dict, slack: float) -> bool:
    a0, b0 = a["start_ts"], b["start_ts"]
    a1 = a["end_ts"] if a.get("end_ts") is not None else float("inf")
    b1 = b["end_ts"] if b.get("end_ts") is not None else float("inf")
    return a0 <= b1 + slack and b0 <= a1 + slack


def norm_addr(addr: str) -> str:
    """An IPv4-mapped IPv6 address as plain IPv4: a dual-stack socket's peer sees IPv4."""
    return addr[7:] if addr.startswith("::ffff:") and "." in addr else addr


def _tuple(rec: dict) -> tuple:
    return (norm_addr(rec["laddr"]), rec["lport"], norm_addr(rec["raddr"]), rec["rport"])


def join_conversations(records: list[dict], slack: float = OVERLAP_SLACK_S) -> list[dict]:
    """Join client-side and server-side flow records of the same connection.

    Two records are the two ends of one connection when one's (laddr, lport, raddr,
    rport) is the other's mirrored and their lifetimes overlap (within `slack`
    seconds). Each record is used at most once; the closest start wins. Records
    without their other end become half conversations (client or server None).
    """
    servers: dict[tuple, list[dict]] = defaultdict(list)
    clients = []
    for r in records:
        (clients if side(r) == "client" else servers[_tuple(r)]).append(r)
    used: set[int] = set()
    convs = []
    for c in sorted(clients, key=lambda r: r["start_ts"]):
        la, lp, ra, rp = _tuple(c)
        mirror = (ra, rp, la, lp)
        best = None
        for s in servers.get(mirror, ()):
            if id(s) in used or not _overlap(c, s, slack):
                continue
            if best is None or abs(s["start_ts"] - c["start_ts"]) < abs(best["start_ts"] - c["start_ts"]):
                best = s
        if best is not None:
            used.add(id(best))
        convs.append(conversation(c, best))
    for group in servers.values():
        for s in group:
            if id(s) not in used:
                convs.append(conversation(None, s))
    return convs


def conversation(client: dict | None, server: dict | None) -> dict:
    """One connection seen from one or both ends; bytes from the client's view when known."""
    c, s = client, server
    one = c or s
    start = min(r["start_ts"] for r in (c, s) if r)
    ends = [r.get("end_ts") for r in (c, s) if r]
    end = None if any(e is None for e in ends) else max(ends)
    if c:
        c2s, s2c = c["tx_bytes"], c["rx_bytes"]
    else:
        c2s, s2c = s["rx_bytes"], s["tx_bytes"]
    if c and s:
        # each RST is counted once, where it arrived
        resets = c["resets_received"] + s["resets_received"]
    else:
        resets = one["resets_received"] + one["resets_sent"]
    return {
        "joined": bool(c and s),
        "client_addr": c["laddr"] if c else s["raddr"],
        "client_port": c["lport"] if c else s["rport"],
        "server_addr": c["raddr"] if c else s["laddr"],
        "server_port": c["rport"] if c else s["lport"],
        "client_pid": c["pid"] if c else None,
        "client_comm": c["comm"] if c else None,
        "client_cmdline": c.get("cmdline") if c else None,
        "client_netns": c["netns"] if c else None,
        "client_workload": workload(c) if c else None,
        "server_pid": s["pid"] if s else None,
        "server_comm": s["comm"] if s else None,
        "server_cmdline": s.get("cmdline") if s else None,
        "server_netns": s["netns"] if s else None,
        "server_workload": workload(s) if s else None,
        "start_ts": start,
        "end_ts": end,
        "bytes_client_to_server": c2s,
        "bytes_server_to_client": s2c,
        "retransmits": sum(r["retransmits"] for r in (c, s) if r),
        "resets": resets,
        "drops": sum(r["drops"] for r in (c, s) if r),
        "connect_failed": bool(c and c.get("connect_failed")),
        "srtt_us": (c or s)["srtt_us"],
        "client": c,
        "server": s,
    }


# -- edges ------------------------------------------------------------------------
def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values; None when empty."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-q * len(v) // 100)) - 1))
    return v[k]


def service_name(addr: str, port: int, names: dict[str, str] | None = None) -> str:
    n = (names or {}).get(addr)
    return f"{n}:{port}" if n else endpoint(addr, port)


def edges(convs: list[dict], names: dict[str, str] | None = None) -> list[dict]:
    """Conversations -> edges between workloads and services, heaviest first.

    src: the client workload (process or container), or the client's address when
    only the server end was seen. dst: the service address:port (named from `names`),
    with the serving workload in brackets when the server end was seen."""
    agg: dict[tuple, dict] = {}
    for cv in convs:
        src = cv["client_workload"] or service_name(cv["client_addr"], 0, names).rsplit(":", 1)[0]
        svc = service_name(cv["server_addr"], cv["server_port"], names)
        dst = f"{cv['server_workload']} ({svc})" if cv["server_workload"] else svc
        e = agg.get((src, dst))
        if e is None:
            e = agg[(src, dst)] = {
                "src": src, "dst": dst, "service": svc,
                "dst_workload": cv["server_workload"],
                "connections": 0, "failed_connects": 0, "bytes_sent": 0, "bytes_received": 0,
                "retransmits": 0, "resets": 0, "drops": 0, "_rtts": []}
        e["connections"] += 1
        e["failed_connects"] += int(cv["connect_failed"])
        e["bytes_sent"] += cv["bytes_client_to_server"]
        e["bytes_received"] += cv["bytes_server_to_client"]
        e["retransmits"] += cv["retransmits"]
        e["resets"] += cv["resets"]
        e["drops"] += cv["drops"]
        if cv["srtt_us"]:
            e["_rtts"].append(cv["srtt_us"])
    out = []
    for e in agg.values():
        rtts = e.pop("_rtts")
        e["rtt_samples"] = len(rtts)
        for q in (50, 90, 99):
            e[f"rtt_p{q}_us"] = _percentile(rtts, q)
        out.append(e)
    out.sort(key=lambda e: (-(e["bytes_sent"] + e["bytes_received"]), -e["connections"], e["src"], e["dst"]))
    return out


def build_map(records: list[dict], names: dict[str, str] | None = None) -> dict:
    """Flow records -> {"nodes", "edges", "conversations"} (the JSON shape of `map`)."""
    convs = join_conversations(records)
    es = edges(convs, names)
    nodes = sorted({e["src"] for e in es} | {e["dst"] for e in es})
    return {"nodes": nodes, "edges": es, "conversations": len(convs),
            "joined_conversations": sum(c["joined"] for c in convs)}


# -- renderings ---------------------------------------------------------------------
def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _ms(us) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def format_table(m: dict) -> str:
    head = (f"{'SOURCE':<24} {'DESTINATION':<40} {'CONNS':>6} {'FAILED':>6} {'SENT':>10} "
            f"{'RECEIVED':>10} {'RETRANS':>7} {'RESETS':>6} {'RTT_P50':>8} {'P90':>7} {'P99':>7}")
    lines = [head]
    for e in m["edges"]:
        lines.append(f"{e['src'][:24]:<24} {e['dst'][:40]:<40} {e['connections']:>6} "
                     f"{e['failed_connects']:>6} {human_bytes(e['bytes_sent']):>10} "
                     f"{human_bytes(e['bytes_received']):>10} {e['retransmits']:>7} {e['resets']:>6} "
                     f"{_ms(e['rtt_p50_us']):>8} {_ms(e['rtt_p90_us']):>7} {_ms(e['rtt_p99_us']):>7}")
    if not m["edges"]:
        lines.append("(no TCP connections seen)")
    lines.append("RTT in ms (smoothed RTT per connection, percentiles over connections)")
    return "\n".join(lines)


def _dot_id(s: str) -> str:
    return json.dumps(s)


def format_dot(m: dict) -> str:
    lines = ["digraph kernelscope_map {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for n in m["nodes"]:
        lines.append(f"  {_dot_id(n)};")
    for e in m["edges"]:
        label = (f"{e['connections']} conn"
                 + (f", {e['failed_connects']} failed" if e["failed_connects"] else "")
                 + f"\\n{human_bytes(e['bytes_sent'])} / {human_bytes(e['bytes_received'])}"
                 + (f"\\nrtt p50 {_ms(e['rtt_p50_us'])} ms" if e["rtt_p50_us"] is not None else "")
                 + (f"\\n{e['retransmits']} retrans" if e["retransmits"] else "")
                 + (f"\\n{e['resets']} resets" if e["resets"] else ""))
        color = "red" if e["failed_connects"] or e["resets"] else "black"
        lines.append(f"  {_dot_id(e['src'])} -> {_dot_id(e['dst'])} "
                     f"[label=\"{label}\", color={color}];")
    lines.append("}")
    return "\n".join(lines)
