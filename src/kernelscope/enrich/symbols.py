"""Addresses -> function names: the kernel's from /proc/kallsyms, a process's from the ELF
symbol tables (.symtab, .dynsym, MiniDebugInfo .gnu_debugdata, build-id debug files) of
the files it maps (/proc/PID/maps). No third-party ELF library: a small ELF64 reader.

    syms = Symbolizer()
    syms.kernel(0xffffffff81234567)     -> "do_nanosleep"
    syms.user(pid, 0x7f12...)           -> "__GI___clock_nanosleep" (or "[unknown]")
"""

from __future__ import annotations

import bisect
import lzma
import os
import struct
from dataclasses import dataclass
from pathlib import Path

UNKNOWN = "[unknown]"

# ELF constants
PT_LOAD = 1
SHT_SYMTAB, SHT_DYNSYM, SHT_NOTE = 2, 11, 7
STT_FUNC, STT_GNU_IFUNC = 2, 10
SHN_UNDEF = 0
NT_GNU_BUILD_ID = 3
DEBUG_ROOT = Path("/usr/lib/debug")


class ElfError(ValueError):
    pass


@dataclass(frozen=True)
class Segment:
    offset: int
    vaddr: int
    filesz: int


class SymbolTable:
    """Sorted (start, end, name) ranges with lookup by address."""

    def __init__(self, entries: list[tuple[int, int, str]]):
        # one name per range: prefer unversioned, public, short names (aliases abound)
        best: dict[tuple[int, int], str] = {}
        for start, end, name in entries:
            cur = best.get((start, end))
            if cur is None or _name_rank(name) < _name_rank(cur):
                best[(start, end)] = name
        entries = sorted((s, e, n) for (s, e), n in best.items())
        self.starts = [e[0] for e in entries]
        self.ends = [e[1] for e in entries]
        self.names = [e[2] for e in entries]
        # the largest end so far: a lookup may land inside an earlier, longer symbol
        self._max_end = []
        m = 0
        for e in self.ends:
            m = max(m, e)
            self._max_end.append(m)

    def __len__(self) -> int:
        return len(self.starts)

    def lookup(self, addr: int) -> tuple[str, int] | None:
        """(name, offset) of the symbol containing addr, or None."""
        i = bisect.bisect_right(self.starts, addr) - 1
        while i >= 0 and self._max_end[i] >= addr:
            if self.starts[i] <= addr < self.ends[i] or (
                    self.starts[i] == addr == self.ends[i]):
                return self.names[i], addr - self.starts[i]
            i -= 1
        return None


def _name_rank(name: str) -> tuple:
    return ("@" in name, name.startswith("_"), len(name), name)


