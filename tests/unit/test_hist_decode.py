"""Pure helpers: log2 histograms, errno/signal names, argv splitting."""

from kernelscope.probes.proc_exec.probe import split_args
from kernelscope.runtime import hist
from kernelscope.runtime.decode import cstr, errno_name, signal_name


def test_buckets_and_format():
    slots = [0] * 64
    slots[0], slots[3], slots[5] = 2, 8, 4
    rows = hist.buckets(slots)
    assert rows[0] == {"low": 0, "high": 1, "count": 2}
    assert rows[3] == {"low": 8, "high": 15, "count": 8}
    assert len(rows) == 6 and hist.total(slots) == 14
    text = hist.format_log2(slots, "usecs")
    lines = text.splitlines()
    assert lines[0].strip().startswith("usecs")
    assert "8 -> 15" in lines[4] and "|" + "*" * 40 + "|" in lines[4]
    assert hist.percentile(slots, 0.5) == 15.0


def test_names():
    assert errno_name(-2) == "ENOENT" and errno_name(13) == "EACCES"
    assert signal_name(9) == "SIGKILL"
    assert cstr(b"abc\0def") == "abc"


def test_split_args_keeps_empty_and_utf8():
    buf = "a b\0\0ü\0".encode()
    assert split_args(buf, len(buf), 3) == ["a b", "", "ü"]
