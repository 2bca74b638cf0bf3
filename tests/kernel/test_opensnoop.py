"""opensnoop against opens this test makes: a unique path created with exact flags and
mode (fd checked), and a missing path failing with ENOENT."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

from conftest import start_ks, wait_attached


def _stop(proc) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


def test_open_flags_fd_and_enoent(tmp_path, no_leaks):
    path = tmp_path / f"ks_open_{uuid.uuid4().hex}"
    missing = tmp_path / f"ks_missing_{uuid.uuid4().hex}"
    tool = start_ks("opensnoop", "--json", "-p", str(os.getpid()))
    try:
        wait_attached(tool)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        os.close(fd)
        try:
            os.open(missing, os.O_RDONLY)
        except FileNotFoundError:
            pass
        else:
            raise AssertionError("open of a missing file succeeded")
        time.sleep(0.3)
    finally:
        out, _ = _stop(tool)
    recs = [json.loads(line) for line in out.splitlines()]
    mine = {r["path"]: r for r in recs if r["type"] == "open"}
    assert all(r["pid"] == os.getpid() for r in mine.values())
    ok = mine[str(path)]
    assert ok["retval"] == fd and ok["retval_name"] is None
    assert ok["flags"] == os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    assert ok["flags_str"] == "O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC"
    assert ok["mode"] == 0o640 and ok["mode_str"] == "0640"
    assert ok["call"] == "openat" and ok["dfd"] == -100
    bad = mine[str(missing)]
    assert bad["retval"] == -2 and bad["retval_name"] == "ENOENT"
    # Python adds O_CLOEXEC to every os.open (PEP 446)
    assert bad["flags_str"] == "O_RDONLY|O_CLOEXEC" and bad["mode_str"] is None


def test_failed_only_and_name_filter(tmp_path, no_leaks):
    """-x keeps only the failing open; -n filters on a comm substring (ours is python)."""
    path = tmp_path / f"ks_ok_{uuid.uuid4().hex}"
    missing = tmp_path / f"ks_nope_{uuid.uuid4().hex}"
    comm = open("/proc/self/comm").read().strip()
    tool = start_ks("opensnoop", "--json", "-x", "-n", comm[1:5])
    try:
        wait_attached(tool)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        try:
            os.open(missing, os.O_RDONLY)
        except FileNotFoundError:
            pass
        time.sleep(0.3)
    finally:
        out, _ = _stop(tool)
    recs = [json.loads(line) for line in out.splitlines() if '"open"' in line]
    paths = {r["path"] for r in recs}
    assert str(missing) in paths and str(path) not in paths
    assert all(r["retval"] < 0 and comm[1:5] in r["comm"] for r in recs)
