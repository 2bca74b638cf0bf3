"""What every tool shares: flags, output (text or JSON lines), stop conditions, loss report.

Flags defined here and nowhere else:
  --json            one JSON object per line; a final {"type": "summary", ...}
  --duration SECS   stop after SECS seconds, exit 0
  -p/--pid PID      only this process (tgid); repeatable
  -c/--comm COMM    only processes with this command name; repeatable
  -u/--uid UID      only this user id
  -o/--output FILE  write there instead of stdout
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterable

from kernelscope.errors import UsageError


def add_common(parser: argparse.ArgumentParser, pid: bool = True, comm: bool = True,
               uid: bool = True, duration: bool = True) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument("--json", action="store_true", help="one JSON object per line")
    if duration:
        g.add_argument("--duration", type=positive_float, metavar="SECONDS",
                       help="stop after this many seconds (exit 0)")
    if pid:
        g.add_argument("-p", "--pid", type=positive_int, action="append", metavar="PID",
                       help="only this process id (repeatable)")
    if comm:
        g.add_argument("-c", "--comm", action="append", metavar="COMM",
                       help="only this command name (repeatable)")
    if uid:
        g.add_argument("-u", "--uid", type=nonneg_int, metavar="UID", help="only this user id")
    g.add_argument("-o", "--output", metavar="FILE", help="write output to FILE")


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return v


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return v


def kernel_filter_config(args, **config) -> dict:
    """`cfg_pid` / `cfg_uid` for probes that filter in the kernel: a single -p and -u
    are applied there; several pids are left to record_filter in Python."""
    pids = getattr(args, "pid", None) or ()
    if len(pids) == 1:
        config["pid"] = pids[0]
    if getattr(args, "uid", None) is not None:
        config["uid"] = args.uid
    return config


def record_filter(args, also: Callable[[dict], bool] | None = None) -> Callable[[dict], bool]:
    """The pid/comm/uid filter of the common flags, for decoded records, and `also`."""
    pids = set(getattr(args, "pid", None) or ())
    comms = set(getattr(args, "comm", None) or ())
    uid = getattr(args, "uid", None)

    def keep(rec: dict) -> bool:
        if also is not None and not also(rec):
            return False
        if pids and rec.get("pid") not in pids:
            return False
        if comms and rec.get("comm") not in comms:
            return False
        if uid is not None and rec.get("uid") != uid:
            return False
        return True

    return keep


class Output:
    """Text lines or JSON lines to stdout or a file; survives a closed pipe."""

    def __init__(self, args):
        self.json = bool(getattr(args, "json", False))
        path = getattr(args, "output", None)
        try:
            self.f = open(path, "w", buffering=1) if path else sys.stdout
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror}")
        self._own = bool(path)
        self.broken = False

    def line(self, text: str) -> None:
        if self.broken:
            return
        try:
            self.f.write(text + "\n")
        except BrokenPipeError:
            self._broken()

    def obj(self, obj: dict) -> None:
        self.line(json.dumps(obj, ensure_ascii=False, default=_json_default))

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self.f.flush()
        except BrokenPipeError:
            self._broken()

    def _broken(self):
        self.broken = True
        # stdout's reader went away (`| head`): stop writing, exit quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())

    def close(self) -> None:
        self.flush()
        if self._own:
            self.f.close()


def _json_default(o):
    import numpy as np
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (bytes, bytearray)):
        return o.decode("utf-8", errors="replace")
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


class StopFlag:
    """Set by SIGINT/SIGTERM or a deadline; tools poll it between batches."""

    def __init__(self, duration: float | None = None):
        self.event = threading.Event()
        self.deadline = time.monotonic() + duration if duration else None
        self.signal = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.signal = signum
        self.event.set()

    def __call__(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.event.set()
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        if self.deadline is not None:
            seconds = max(0.0, min(seconds, self.deadline - time.monotonic()))
        self.event.wait(seconds)
        return self()


def report_lost(out: Output, lost: int, **extra) -> None:
    """The loss line every tool prints at exit: stderr in text mode, a summary object in JSON."""
    if out.json:
        out.obj({"type": "summary", "lost": int(lost), **extra})
    elif lost or extra.get("always"):
        sys.stderr.write(f"kernelscope: {lost} events lost (ring buffer full)\n")
    else:
        sys.stderr.write("kernelscope: 0 events lost\n")
    out.flush()


def announce_attached(what: str) -> None:
    """One stderr line once probes are attached: tests and scripts wait for it."""
    sys.stderr.write(f"kernelscope: {what} attached, Ctrl-C to stop\n")
    sys.stderr.flush()


def fmt_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def stream_records(out: Output, reader, decode: Callable, keep: Callable[[dict], bool],
                   emit: Callable[[Output, list[dict]], None], stop: Callable[[], bool]) -> None:
    """The loop of every streaming tool: batches -> decoded records -> filter -> emit."""
    for _name, batch in reader.batches(until=stop):
        recs = [r for r in decode(batch) if keep(r)]
        if recs:
            emit(out, recs)
            out.flush()


def run_event_tool(args, probe: str, emit: Callable[[Output, list[dict]], None],
                   config: dict | None = None, header: str | None = None,
                   map_sizes: dict[str, int] | None = None,
                   keep: Callable[[dict], bool] | None = None,
                   stop: StopFlag | None = None, after: Callable[[], None] | None = None) -> int:
    """Open a ring-buffer probe, stream decoded, filtered records to `emit`, report loss."""
    from kernelscope.runtime.decode import Decoder
    from kernelscope.runtime.loader import open_probe
    from kernelscope.runtime.reader import Reader

    out = Output(args)
    stop = stop or StopFlag(getattr(args, "duration", None))
    keep = keep or record_filter(args)
    with open_probe(probe, config=config, map_sizes=map_sizes) as p, Reader({"events": p.ring()}) as reader:
        dec = Decoder(p.btf, p.spec.event)
        if header and not out.json:
            out.line(header)
            out.flush()
        announce_attached(probe)
        if after:
            after()

        def decode(batch):
            recs = dec.to_dicts(batch)
            return p.spec.decode(p, batch, recs) if p.spec.decode else recs

        stream_records(out, reader, decode, keep, emit, stop)
        report_lost(out, p.lost())
    out.close()
    return 0


def emit_json_or(fmt: Callable[[dict], str], kind: str):
    """An emit function: JSON objects with a "type", or text lines from `fmt`."""
    def emit(out: Output, recs: Iterable[dict]) -> None:
        for r in recs:
            if out.json:
                out.obj({"type": kind, **r})
            else:
                out.line(fmt(r))
    return emit
