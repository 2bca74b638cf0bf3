"""offcputime: time threads spend blocked off CPU, summed in the kernel by user and kernel
stack; printed bcc-style or as folded stacks (-f) for flame graphs."""

from __future__ import annotations

import errno
import os
import sys

from kernelscope.errors import UsageError
from kernelscope.tools.common import (
    Output, StopFlag, add_common, announce_attached, nonneg_int, positive_float, positive_int,
    report_lost,
)

NAME = "offcputime"
HELP = "off-CPU time by user and kernel stack (folded output for flame graphs)"

TASK_STATES = {"running": 0, "interruptible": 1, "uninterruptible": 2}


def add_arguments(p) -> None:
    p.add_argument("seconds", nargs="?", type=positive_float, default=None,
                   help="trace for this many seconds (like --duration)")
    p.add_argument("-t", "--tid", type=positive_int, help="only this thread id")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-u", "--user-threads-only", action="store_true", help="user threads only")
    g.add_argument("-k", "--kernel-threads-only", action="store_true", help="kernel threads only")
    s = p.add_mutually_exclusive_group()
    s.add_argument("-U", "--user-stacks-only", action="store_true", help="user stacks only")
    s.add_argument("-K", "--kernel-stacks-only", action="store_true", help="kernel stacks only")
    p.add_argument("-d", "--delimited", action="store_true",
                   help="put a '-' between kernel and user stacks")
    p.add_argument("-f", "--folded", action="store_true",
                   help="folded output: comm;frame;frame value-in-us (flame graphs)")
    p.add_argument("--min-us", "--min-block-time", dest="min_us", type=nonneg_int, default=1,
                   metavar="US", help="only blocks of at least US microseconds (default 1)")
    p.add_argument("--max-us", "--max-block-time", dest="max_us", type=positive_int,
                   metavar="US", help="only blocks of at most US microseconds")
    p.add_argument("--state", choices=sorted(TASK_STATES),
                   help="only threads that left the CPU in this state")
    p.add_argument("--stack-storage-size", type=positive_int, default=16384, metavar="N",
                   help="number of unique stacks kept in the kernel (default 16384)")
    p.add_argument("--offsets", action="store_true", help="show symbol+offset")
    add_common(p, uid=False)


def missing(stack_id: int) -> bool:
    """A stack that should be there but is not (EFAULT: a kernel thread has no user stack)."""
    return stack_id < 0 and stack_id != -errno.EFAULT


def frames(stack_map, stack_id: int, resolve) -> list[str]:
    from kernelscope.libbpf import stack_ips
    return [resolve(ip) for ip in stack_ips(stack_map, stack_id)]


_TRACING_PREFIXES = ("bpf_prog_", "bpf_trace_run", "__bpf_trace_", "__traceiter_", "perf_trace_",
                     "trace_call_bpf", "bpf_get_stackid", "__probestub_")


def strip_tracing_frames(kernel: list[str]) -> list[str]:
    """Drop the innermost frames that are the BPF program and the tracepoint machinery
    that ran it (they differ by mechanism: tp_btf, raw_tp, tracepoint)."""
    i = 0
    while i < len(kernel) and (kernel[i].startswith(_TRACING_PREFIXES)
                               or kernel[i].endswith("[bpf]")):
        i += 1
    return kernel[i:]


def folded_line(comm: str, user: list[str] | None, kernel: list[str] | None, value: int,
                delimited: bool) -> str:
    """bcc's folded format: comm;user frames outermost first;[-;]kernel frames value."""
    parts = [comm.replace(";", "_").replace(" ", "_")]
    if user is not None:
        parts += [f.replace(";", ":") for f in reversed(user)]
    if kernel is not None:
        if delimited and user is not None:
            parts.append("-")
        parts += [f.replace(";", ":") for f in reversed(kernel)]
    return f"{';'.join(parts)} {value}"


def text_block(comm: str, pid: int, user: list[str] | None, kernel: list[str] | None,
               value: int, delimited: bool) -> list[str]:
    """bcc's multi-line format: kernel frames innermost first, '--', user frames."""
    lines = []
    if kernel is not None:
        lines += [f"    {f}" for f in kernel]
    if user is not None:
        if delimited and kernel is not None:
            lines.append("    --")
        lines += [f"    {f}" for f in user]
    lines.append(f"    {'-':<16} {comm} ({pid})")
    lines.append(f"        {value}")
    lines.append("")
    return lines


