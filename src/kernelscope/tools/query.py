"""query: SQL over the agent's store (through the running agent, or the file read-only)."""

from __future__ import annotations

NAME = "query"
HELP = "run a read-only SQL query on the agent's store"


def add_arguments(p) -> None:
    p.add_argument("sql", help='SQL, e.g. "SELECT comm, count(*) FROM proc_exec GROUP BY 1"')
    p.add_argument("--store", metavar="PATH", help="DuckDB file (default: the agent's default store)")
    p.add_argument("--agent", metavar="URL", help="ask this agent (http://HOST:PORT) instead")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return str(v)


def format_table(table, max_width: int = 60) -> str:
    cols = table.column_names
    rows = [[_cell(v)[:max_width] for v in r.values()] for r in table.to_pylist()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    for r in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def run(args) -> int:
    import json
    import sys

    from kernelscope import store
    from kernelscope.agent.server import table_csv, _json_default
    table = store.query(args.sql, args.store, agent=args.agent)
    if args.format == "json":
        for row in table.to_pylist():
            sys.stdout.write(json.dumps(row, default=_json_default) + "\n")
    elif args.format == "csv":
        sys.stdout.write(table_csv(table).decode())
    else:
        sys.stdout.write(format_table(table) + "\n")
    return 0
