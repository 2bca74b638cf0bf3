"""Pure parts of biolatency, biosnoop, runqlat and offcputime: dev_t <-> disk names,
flag names, histogram JSON/text, folded stacks, per-process merging."""

from __future__ import annotations

import argparse

import pytest

from kernelscope.enrich.disks import disk_dev, disk_name, disk_table, mkdev, parse_dev_file, split_dev
from kernelscope.errors import UsageError
from kernelscope.tools import _histtool
from kernelscope.tools.biolatency import format_flags
from kernelscope.tools.biosnoop import rw
from kernelscope.tools.offcputime import folded_line, missing, strip_tracing_frames, text_block
from kernelscope.tools.runqlat import group_by_pid


@pytest.fixture
def sysfs(tmp_path):
    for name, dev in (("sda", "8:0"), ("sda1", "8:1"), ("loop3", "7:3"), ("nvme0n1", "259:0")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dev").write_text(dev + "\n")
    (tmp_path / "broken").mkdir()   # no dev file: ignored
    return tmp_path


def test_dev_t(sysfs):
    assert mkdev(8, 1) == (8 << 20) | 1 and split_dev(mkdev(259, 7)) == (259, 7)
    assert parse_dev_file("7:3\n") == mkdev(7, 3)
    table = disk_table(sysfs)
    assert table == {mkdev(8, 0): "sda", mkdev(8, 1): "sda1", mkdev(7, 3): "loop3",
                     mkdev(259, 0): "nvme0n1"}
    assert disk_name(mkdev(259, 0), table) == "nvme0n1"
    assert disk_name(mkdev(9, 9), table) == "9:9"
    assert disk_dev("/dev/loop3", sysfs) == mkdev(7, 3)
    assert disk_dev("sda1", sysfs) == mkdev(8, 1)
    assert disk_dev("253:4", sysfs) == mkdev(253, 4)
    with pytest.raises(UsageError):
        disk_dev("sdz", sysfs)
    with pytest.raises(UsageError):
        disk_dev("a:b", sysfs)


def test_real_sysfs_has_this_machines_disks():
    import os
    table = disk_table()
    for name in os.listdir("/sys/block"):
        assert name in table.values()


OPS = {0: "READ", 1: "WRITE", 2: "FLUSH", 3: "DISCARD", 9: "WRITE_ZEROES"}
BITS = {"SYNC": 11, "META": 12, "FUA": 17, "PREFLUSH": 18, "RAHEAD": 19}


def test_flag_names():
    assert format_flags(0, OPS, BITS) == "Read"
    assert format_flags(1 | 1 << 11, OPS, BITS) == "Sync-Write"
    assert format_flags(1 | 1 << 18 | 1 << 17 | 1 << 11, OPS, BITS) == "PreFlush-Sync-FUA-Write"
    assert format_flags(0 | 1 << 19, OPS, BITS) == "ReadAhead-Read"
    assert format_flags(9, OPS, BITS) == "WriteZeroes"
    assert format_flags(0xff, OPS, BITS) == "Unknown"
    assert rw("Sync-Read") == "R" and rw("PreFlush-Flush") == "F" and rw("Discard") == "D"


def test_flag_names_use_this_kernels_enums():
    from kernelscope.tools.biolatency import flag_names
    assert flag_names(0) == "Read"
    assert flag_names(1) == "Write"


class FakeOut:
    def __init__(self, json_mode):
        self.json = json_mode
        self.lines, self.objs = [], []

    def line(self, text):
        self.lines.extend(text.split("\n"))

    def obj(self, o):
        self.objs.append(o)

    def flush(self):
        pass


def test_emit_hists_json_and_text():
    slots = [0] * 64
    slots[1], slots[4] = 3, 5
    out = FakeOut(True)
    _histtool.emit_hists(out, [({"disk": "sda"}, slots)], "usecs", lambda lb: None, 12.5)
    (o,) = out.objs
    assert o["disk"] == "sda" and o["total"] == 8 and o["ts"] == 12.5 and o["unit"] == "usecs"
    assert o["buckets"][4] == {"low": 16, "high": 31, "count": 5} and len(o["buckets"]) == 5
    out = FakeOut(False)
    _histtool.emit_hists(out, [({"disk": "sda"}, slots)], "usecs", lambda lb: f"disk = {lb['disk']}", None)
    assert "disk = sda" in out.lines
    header = next(ln for ln in out.lines if "distribution" in ln)
    row = next(ln for ln in out.lines if ln.strip().startswith("16 ->"))
    # bcc's columns: the colons line up
    assert header.index(":") == row.index(":")
    assert row.endswith("|" + "*" * 40 + "|")
    out = FakeOut(True)
    _histtool.emit_hists(out, [], "msecs", lambda lb: None, None)
    assert out.objs == [{"type": "histogram", "unit": "msecs", "total": 0, "buckets": []}]


def test_interval_args():
    p = argparse.ArgumentParser()
    _histtool.add_interval_args(p)
    a = p.parse_args(["2", "5"])
    assert (a.interval, a.count) == (2.0, 5)
    a = p.parse_args([])
    assert a.interval is None and a.count is None
    with pytest.raises(SystemExit):
        p.parse_args(["-1"])


def test_group_by_pid_merges_threads(monkeypatch):
    import kernelscope.tools.runqlat as rq
    monkeypatch.setattr(rq, "tgid_of", lambda tid: {101: 100, 100: 100}.get(tid, tid))
    a, b, c = [1, 0, 2], [0, 1, 1], [5, 0, 0]
    groups = group_by_pid([(100, "app", a), (101, "app", b), (7, "other", c)], tid_keys=True)
    assert groups == [({"pid": 7, "comm": "other"}, c), ({"pid": 100, "comm": "app"}, [1, 1, 3])]
    groups = group_by_pid([(100, "app", a), (101, "app", b)], tid_keys=False)
    assert [g[0]["pid"] for g in groups] == [100, 101]


def test_folded_and_text_stacks():
    kernel = ["__schedule", "schedule", "do_nanosleep"]
    user = ["clock_nanosleep", "main"]
    assert folded_line("my app", user, kernel, 42, False) == \
        "my_app;main;clock_nanosleep;do_nanosleep;schedule;__schedule 42"
    assert folded_line("a", user, kernel, 1, True) == \
        "a;main;clock_nanosleep;-;do_nanosleep;schedule;__schedule 1"
    assert folded_line("a", None, kernel, 1, True) == "a;do_nanosleep;schedule;__schedule 1"
    block = text_block("sleep", 12, user, kernel, 99, True)
    assert block == ["    __schedule", "    schedule", "    do_nanosleep", "    --",
                     "    clock_nanosleep", "    main", "    -                sleep (12)",
                     "        99", ""]
    assert strip_tracing_frames(["bpf_prog_abc_sched_switch__tp_btf [bpf]", "bpf_trace_run4",
                                 "__schedule", "schedule"]) == ["__schedule", "schedule"]
    assert strip_tracing_frames(["perf_trace_sched_switch", "__traceiter_sched_switch",
                                 "__schedule"]) == ["__schedule"]
    assert missing(-12) and not missing(-14) and not missing(3)