def run(args) -> int:
    from kernelscope.enrich.symbols import Symbolizer
    from kernelscope.runtime.decode import cstr
    from kernelscope.runtime.loader import open_probe

    if args.pid and len(args.pid) > 1:
        raise UsageError("offcputime takes one -p PID")
    if args.pid and not os.path.exists(f"/proc/{args.pid[0]}"):
        raise UsageError(f"no such process: {args.pid[0]}")
    if args.max_us is not None and args.max_us < args.min_us:
        raise UsageError("--max-us must not be below --min-us")
    if args.seconds and args.duration:
        raise UsageError("give the duration once: SECONDS or --duration")
    duration = args.seconds or args.duration
    config = {
        "tgid": args.pid[0] if args.pid else 0,
        "tid": args.tid or 0,
        "user_threads_only": int(args.user_threads_only),
        "kernel_threads_only": int(args.kernel_threads_only),
        "user_stacks": int(not args.kernel_stacks_only),
        "kernel_stacks": int(not args.user_stacks_only),
        "state": TASK_STATES[args.state] if args.state else -1,
        "min_ns": args.min_us * 1000,
        "max_ns": args.max_us * 1000 if args.max_us else (1 << 64) - 1,
    }
    comms = set(args.comm or ())
    out = Output(args)
    stop = StopFlag(duration)
    with open_probe("sched_offcpu", config=config,
                    map_sizes={"stacks": args.stack_storage_size}) as p:
        if not out.json and not args.folded:
            what = f"pid {config['tgid']}" if config["tgid"] else "all threads"
            out.line(f"Tracing off-CPU time (us) of {what} by "
                     f"{'user' if args.user_stacks_only else 'kernel' if args.kernel_stacks_only else 'user + kernel'}"
                     f" stack{'' if duration is None else f' for {duration:g} secs'}... Hit Ctrl-C to end.")
            out.flush()
        announce_attached(p.name)
        offcpu = p.map_dtype("offcpu", key="sched_offcpu_key", value="sched_offcpu_value")
        syms = Symbolizer()
        while not stop.wait(1.0):
            # note the mappings of processes seen so far, while they are alive: user
            # stacks of processes that exit before the report still resolve
            if not args.kernel_stacks_only:
                for pid in set(offcpu.lookup_batch()[0]["pid"].tolist()):
                    syms.process(pid)
        key_batch, value_batch = offcpu.lookup_batch()
        stacks = p.maps["stacks"]
        rows = []
        for pid, tid, uid_, kid, comm, total_ns, count in zip(
                key_batch["pid"].tolist(), key_batch["tid"].tolist(),
                key_batch["user_stack_id"].tolist(), key_batch["kern_stack_id"].tolist(),
                key_batch["comm"].tolist(), value_batch["total_ns"].tolist(),
                value_batch["count"].tolist()):
            comm = cstr(comm)
            if comms and comm not in comms:
                continue
            rows.append((total_ns // 1000, count, pid, tid, uid_, kid, comm))
        rows.sort(key=lambda r: r[0])
        missed_user = missed_kernel = 0
        for value_us, count, pid, tid, uid_, kid, comm in rows:
            user = kernel = None
            if not args.kernel_stacks_only:
                if missing(uid_):
                    user = ["[Missed User Stack]"]
                    missed_user += 1
                else:
                    user = frames(stacks, uid_, lambda ip: syms.user(pid, ip, offset=args.offsets))
            if not args.user_stacks_only:
                if missing(kid):
                    kernel = ["[Missed Kernel Stack]"]
                    missed_kernel += 1
                else:
                    kernel = strip_tracing_frames(
                        frames(stacks, kid, lambda ip: syms.kernel(ip, offset=args.offsets)))
            if out.json:
                out.obj({"type": "stack", "pid": pid, "tid": tid, "comm": comm,
                         "user_stack": user, "kernel_stack": kernel,
                         "total_us": value_us, "count": count})
            elif args.folded:
                out.line(folded_line(comm, user, kernel, value_us, args.delimited))
            else:
                for line in text_block(comm, pid, user, kernel, value_us, args.delimited):
                    out.line(line)
        if missed_user or missed_kernel:
            sys.stderr.write(f"kernelscope: {missed_user} user and {missed_kernel} kernel stacks "
                             "missed (stack map full or collision; try --stack-storage-size)\n")
        report_lost(out, p.lost(), **({"missed_stacks": missed_user + missed_kernel}
                                      if out.json else {}))
    out.close()
    return 0
