"""Shared fixtures: run the CLI, check that nothing stays loaded in the kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def bpf_prog_ids() -> set[int]:
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True)
    if out.returncode:
        return set()
    return {p["id"] for p in json.loads(out.stdout or "[]")}


def bpf_map_ids() -> set[int]:
    out = subprocess.run(["bpftool", "map", "show", "--json"], capture_output=True, text=True)
    if out.returncode:
        return set()
    return {m["id"] for m in json.loads(out.stdout or "[]")}


def wait_gone(before_progs: set[int], timeout: float = 5.0) -> set[int]:
    """Program ids added since `before_progs` that are still loaded after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        extra = bpf_prog_ids() - before_progs
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.1)


def ks_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "kernelscope", *args]


def run_ks(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(ks_cmd(*args), capture_output=True, text=True, timeout=timeout, **kw)


def start_ks(*args: str, **kw) -> subprocess.Popen:
    """Start a tool and wait until its probes are attached (it printed its header, or
    in JSON mode: wait a fixed time)."""
    return subprocess.Popen(ks_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def wait_ready(proc: subprocess.Popen, timeout: float = 20.0) -> str:
    """Read the first stdout line (a header): the tool is attached once it is printed."""
    import select
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            return proc.stdout.readline()
        if proc.poll() is not None:
            raise AssertionError(f"tool exited early: {proc.stderr.read()}")
    raise AssertionError("tool did not become ready")


@pytest.fixture
def no_leaks():
    """Fails the test when a BPF program loaded during it outlives it."""
    before = bpf_prog_ids()
    yield
    extra = wait_gone(before)
    assert not extra, f"BPF programs left loaded: {sorted(extra)}"


def pytest_collection_modifyitems(config, items):
    root = os.geteuid() == 0
    for item in items:
        path = str(item.fspath)
        if ("/tests/kernel/" in path or "/tests/e2e/" in path) and not root:
            item.add_marker(pytest.mark.skip(reason="needs root"))
