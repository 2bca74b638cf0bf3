"""opensnoop: one line per open/openat/openat2 with path, flags, mode and fd or errno.

JSON fields (type "open"): ts, pid, tid, uid, uid_name, comm, call ("open",
"openat", "openat2"), dfd (-100 is AT_FDCWD), path, flags / flags_str
("O_WRONLY|O_CREAT"), mode / mode_str (octal, null without O_CREAT/O_TMPFILE),
retval (fd, or -errno) / retval_name ("ENOENT", null on success), duration_ns,
cgroup_id.
"""

from __future__ import annotations

from kernelscope.tools.common import (add_common, emit_json_or, fmt_time, kernel_filter_config,
                                       record_filter, run_event_tool)

NAME = "opensnoop"
HELP = "trace open/openat/openat2: path, flags, mode, fd or errno"

HEADER = f"{'TIME':<8} {'COMM':<16} {'PID':>7} {'FD':>4} {'ERR':<8} {'FLAGS':<34} {'MODE':>5} PATH"


def add_arguments(p) -> None:
    p.add_argument("-x", "--failed", action="store_true", help="only failed opens")
    p.add_argument("-n", "--name", metavar="NAME",
                   help="only processes whose command name contains NAME")
    add_common(p)


def format_line(r: dict) -> str:
    fd = r["retval"] if r["retval"] >= 0 else -1
    err = r["retval_name"] or ""
    return (f"{fmt_time(r['ts']):<8} {r['comm']:<16} {r['pid']:>7} {fd:>4} {err:<8} "
            f"{r['flags_str']:<34} {r['mode_str'] or '':>5} {r['path']}")


def run(args) -> int:
    config = kernel_filter_config(args, failed=1 if args.failed else 0)
    named = (lambda r: args.name in r["comm"]) if args.name else None
    keep = record_filter(args, also=named)
    return run_event_tool(args, "file_open", emit_json_or(format_line, "open"),
                          config=config, header=HEADER, keep=keep)
