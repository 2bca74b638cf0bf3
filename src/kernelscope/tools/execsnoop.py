"""execsnoop: one line per exec (successful or failed) with its full argv."""

from __future__ import annotations

import shlex

from kernelscope.tools.common import (add_common, emit_json_or, fmt_time, record_filter,
                                       run_event_tool)

NAME = "execsnoop"
HELP = "trace exec() calls: pid, ppid, uid, return value and argv"

HEADER = f"{'TIME':<8} {'PCOMM':<16} {'PID':>7} {'PPID':>7} {'UID':>5} {'RET':>7} ARGS"


def add_arguments(p) -> None:
    p.add_argument("-x", "--fails", action="store_true", help="only failed execs")
    p.add_argument("--max-args", type=int, default=64, metavar="N",
                   help="read at most N arguments (1-64, default 64)")
    add_common(p)


def format_line(r: dict) -> str:
    ret = "0" if r["retval"] == 0 else (r.get("retval_name") or str(r["retval"]))
    args = " ".join(shlex.quote(a) if a else "''" for a in r["args"])
    if r["args_truncated"]:
        args += " ..."
    return (f"{fmt_time(r['ts']):<8} {r['comm']:<16} {r['pid']:>7} {r['ppid']:>7} "
            f"{r['uid']:>5} {ret:>7} {args}")


def run(args) -> int:
    from kernelscope.errors import UsageError
    if not 1 <= args.max_args <= 64:
        raise UsageError("--max-args must be between 1 and 64")
    fails = (lambda r: r["retval"] < 0) if args.fails else None
    # -p is the new process's pid, known only after the exec: filtered in Python
    config = {"max_args": args.max_args}
    if args.uid is not None:
        config["uid"] = args.uid
    return run_event_tool(args, "proc_exec", emit_json_or(format_line, "exec"),
                          config=config, header=HEADER, keep=record_filter(args, also=fails))
