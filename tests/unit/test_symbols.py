"""The symbolizer: kallsyms parsing, /proc/PID/maps parsing, ELF symbol tables, and real
addresses of functions in a library this test builds and loads."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import pytest

from kernelscope.enrich.symbols import (
    UNKNOWN, ElfFile, ProcessSymbols, Symbolizer, SymbolTable, load_elf_symbols,
    parse_kallsyms, parse_maps,
)

KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81000100 t helper_a
ffffffff81000200 T do_nanosleep
ffffffff81000300 D some_data
ffffffff81000400 T hrtimer_nanosleep
0000000000000000 T hidden_zero
ffffffffc0001000 t nf_hook [nf_tables]
"""

MAPS = """\
55d0c0a00000-55d0c0a20000 r--p 00000000 fd:01 1234   /usr/bin/prog
55d0c0a20000-55d0c0a80000 r-xp 00020000 fd:01 1234   /usr/bin/prog
7f0000000000-7f0000001000 rw-p 00000000 00:00 0
7ffd0e9f0000-7ffd0e9f2000 r-xp 00000000 00:00 0      [vdso]
"""


def test_kallsyms_lookup():
    t = parse_kallsyms(KALLSYMS)
    assert t.lookup(0xffffffff81000200) == ("do_nanosleep", 0)
    assert t.lookup(0xffffffff81000234) == ("do_nanosleep", 0x34)
    # data symbols are skipped: an address after it still belongs to the text before
    assert t.lookup(0xffffffff81000350)[0] == "do_nanosleep"
    assert t.lookup(0xffffffff81000410)[0] == "hrtimer_nanosleep"
    assert t.lookup(0xffffffffc0001010)[0] == "nf_hook [nf_tables]"
    assert t.lookup(0x1000) is None


def test_symbol_table_ranges():
    t = SymbolTable([(100, 200, "outer"), (120, 130, "inner"), (300, 300, "empty")])
    assert t.lookup(125) == ("inner", 5)
    assert t.lookup(150) == ("outer", 50)   # past inner's end, still inside outer
    assert t.lookup(250) is None
    assert t.lookup(300) == ("empty", 0)
    assert t.lookup(99) is None


def test_parse_maps_keeps_executable_mappings():
    maps = parse_maps(MAPS)
    assert [(m.path, m.offset) for m in maps] == [("/usr/bin/prog", 0x20000), ("[vdso]", 0)]
    ps = ProcessSymbols(1, {}, maps_text=MAPS)
    assert ps.mapping(0x55d0c0a20010).path == "/usr/bin/prog"
    assert ps.mapping(0x7f0000000010) is None
    assert ps.lookup(0x7ffd0e9f0010) == (UNKNOWN, 0, "[vdso]")


def test_real_kernel_symbols():
    if os.geteuid() != 0:
        pytest.skip("kallsyms addresses are hidden from non-root")
    s = Symbolizer()
    text = open("/proc/kallsyms").read()
    addr = next(int(line.split()[0], 16) for line in text.splitlines()
                if line.split()[2] == "do_nanosleep")
    assert s.kernel(addr + 3) == "do_nanosleep"
    assert s.kernel(addr + 3, offset=True) == "do_nanosleep+0x3"


LIB_C = r"""
static int ks_hidden(int x) { return x * 3 + 1; }
int ks_alpha(int x) { return ks_hidden(x) + 7; }
int ks_beta(int x) { int s = 0; for (int i = 0; i < x; i++) s += i ^ x; return s; }
"""


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the test library")
    d = tmp_path_factory.mktemp("symlib")
    (d / "lib.c").write_text(LIB_C)
    full = d / "libksfull.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O0", "-o", str(full), str(d / "lib.c")], check=True)
    stripped = d / "libksstripped.so"
    subprocess.run(["strip", "--strip-all", "-o", str(stripped), str(full)], check=True)
    return full, stripped


def test_elf_symbols_of_built_library(libs):
    full, stripped = libs
    names = {n for _s, _e, n in ElfFile.open(full).symbols()}
    assert {"ks_alpha", "ks_beta", "ks_hidden"} <= names
    names = {n for _s, _e, n in ElfFile.open(stripped).symbols()}
    assert {"ks_alpha", "ks_beta"} <= names and "ks_hidden" not in names   # .dynsym only
    assert ElfFile.open(full).build_id() == ElfFile.open(stripped).build_id()


def test_not_elf(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"hello world, not an elf file at all" * 4)
    with pytest.raises(ValueError):
        load_elf_symbols(p)


def test_live_addresses_in_this_process(libs):
    full, stripped = libs
    lib = ctypes.CDLL(str(full))
    slib = ctypes.CDLL(str(stripped))
    s = Symbolizer()
    pid = os.getpid()
    for fn, name in ((lib.ks_alpha, "ks_alpha"), (lib.ks_beta, "ks_beta"),
                     (slib.ks_beta, "ks_beta")):
        addr = ctypes.cast(fn, ctypes.c_void_p).value
        assert s.user(pid, addr + 2) == name
        assert s.user(pid, addr + 2, offset=True) == f"{name}+0x2"
    addr = ctypes.cast(lib.ks_beta, ctypes.c_void_p).value
    assert s.user(pid, addr, module=True) == "ks_beta (libksfull.so)"
    # libc, found through the real maps of this process
    libc = ctypes.CDLL(None)
    addr = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    assert "getpid" in s.user(pid, addr)
    assert s.user(pid, 8) == UNKNOWN
