"""Helpers the benchmarks share."""

from __future__ import annotations

import select
import socket
import subprocess
import time


def wait_line(proc: subprocess.Popen, stream, needle: str, timeout: float = 30.0) -> None:
    """Read `stream` until a line contains `needle` (a tool saying it is attached)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([stream], [], [], 0.2)
        if r:
            line = stream.readline()
            if needle in line:
                return
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"{proc.args[0]} exited early: {err}")
    raise RuntimeError(f"{proc.args} not ready")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
