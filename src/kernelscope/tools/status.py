"""status: what the running agent runs, what it skipped on this kernel and why, its counters."""

from __future__ import annotations

NAME = "status"
HELP = "show the running agent's modules, skipped modules and counters"


def add_arguments(p) -> None:
    p.add_argument("--agent", metavar="URL", default=None,
                   help="agent HTTP address (default: http://127.0.0.1:9469, or the agent "
                        "writing --store)")
    p.add_argument("--store", metavar="PATH", help="find the agent that writes this store")
    p.add_argument("--json", action="store_true", help="print the raw status document")


def fetch(url: str, timeout: float = 5.0) -> dict:
    import json
    import urllib.error
    import urllib.request

    from kernelscope.errors import KernelscopeError
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/status", timeout=timeout) as r:
            return json.load(r)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise KernelscopeError(f"no agent answers at {url} ({reason}); start one with: kernelscope agent")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def format_status(st: dict) -> str:
    lines = [f"agent pid {st['pid']} on {st['host']}, up {st['uptime_seconds']:.0f}s, "
             f"CPU {st['cpu_seconds']:.2f}s, RSS {_human(st['rss_bytes'])}",
             f"store: {st.get('store') or '(disabled)'}", "", "modules:"]
    for name, m in st["modules"].items():
        if m["state"] == "running":
            lines.append(f"  {name:<10} running  probes={','.join(m['probes'])} received={m.get('received', 0)} "
                         f"lost={m.get('lost', 0)} decode={m.get('decode_seconds', 0):.3f}s")
        else:
            lines.append(f"  {name:<10} skipped  {m.get('reason', '')}")
    lines.append("")
    lines.append("sinks:")
    for name, s in st["sinks"].items():
        lines.append(f"  {name:<10} " + " ".join(f"{k}={v}" for k, v in s.items()))
    if st.get("store_rows"):
        lines.append("")
        lines.append("store rows written: " + ", ".join(f"{t}={n}" for t, n in st["store_rows"].items()))
    if st.get("metrics_folded"):
        lines.append("metric series folded by the cardinality cap: " +
                     ", ".join(f"{k}={v}" for k, v in st["metrics_folded"].items()))
    return "\n".join(lines)


def run(args) -> int:
    import json

    url = args.agent
    if not url and args.store:
        from kernelscope.store import agent_url_for
        url = agent_url_for(args.store)
        if not url:
            from kernelscope.errors import KernelscopeError
            raise KernelscopeError(f"no running agent writes {args.store}")
    st = fetch(url or "http://127.0.0.1:9469")
    print(json.dumps(st, indent=1) if args.json else format_status(st))
    return 0
