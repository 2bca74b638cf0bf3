"""trace: a low-overhead strace. One line per syscall of a process (-p PID) or of a
command it starts (trace -- CMD ARGS...), following children, with decoded arguments,
return value (errno name) and duration. Selection and argument copies happen in the
kernel, only for traced processes. Exits with the command's exit code.

Lines go to stderr like strace's (the command keeps stdout), or to -o FILE.
JSON fields (type "syscall"): ts (entry, UNIX seconds), pid, tid, comm, syscall, nr,
args (six raw integers), args_str (decoded), ret (raw), ret_errno (name or null),
returned (false: the thread ended inside the call, as exit_group), duration_ns.
With -c: rows of type "syscall_summary": syscall, calls, errors, seconds, usecs_per_call,
percent_time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys

from kernelscope.errors import UsageError
from kernelscope.tools.common import Output, StopFlag, add_common, announce_attached, report_lost

NAME = "trace"
HELP = "trace the syscalls of a process or command and its children (a low-overhead strace)"


def add_arguments(p) -> None:
    p.add_argument("-e", "--expr", action="append", metavar="trace=NAME[,NAME...]",
                   help="only these syscalls, as strace's -e trace=open,read (repeatable)")
    p.add_argument("-c", "--summary", action="store_true",
                   help="print a table of calls, errors and time per syscall at the end")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS",
                   help="command to start and trace")
    add_common(p, comm=False, uid=False)


def parse_expr(values: list[str] | None) -> list[str]:
    """['trace=open,read', 'write'] -> ['open', 'read', 'write']; other qualifiers refused."""
    names = []
    for v in values or ():
        if "=" in v:
            qual, _, v = v.partition("=")
            if qual.strip() not in ("trace", "t"):
                raise UsageError(f"unsupported -e qualifier {qual!r} (only trace=)")
        names += [n.strip() for n in v.split(",") if n.strip()]
    if values and not names:
        raise UsageError("-e trace= needs at least one syscall name")
    return names


def string_arg_masks() -> dict[int, int]:
    """{nr: bitmask of `const char *` arguments} for every syscall tracefs describes."""
    from kernelscope.enrich import syscalls
    from kernelscope.enrich.syscalls import is_string_arg
    masks = {}
    for nr, name in syscalls.table().items():
        sig = syscalls.signature(name)
        if not sig:
            continue
        m = 0
        for i, (ctype, _n, _s) in enumerate(sig[:6]):
            if is_string_arg(ctype):
                m |= 1 << i
        if m:
            masks[nr] = m
    return masks


def to_record(r: dict) -> dict:
    """A decoded ring record -> the tool's record (names, formatted arguments)."""
    from kernelscope.enrich import syscalls
    from kernelscope.probes.syscall_trace.decode import format_args, ret_errno
    name = syscalls.name(r["nr"])
    strings = [(r["str0_raw"], r["str_len"][0]), (r["str1_raw"], r["str_len"][1])]
    argv = (r["str1_raw"], r["str_len"][1]) if name in ("execve", "execveat") else None
    return {"ts": r["ts"], "pid": r["pid"], "tid": r["tid"], "comm": r["comm"], "syscall": name,
            "nr": r["nr"], "args": [int(a) for a in r["args"]],
            "args_str": format_args(name, syscalls.signature(name), r["args"], strings, argv),
            "ret": r["ret"], "ret_errno": ret_errno(r["ret"]) if r["returned"] else None,
            "returned": bool(r["returned"]), "duration_ns": r["duration_ns"]}


def format_line(rec: dict) -> str:
    from kernelscope.probes.syscall_trace.decode import format_ret
    ret = format_ret(rec["syscall"], rec["ret"], rec["returned"])
    dur = f" <{rec['duration_ns'] / 1e9:.6f}>" if rec["returned"] else ""
    return f"[pid {rec['tid']:>6}] {rec['syscall']}({rec['args_str']}) = {ret}{dur}"


def summarize(records: list[dict]) -> list[dict]:
    """strace -c rows from records: per syscall calls, errors, seconds; sorted by time."""
    rows: dict[str, dict] = {}
    for r in records:
        row = rows.setdefault(r["syscall"], {"syscall": r["syscall"], "calls": 0, "errors": 0,
                                             "total_ns": 0})
        row["calls"] += 1
        row["errors"] += 1 if r["ret_errno"] else 0
        row["total_ns"] += r["duration_ns"]
    total = sum(r["total_ns"] for r in rows.values()) or 1
    out = []
    for row in rows.values():
        out.append({"syscall": row["syscall"], "calls": row["calls"], "errors": row["errors"],
                    "seconds": row["total_ns"] / 1e9,
                    "usecs_per_call": row["total_ns"] // row["calls"] // 1000,
                    "percent_time": 100.0 * row["total_ns"] / total})
    return sorted(out, key=lambda r: (-r["seconds"], -r["calls"], r["syscall"]))