class ElfFile:
    """Function symbols and loadable segments of one ELF64 file (either byte order)."""

    def __init__(self, data: bytes, path: str = "<bytes>"):
        self.path = path
        if data[:4] != b"\x7fELF":
            raise ElfError(f"{path}: not an ELF file")
        if data[4] != 2:
            raise ElfError(f"{path}: only 64-bit ELF files are supported")
        self.e = "<" if data[5] == 1 else ">"
        self.data = data
        (self.type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize,
         phnum, shentsize, shnum, shstrndx) = struct.unpack_from(self.e + "HHIQQQIHHHHHH", data, 16)
        self.segments: list[Segment] = []
        for i in range(phnum):
            p_type, _pf, p_offset, p_vaddr, _paddr, p_filesz, _memsz, _align = struct.unpack_from(
                self.e + "IIQQQQQQ", data, phoff + i * phentsize)
            if p_type == PT_LOAD:
                self.segments.append(Segment(p_offset, p_vaddr, p_filesz))
        self.sections = []
        for i in range(shnum):
            self.sections.append(struct.unpack_from(self.e + "IIQQQQIIQQ", data,
                                                    shoff + i * shentsize))
        self._shstr = self.sections[shstrndx] if shnum and shstrndx < shnum else None

    @classmethod
    def open(cls, path: str | os.PathLike) -> "ElfFile":
        with open(path, "rb") as f:
            return cls(f.read(), str(path))

    def section_name(self, sh) -> str:
        if not self._shstr:
            return ""
        return _cstr(self.data, self._shstr[4] + sh[0])

    def section(self, name: str):
        for sh in self.sections:
            if self.section_name(sh) == name:
                return sh
        return None

    def section_bytes(self, sh) -> bytes:
        return self.data[sh[4]:sh[4] + sh[5]]

    def symbols(self) -> list[tuple[int, int, str]]:
        """(start, end, name) of every defined function symbol in .symtab and .dynsym."""
        out = []
        for sh in self.sections:
            sh_type, offset, size, link, entsize = sh[1], sh[4], sh[5], sh[6], sh[9]
            if sh_type not in (SHT_SYMTAB, SHT_DYNSYM) or not entsize or link >= len(self.sections):
                continue
            stroff = self.sections[link][4]
            for pos in range(offset, offset + size - entsize + 1, entsize):
                st_name, st_info, _other, st_shndx, st_value, st_size = struct.unpack_from(
                    self.e + "IBBHQQ", self.data, pos)
                if st_shndx == SHN_UNDEF or not st_value or (st_info & 0xf) not in (
                        STT_FUNC, STT_GNU_IFUNC):
                    continue
                name = _cstr(self.data, stroff + st_name)
                if name:
                    out.append((st_value, st_value + st_size, name))
        return out

    def minidebuginfo(self) -> "ElfFile | None":
        """The xz-compressed ELF in .gnu_debugdata (Fedora's MiniDebugInfo), if any."""
        sh = self.section(".gnu_debugdata")
        if sh is None:
            return None
        try:
            return ElfFile(lzma.decompress(self.section_bytes(sh)), self.path + "[debugdata]")
        except (lzma.LZMAError, ElfError, struct.error):
            return None

    def build_id(self) -> str | None:
        for sh in self.sections:
            if sh[1] != SHT_NOTE:
                continue
            data, pos = self.section_bytes(sh), 0
            while pos + 12 <= len(data):
                namesz, descsz, ntype = struct.unpack_from(self.e + "III", data, pos)
                name_at = pos + 12
                desc_at = name_at + _align4(namesz)
                if ntype == NT_GNU_BUILD_ID and data[name_at:name_at + namesz] == b"GNU\0":
                    return data[desc_at:desc_at + descsz].hex()
                pos = desc_at + _align4(descsz)
        return None

    def offset_to_vaddr(self, file_offset: int) -> int | None:
        """The link-time address of a file offset (through the PT_LOAD segments)."""
        for s in self.segments:
            if s.offset <= file_offset < s.offset + max(s.filesz, 1):
                return file_offset - s.offset + s.vaddr
        return None


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _cstr(data: bytes, off: int) -> str:
    end = data.find(b"\0", off)
    return data[off:end if end >= 0 else len(data)].decode("utf-8", errors="replace")


def load_elf_symbols(path: str | os.PathLike, debug_root: Path = DEBUG_ROOT) -> tuple[ElfFile, SymbolTable]:
    """The file's function symbols, with MiniDebugInfo and a build-id debug file merged in."""
    elf = ElfFile.open(path)
    entries = elf.symbols()
    mini = elf.minidebuginfo()
    if mini is not None:
        entries += mini.symbols()
    bid = elf.build_id()
    if bid and len(bid) > 2:
        dbg = debug_root / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
        if dbg.exists():
            try:
                entries += ElfFile.open(dbg).symbols()
            except (OSError, ElfError, struct.error):
                pass
    return elf, SymbolTable(entries)


# -- kernel -------------------------------------------------------------------------

def parse_kallsyms(text: str) -> SymbolTable:
    """/proc/kallsyms text -> table of text symbols (each ends where the next begins)."""
    addrs, names = [], []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] not in "tTwW":
            continue
        addr = int(parts[0], 16)
        if not addr:
            continue
        name = parts[2] if len(parts) == 3 else f"{parts[2]} {parts[3]}"
        addrs.append(addr)
        names.append(name)
    order = sorted(range(len(addrs)), key=lambda i: addrs[i])
    entries = []
    for j, i in enumerate(order):
        end = addrs[order[j + 1]] if j + 1 < len(order) else addrs[i] + 4096
        entries.append((addrs[i], max(end, addrs[i] + 1), names[i]))
    return SymbolTable(entries)


