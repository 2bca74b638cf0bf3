"""Start and stop a real `kernelscope agent` for kernel and e2e tests (temp store, free port)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


class AgentProc:
    def __init__(self, tmp: Path, modules=("exec",), extra: str = "", flush_interval: float = 0.5):
        self.tmp = Path(tmp)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = self.tmp / "ks.duckdb"
        self.status_file = self.tmp / "final-status.json"
        self.config = self.tmp / "agent.toml"
        mods = ", ".join(f'"{m}"' for m in modules)
        self.config.write_text(
            f'[agent]\nlisten = "127.0.0.1:{self.port}"\nmodules = [{mods}]\n'
            f'flush_interval = {flush_interval}\nstatus_file = "{self.status_file}"\n'
            f'[store]\npath = "{self.store}"\n{extra}')
        self.proc = None
        self.stderr = ""

    def start(self, timeout: float = 30.0) -> "AgentProc":
        self._err = open(self.tmp / "agent.stderr", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "kernelscope", "agent", "--config",
                                      str(self.config)], stdout=subprocess.DEVNULL, stderr=self._err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited early: {self.read_stderr()}")
            try:
                http_get(self.url + "/healthz", timeout=0.5)
                return self
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"agent did not start: {self.read_stderr()}")

    def read_stderr(self) -> str:
        self._err.flush()
        self._err.seek(0)
        return self._err.read()

    def status(self) -> dict:
        return json.loads(http_get(self.url + "/api/status"))

    def metrics(self) -> str:
        return http_get(self.url + "/metrics").decode()

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"agent did not stop on SIGTERM: {self.read_stderr()}")
        self.stderr = self.read_stderr()
        return rc

    def final_status(self) -> dict:
        return json.loads(self.status_file.read_text())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def unique_binary(tmp: Path, name: str, source: str = "/bin/true") -> Path:
    """A copy of `source` with a name no other process on the machine uses (its comm)."""
    import shutil
    dst = Path(tmp) / name
    shutil.copy(source, dst)
    os.chmod(dst, 0o755)
    return dst


def wait_for(fn, timeout: float = 15.0, interval: float = 0.2):
    """Call fn until it returns a truthy value; the last value otherwise."""
    deadline = time.monotonic() + timeout
    val = fn()
    while not val and time.monotonic() < deadline:
        time.sleep(interval)
        val = fn()
    return val
