"""exitsnoop: one line per process exit with its exit code or terminating signal and lifetime.

JSON fields (type "exit"): ts (UNIX seconds), pid, tid, ppid, uid, uid_name, comm,
exit_code (0-255, meaningful when sig is 0), sig / sig_name (terminating signal,
0 / null for a normal exit), core_dumped, lifetime_ns, cgroup_id.
"""

from __future__ import annotations

from kernelscope.tools.common import (add_common, emit_json_or, fmt_time, kernel_filter_config,
                                       record_filter, run_event_tool)

NAME = "exitsnoop"
HELP = "trace process exits: exit code or signal, lifetime"

HEADER = f"{'TIME':<8} {'PCOMM':<16} {'PID':>7} {'PPID':>7} {'TID':>7} {'AGE(s)':>9} EXIT"


def add_arguments(p) -> None:
    p.add_argument("-t", "--threads", action="store_true",
                   help="also trace exits of non-leader threads")
    p.add_argument("-x", "--failed", action="store_true",
                   help="only exits with a non-zero code or a signal")
    add_common(p)


def describe_exit(r: dict) -> str:
    """`0`, `code 7`, `signal 9 (SIGKILL)`, `signal 11 (SIGSEGV), core dumped`."""
    if r["sig"]:
        text = f"signal {r['sig']} ({r.get('sig_name') or r['sig']})"
        return text + (", core dumped" if r.get("core_dumped") else "")
    return "0" if r["exit_code"] == 0 else f"code {r['exit_code']}"


def format_line(r: dict) -> str:
    return (f"{fmt_time(r['ts']):<8} {r['comm']:<16} {r['pid']:>7} {r['ppid']:>7} "
            f"{r['tid']:>7} {r['lifetime_ns'] / 1e9:>9.2f} {describe_exit(r)}")


def run(args) -> int:
    config = kernel_filter_config(args, threads=1 if args.threads else 0)
    failed = (lambda r: r["sig"] != 0 or r["exit_code"] != 0) if args.failed else None
    keep = record_filter(args, also=failed)
    return run_event_tool(args, "proc_exit", emit_json_or(format_line, "exit"),
                          config=config, header=HEADER, keep=keep)