def format_summary(rows: list[dict]) -> list[str]:
    sep = "------ ----------- ----------- --------- --------- ----------------"
    lines = ["% time     seconds  usecs/call     calls    errors syscall", sep]
    for r in rows:
        lines.append(f"{r['percent_time']:6.2f} {r['seconds']:11.6f} {r['usecs_per_call']:11d} "
                     f"{r['calls']:9d} {r['errors'] or '':>9} {r['syscall']}")
    calls = sum(r["calls"] for r in rows)
    errors = sum(r["errors"] for r in rows)
    secs = sum(r["seconds"] for r in rows)
    lines += [sep, f"{100 if rows else 0:6.2f} {secs:11.6f} {int(secs * 1e6 / calls) if calls else 0:11d} "
              f"{calls:9d} {errors or '':>9} total"]
    return lines


def exit_code(status: int) -> int:
    """A wait status -> the shell's exit code (128+signal when killed)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _start_gated(argv: list[str]) -> tuple[int, int]:
    """Fork a child that execs argv once the returned pipe fd is written to."""
    exe = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
    if not exe or not os.access(exe, os.X_OK) or os.path.isdir(exe):
        raise UsageError(f"cannot run {argv[0]!r}: command not found or not executable")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: wait for the gate, then exec; never return to Python
        try:
            os.close(w)
            if os.read(r, 1) != b"g":
                os._exit(126)
            os.close(r)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.execv(exe, argv)
        except OSError as e:
            os.write(2, f"kernelscope trace: cannot run {argv[0]}: {e.strerror}\n".encode())
        os._exit(127)
    os.close(r)
    return pid, w


def run(args) -> int:
    from kernelscope.enrich import syscalls
    from kernelscope.probes.syscall_trace.probe import TRACE_ON, TRACE_WAIT_EXEC
    from kernelscope.runtime.decode import Decoder
    from kernelscope.runtime.loader import open_probe
    from kernelscope.runtime.reader import Reader

    command = list(args.command or [])
    if command and command[0] == "--":
        command = command[1:]
    if bool(command) == bool(args.pid):
        raise UsageError("give either -p PID or a command after --")
    for pid in args.pid or ():
        if not os.path.isdir(f"/proc/{pid}"):
            raise UsageError(f"no process {pid}")
    wanted = syscalls.resolve(parse_expr(args.expr))
    numbers = syscalls.numbers()
    config = {"filter": 1 if wanted else 0, "strings": 0 if args.summary else 1,
              "execve_nr": numbers["execve"], "execveat_nr": numbers["execveat"]}

    out = Output(args)
    if not args.output:
        out.f = sys.stderr   # like strace: the traced command keeps stdout
    stop = StopFlag(getattr(args, "duration", None))
    child, gate = (_start_gated(command) if command else (None, None))
    status = None

    def finished() -> bool:
        nonlocal status
        if child is not None:
            if status is None:
                pid, st = os.waitpid(child, os.WNOHANG)
                if pid:
                    status = st
            return status is not None or stop()
        return stop() or not any(True for _ in traced.keys())

    records: list[dict] = []
    try:
        with open_probe("syscall_trace", config=config) as p, Reader({"events": p.ring()}) as reader:
            for nr, mask in string_arg_masks().items():
                if nr < p.maps["str_args"].max_entries:
                    p.maps["str_args"].update(nr, bytes([mask]))
            for nr in wanted:
                p.maps["wanted"].update(nr, b"\x01")
            traced = p.maps["traced"]
            if child is not None:
                traced.update(child, bytes([TRACE_WAIT_EXEC]))
            for pid in args.pid or ():
                traced.update(pid, bytes([TRACE_ON]))
            dec = Decoder(p.btf, p.spec.event)
            announce_attached("syscall_trace")
            if gate is not None:
                os.write(gate, b"g")
                os.close(gate)
                gate = None
            for _name, batch in reader.batches(until=finished):
                recs = dec.to_dicts(batch)
                for r, raw0, raw1 in zip(recs, batch["str0"], batch["str1"]):
                    r["str0_raw"], r["str1_raw"] = bytes(raw0), bytes(raw1)
                recs = [to_record(r) for r in recs]
                if args.summary:
                    records += recs
                    continue
                for rec in recs:
                    if out.json:
                        out.obj({"type": "syscall", **rec})
                    else:
                        out.line(format_line(rec))
                out.flush()
            if args.summary:
                rows = summarize(records)
                if out.json:
                    for row in rows:
                        out.obj({"type": "syscall_summary", **row})
                else:
                    for line in format_summary(rows):
                        out.line(line)
            report_lost(out, p.lost())
    finally:
        if gate is not None:  # the probe never attached: do not run the command
            os.close(gate)
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
    out.close()
    if child is not None and status is None:
        # stopped by Ctrl-C (which the command got too) or --duration: give it a moment
        for _ in range(20):
            pid, st = os.waitpid(child, os.WNOHANG)
            if pid:
                status = st
                break
            stop.event.wait(0.05)
    if child is not None and status is not None:
        return exit_code(status)
    return 0