# -- processes ------------------------------------------------------------------------

@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int
    path: str
    inode: int


def parse_maps(text: str) -> list[Mapping]:
    """/proc/PID/maps -> executable mappings, sorted by start."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5 or "x" not in parts[1]:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        path = parts[5].strip() if len(parts) == 6 else ""
        out.append(Mapping(start, end, int(parts[2], 16), path, int(parts[4])))
    out.sort(key=lambda m: m.start)
    return out


class ProcessSymbols:
    """One process's executable mappings, resolved through a shared cache of ELF files."""

    def __init__(self, pid: int, files: "dict[tuple, tuple]", maps_text: str | None = None):
        self.pid = pid
        self._files = files
        if maps_text is None:
            try:
                maps_text = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                maps_text = ""
        self.maps = parse_maps(maps_text)
        self._starts = [m.start for m in self.maps]

    def mapping(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.maps[i].end:
            return self.maps[i]
        return None

    def _elf(self, m: Mapping):
        key = (m.path, m.inode)
        if key not in self._files:
            self._files[key] = None
            for candidate in (f"/proc/{self.pid}/map_files/{m.start:x}-{m.end:x}",
                              f"/proc/{self.pid}/root{m.path}", m.path):
                try:
                    self._files[key] = load_elf_symbols(candidate)
                    break
                except (OSError, ElfError, struct.error, IndexError):
                    continue
        return self._files[key]

    def lookup(self, addr: int) -> tuple[str, int, str] | None:
        """(symbol, offset, file) or None; symbol is UNKNOWN when the file has none."""
        m = self.mapping(addr)
        if m is None:
            return None
        if not m.path.startswith("/"):
            return UNKNOWN, 0, m.path or "[anon]"
        loaded = self._elf(m)
        if loaded is None:
            return UNKNOWN, 0, m.path
        elf, table = loaded
        file_off = addr - m.start + m.offset
        vaddr = elf.offset_to_vaddr(file_off)
        if vaddr is None:
            return UNKNOWN, 0, m.path
        hit = table.lookup(vaddr)
        if hit is None:
            return UNKNOWN, 0, m.path
        return hit[0], hit[1], m.path


class Symbolizer:
    """Caches kallsyms, processes and ELF files for a report."""

    def __init__(self, kallsyms_text: str | None = None):
        self._kallsyms_text = kallsyms_text
        self._kernel: SymbolTable | None = None
        self._procs: dict[int, ProcessSymbols] = {}
        self._files: dict[tuple, tuple] = {}

    def kernel_table(self) -> SymbolTable:
        if self._kernel is None:
            text = self._kallsyms_text
            if text is None:
                try:
                    text = Path("/proc/kallsyms").read_text()
                except OSError:
                    text = ""
            self._kernel = parse_kallsyms(text)
        return self._kernel

    def kernel(self, addr: int, offset: bool = False) -> str:
        hit = self.kernel_table().lookup(addr)
        if hit is None:
            return UNKNOWN
        return f"{hit[0]}+{hit[1]:#x}" if offset else hit[0]

    def process(self, pid: int) -> ProcessSymbols:
        if pid not in self._procs:
            self._procs[pid] = ProcessSymbols(pid, self._files)
        return self._procs[pid]

    def user(self, pid: int, addr: int, offset: bool = False, module: bool = False) -> str:
        hit = self.process(pid).lookup(addr)
        if hit is None:
            return UNKNOWN
        name, off, path = hit
        if name == UNKNOWN:
            return f"[unknown] ({os.path.basename(path)})" if module and path else UNKNOWN
        text = f"{name}+{off:#x}" if offset else name
        return f"{text} ({os.path.basename(path)})" if module else text
