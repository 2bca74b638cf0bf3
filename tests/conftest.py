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


def _progs() -> list[dict]:
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True)
    return json.loads(out.stdout or "[]") if out.returncode == 0 else []


def prog_owners() -> dict[int, set[int]]:
    """BPF program id -> pids holding an fd to it (from /proc/*/fdinfo)."""
    owners: dict[int, set[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for fi in (d / "fdinfo").iterdir():
                try:
                    text = fi.read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    if line.startswith("prog_id:"):
                        owners.setdefault(int(line.split()[1]), set()).add(int(d.name))
        except OSError:
            continue
    return owners


def leaked_prog_ids(before_progs: set[int]) -> set[int]:
    """New programs held by this test process or by no process at all (pinned/leaked).

    Programs held by other live processes (another session's tool) are not ours."""
    me = os.getpid()
    owners = prog_owners()
    extra = set()
    for p in _progs():
        if p["id"] in before_progs:
            continue
        held = owners.get(p["id"], set())
        if not held or me in held:
            extra.add(p["id"])
    return extra


def wait_gone(before_progs: set[int], timeout: float = 5.0) -> set[int]:
    """Program ids added since `before_progs` that are still ours after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        extra = leaked_prog_ids(before_progs)
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


def wait_attached(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Wait for the tool's stderr line "kernelscope: ... attached" (works in --json mode)."""
    import select
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stderr], [], [], 0.2)
        if r:
            line = proc.stderr.readline()
            seen.append(line)
            if "attached" in line:
                return
            if not line and proc.poll() is not None:
                break
        elif proc.poll() is not None:
            break
    raise AssertionError(f"tool did not attach: {''.join(seen)}")


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
