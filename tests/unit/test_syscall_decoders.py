"""Pure decoders behind opensnoop, exitsnoop, syscount and trace: syscall tables,
tracefs formats, open/mmap flags, argument and return-value formatting (no root)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kernelscope.enrich import syscalls
from kernelscope.probes.file_open.decode import creates, dirfd_str, mode_str, open_flags
from kernelscope.probes.syscall_trace.decode import (
    bit_flags, c_string, format_arg, format_args, format_ret, mmap_flags, ret_errno, to_signed,
)

OPENAT_FORMAT = """name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: "dfd: 0x%08lx", ((unsigned long)(REC->dfd))
"""
OPENAT_SIG = [("int", "dfd", 8), ("const char *", "filename", 8), ("int", "flags", 8),
              ("umode_t", "mode", 8)]
WRITE_SIG = [("unsigned int", "fd", 8), ("const char *", "buf", 8), ("size_t", "count", 8)]


# -- syscall tables -------------------------------------------------------------------
def test_parse_kernel_tbl_skips_x32_and_comments():
    text = "# c\n0\tcommon\tread\t\tsys_read\n13\t64\trt_sigaction\tsys_rt_sigaction\n" \
           "512\tx32\trt_sigaction\tcompat_sys_rt_sigaction\n462 \tcommon  mseal\tsys_mseal\n"
    assert syscalls.parse_tbl(text) == {0: "read", 13: "rt_sigaction", 462: "mseal"}


def test_parse_short_tbl_and_unistd():
    assert syscalls.parse_tbl("1\twrite\n# x\n\n2 open\n") == {1: "write", 2: "open"}
    hdr = "#define __NR_read 0\n#define __NR_write 1\n#define __NR_syscalls 3x\n"
    assert syscalls.parse_unistd(hdr) == {0: "read", 1: "write"}


def test_shipped_table_is_complete_and_dense():
    t = syscalls.parse_tbl(syscalls.TABLE.read_text())
    # 0..336 and 424..470 have no holes on x86_64
    assert set(range(0, 337)) <= set(t) and set(range(424, 471)) <= set(t)
    assert (t[0], t[1], t[59], t[110], t[231], t[257], t[437], t[470]) == (
        "read", "write", "execve", "getppid", "exit_group", "openat", "openat2", "listns")
    assert len(set(t.values())) == len(t)


@pytest.mark.skipif(not syscalls.UNISTD.exists(), reason="no asm/unistd_64.h here")
def test_shipped_table_agrees_with_system_header():
    shipped = syscalls.parse_tbl(syscalls.TABLE.read_text())
    header = syscalls.parse_unistd(syscalls.UNISTD.read_text())
    assert {nr: shipped[nr] for nr in header} == header


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 numbers")
def test_lookup_both_ways_and_errors():
    from kernelscope.errors import UsageError
    assert syscalls.name(110) == "getppid" and syscalls.number("getppid") == 110
    assert syscalls.name(999) == "syscall_999" and syscalls.number("syscall_999") == 999
    assert syscalls.resolve(["read", "openat"]) == [0, 257]
    with pytest.raises(UsageError, match="unknown syscall 'bogus'"):
        syscalls.resolve(["read", "bogus"])


def test_parse_tracefs_format():
    assert syscalls.parse_format(OPENAT_FORMAT) == OPENAT_SIG
    assert syscalls.parse_format("name: x\nformat:\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\n") == []


def test_string_args_are_const_char_pointers_only():
    assert syscalls.is_string_arg("const char *")
    assert syscalls.is_string_arg("const char  *")
    assert not syscalls.is_string_arg("char *")            # output buffer (read, getcwd)
    assert not syscalls.is_string_arg("const char *const *")  # argv
    assert not syscalls.is_string_arg("const struct stat *")


# -- open(2) ----------------------------------------------------------------------
@pytest.mark.parametrize("flags, text", [
    (0, "O_RDONLY"),
    (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "O_WRONLY|O_CREAT|O_TRUNC"),
    (os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK, "O_RDWR|O_NONBLOCK|O_CLOEXEC"),
    (os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, "O_RDONLY|O_DIRECTORY|O_NOFOLLOW"),
    (os.O_WRONLY | os.O_SYNC, "O_WRONLY|O_SYNC"),
    (os.O_RDWR | os.O_TMPFILE, "O_RDWR|O_TMPFILE"),
    (os.O_PATH | os.O_CLOEXEC, "O_RDONLY|O_CLOEXEC|O_PATH"),
    (0o1 | 0x80000000, "O_WRONLY|0x80000000"),
])
def test_open_flags(flags, text):
    assert open_flags(flags) == text


def test_creates_mode_and_dirfd():
    assert creates(os.O_CREAT | os.O_WRONLY) and creates(os.O_TMPFILE | os.O_RDWR)
    assert not creates(os.O_DIRECTORY) and not creates(os.O_RDONLY)
    assert (mode_str(0o644), mode_str(0), mode_str(0o4755)) == ("0644", "0", "04755")
    assert (dirfd_str(-100), dirfd_str(5)) == ("AT_FDCWD", "5")


# -- trace argument formatting ---------------------------------------------------------------
def test_flags_tables():
    assert bit_flags(0, [(1, "A")], zero="NONE") == "NONE"
    assert bit_flags(5, [(1, "A"), (4, "C")]) == "A|C"
    assert bit_flags(0x12, [(2, "B")]) == "B|0x10"
    assert mmap_flags(0x22) == "MAP_PRIVATE|MAP_ANONYMOUS"
    assert mmap_flags(0x812) == "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE"
    assert mmap_flags(0x01) == "MAP_SHARED"


def test_c_string_escapes_and_cuts():
    assert c_string(b'a"b\\\n\t\x00\x7f') == '"a\\"b\\\\\\n\\t\\0\\177"'
    assert c_string(b"x" * 40, 32) == '"' + "x" * 32 + '"...'
    assert c_string(b"abc", truncated=True) == '"abc"...'


def test_to_signed():
    assert to_signed(2**32 - 100, 32) == -100 and to_signed(2**64 - 1, 64) == -1
    assert to_signed(7, 32) == 7


def test_format_arg_by_name_and_type():
    assert format_arg("openat", "int", "dfd", 2**64 - 100) == "AT_FDCWD"
    assert format_arg("openat", "int", "flags", 0o2000001) == "O_WRONLY|O_CLOEXEC"
    assert format_arg("mkdir", "umode_t", "mode", 0o755) == "0755"
    assert format_arg("mmap", "unsigned long", "prot", 3) == "PROT_READ|PROT_WRITE"
    assert format_arg("mmap", "unsigned long", "prot", 0) == "PROT_NONE"
    assert format_arg("mmap", "unsigned long", "addr", 0) == "NULL"
    assert format_arg("mmap", "unsigned long", "addr", 0x7f0000001000) == "0x7f0000001000"
    assert format_arg("newfstatat", "int", "flag", 0x1000) == "AT_EMPTY_PATH"
    assert format_arg("read", "char *", "buf", 0) == "NULL"
    assert format_arg("read", "char *", "buf", 0x1000) == "0x1000"
    assert format_arg("read", "unsigned int", "fd", 2**64 - 1) == "-1"
    assert format_arg("lseek", "off_t", "offset", 2**64 - 5) == "-5"
    assert format_arg("kill", "pid_t", "pid", 2**32 - 1) == "-1"
    assert format_arg("read", "size_t", "count", 832) == "832"
    assert format_arg("rt_sigaction", "int", "sig", 2) == "SIGINT"
    assert format_arg("kill", "int", "sig", 0) == "0"


def test_format_args_strings_buffers_and_unknown():
    assert format_args("openat", OPENAT_SIG, [2**64 - 100, 0x1000, 0o2000001, 0],
                       [(b"/dev/null\0", 10)]) == 'AT_FDCWD, "/dev/null", O_WRONLY|O_CLOEXEC'
    assert format_args("openat", OPENAT_SIG, [3, 0x1000, os.O_CREAT | os.O_WRONLY, 0o600],
                       [(b"f\0", 2)]) == '3, "f", O_WRONLY|O_CREAT, 0600'
    # a buffer with a count is cut at the count, not at the NUL-terminated read
    assert format_args("write", WRITE_SIG, [1, 0x1000, 3, 0, 0, 0],
                       [(b"hi\nGARBAGE\0", 12)]) == '1, "hi\\n", 3'
    assert format_args("write", WRITE_SIG, [1, 0x1000, 300, 0, 0, 0],
                       [(b"y" * 255 + b"\0", 256)]) == '1, "' + "y" * 32 + '"..., 300'
    # unreadable string: the pointer
    assert format_args("openat", OPENAT_SIG, [3, 0x1000, 0, 0], [(b"", -14)]) == "3, 0x1000, O_RDONLY"
    # a 255-byte path filled the slot: marked cut
    long = format_args("openat", OPENAT_SIG, [3, 0x1000, 0, 0], [(b"p" * 255 + b"\0", 256)])
    assert long.endswith('"...' + ", O_RDONLY")
    assert format_args("foo", None, [1, 2, 3, 4, 5, 6], []) == "0x1, 0x2, 0x3, 0x4, 0x5, 0x6"


def test_format_ret():
    assert format_ret("openat", 3) == "3"
    assert format_ret("openat", -2) == "-1 ENOENT (No such file or directory)"
    assert format_ret("mmap", 0x7f0000000000) == "0x7f0000000000"
    assert format_ret("exit_group", 0, returned=False) == "?"
    assert format_ret("read", -4096) == "-4096"          # not an errno
    assert (ret_errno(-9), ret_errno(0), ret_errno(-5000)) == ("EBADF", None, None)


# -- tool helpers -------------------------------------------------------------------------
def test_syscount_rows_sum_cpus_and_sort():
    from kernelscope.tools.syscount import format_table, rows_from_arrays, sort_rows, split_names
    assert split_names(["open,read", " write ", ","]) == ["open", "read", "write"]
    kdt = np.dtype([("id", "<u4")])
    vdt = np.dtype([("count", "<u8"), ("errors", "<u8"), ("total_ns", "<u8"), ("comm", "S16")])
    keys = np.array([(110,), (0,), (1,)], dtype=kdt)
    vals = np.zeros((3, 2), dtype=vdt)
    vals[0]["count"] = [3, 4]
    vals[0]["total_ns"] = [300, 400]
    vals[1]["count"] = [10, 0]
    vals[1]["errors"] = [1, 0]
    vals[1]["total_ns"] = [50, 0]
    rows = rows_from_arrays(keys, vals, per_process=False)   # nr 1 has no calls: dropped
    assert rows == [{"syscall": "getppid", "nr": 110, "count": 7, "errors": 0, "total_ns": 700, "avg_ns": 100},
                    {"syscall": "read", "nr": 0, "count": 10, "errors": 1, "total_ns": 50, "avg_ns": 5}]
    assert [r["nr"] for r in sort_rows(rows, "count", 0)] == [0, 110]
    assert [r["nr"] for r in sort_rows(rows, "time", 1)] == [110]
    vals[2]["count"] = [0, 1]
    vals[2]["comm"] = [b"", b"bash"]
    prow = rows_from_arrays(keys[2:], vals[2:], per_process=True)
    assert prow == [{"pid": 1, "comm": "bash", "count": 1, "errors": 0, "total_ns": 0, "avg_ns": 0}]
    assert format_table(prow, True)[1].split() == ["1", "bash", "1", "0", "0.000", "0.000"]


def test_trace_expr_summary_and_exit_code():
    from kernelscope.errors import UsageError
    from kernelscope.tools.trace import exit_code, format_summary, parse_expr, summarize
    assert parse_expr(["trace=open,read", "write"]) == ["open", "read", "write"]
    assert parse_expr(None) == []
    with pytest.raises(UsageError):
        parse_expr(["signal=none"])
    with pytest.raises(UsageError):
        parse_expr(["trace="])
    recs = [{"syscall": "read", "ret_errno": None, "duration_ns": 3000},
            {"syscall": "read", "ret_errno": "EBADF", "duration_ns": 1000},
            {"syscall": "close", "ret_errno": None, "duration_ns": 4000}]
    rows = summarize(recs)
    # equal time: more calls first
    assert [(r["syscall"], r["calls"], r["errors"], r["usecs_per_call"]) for r in rows] == [
        ("read", 2, 1, 2), ("close", 1, 0, 4)]
    assert rows[0]["percent_time"] == 50.0
    table = format_summary(rows)
    assert table[-1].split() == ["100.00", "0.000008", "2", "3", "1", "total"]
    assert exit_code(7 << 8) == 7 and exit_code(9) == 137


def test_exitsnoop_describe():
    from kernelscope.tools.exitsnoop import describe_exit
    assert describe_exit({"sig": 0, "exit_code": 0}) == "0"
    assert describe_exit({"sig": 0, "exit_code": 7}) == "code 7"
    assert describe_exit({"sig": 9, "sig_name": "SIGKILL", "exit_code": 0}) == "signal 9 (SIGKILL)"
    assert describe_exit({"sig": 11, "sig_name": "SIGSEGV", "exit_code": 0, "core_dumped": True}) \
        == "signal 11 (SIGSEGV), core dumped"


def test_syscount_interval_differences():
    from kernelscope.tools.syscount import subtract
    before = {0: {"nr": 0, "count": 5, "errors": 1, "total_ns": 50}}
    now = [{"syscall": "read", "nr": 0, "count": 8, "errors": 1, "total_ns": 80, "avg_ns": 10},
           {"syscall": "write", "nr": 1, "count": 2, "errors": 0, "total_ns": 20, "avg_ns": 10}]
    assert subtract(now, before) == [
        {"syscall": "read", "nr": 0, "count": 3, "errors": 0, "total_ns": 30, "avg_ns": 10},
        {"syscall": "write", "nr": 1, "count": 2, "errors": 0, "total_ns": 20, "avg_ns": 10}]
    assert subtract(now[:1], {0: now[0]}) == []     # no new calls: no row


def test_execve_argv_packing():
    from kernelscope.probes.syscall_trace.decode import ARGV_CUT, format_argv
    # numpy drops the trailing NUL of the last entry: the packed size restores it
    assert format_argv(b"ls\0-l\0/tmp", 11) == '["ls", "-l", "/tmp"]'
    assert format_argv(b"a\0\0b", 5) == '["a", "", "b"]'
    assert format_argv(b"", 0) == "[]"
    assert format_argv(b"sh\0-c", 6 + ARGV_CUT) == '["sh", "-c", ...]'
    sig = [("const char *", "filename", 8), ("const char *const *", "argv", 8),
           ("const char *const *", "envp", 8)]
    assert format_args("execve", sig, [1, 0x10, 0x20], [(b"/bin/ls", 8)], (b"ls", 3)) \
        == '"/bin/ls", ["ls"], 0x20'
