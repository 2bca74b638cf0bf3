"""Struct layouts and field meanings read from BTF: C is the only place a layout is written.

`Btf(raw).dtype("proc_exec_event")` gives a numpy structured dtype with every
offset, padding byte, fixed array, nested struct and union that clang laid out;
`Btf.meanings(...)` gives the semantic typedef (ks_errno_t, ks_boot_ns_t, ...)
behind each field, so generic code can enrich and format it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from kernelscope.btf.parser import BtfError, BtfType, parse

__all__ = ["Btf", "BtfError", "vmlinux_enum"]

_MODIFIERS = ("typedef", "const", "volatile", "restrict", "type_tag")


class Btf:
    def __init__(self, raw: bytes):
        self.types: list[BtfType] = parse(raw)
        self._by_name: dict[tuple[str, str], int] = {}
        for t in self.types:
            if t.name:
                self._by_name.setdefault((t.kind, t.name), t.id)
        self._dtypes: dict[int, np.dtype] = {}

    # -- lookup --------------------------------------------------------------
    def find(self, name: str, kinds=("struct", "union", "typedef", "enum", "enum64")) -> BtfType:
        for k in kinds:
            tid = self._by_name.get((k, name))
            if tid is not None:
                return self.types[tid]
        raise BtfError(f"type {name!r} is not in BTF")

    def has(self, name: str) -> bool:
        try:
            self.find(name)
            return True
        except BtfError:
            return False

    def resolve(self, tid: int) -> BtfType:
        t = self.types[tid]
        while t.kind in _MODIFIERS:
            t = self.types[t.type]
        return t

    def typedef_chain(self, tid: int) -> list[str]:
        names = []
        t = self.types[tid]
        while t.kind in _MODIFIERS:
            if t.kind == "typedef":
                names.append(t.name)
            t = self.types[t.type]
        return names

    def enum(self, name: str) -> dict[str, int]:
        return dict(self.find(name, ("enum", "enum64")).values)

    # -- layouts -------------------------------------------------------------
    def dtype(self, name_or_id) -> np.dtype:
        tid = name_or_id if isinstance(name_or_id, int) else self.find(name_or_id).id
        if tid not in self._dtypes:
            self._dtypes[tid] = self._dtype(tid)
        return self._dtypes[tid]

    def _dtype(self, tid: int) -> np.dtype:
        t = self.resolve(tid)
        k = t.kind
        if k == "int":
            if t.encoding & 4:
                return np.dtype("?")
            signed = bool(t.encoding & 1)
            if t.size > 8:
                return np.dtype(f"V{t.size}")
            return np.dtype(f"<{'i' if signed else 'u'}{t.size}")
        if k in ("enum", "enum64"):
            return np.dtype(f"<{'i' if t.signed else 'u'}{t.size or 4}")
        if k == "float":
            return np.dtype(f"<f{t.size}")
        if k == "ptr":
            return np.dtype("<u8")
        if k == "array":
            elem = self.resolve(t.elem_type)
            if elem.kind == "int" and elem.size == 1 and (elem.encoding & 2 or elem.name == "char"):
                return np.dtype(f"S{t.nelems}") if t.nelems else np.dtype("V0")
            inner = self.dtype(t.elem_type)
            if t.nelems == 0:
                return np.dtype("V0")
            return np.dtype((inner, (t.nelems,)))
        if k in ("struct", "union"):
            names, formats, offsets = [], [], []
            for name, mtid, off in self._flat_members(t, 0):
                names.append(name)
                formats.append(self.dtype(mtid))
                offsets.append(off)
            return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                             "itemsize": t.size})
        if k == "void":
            return np.dtype("V0")
        raise BtfError(f"no layout for BTF kind {k} ({t.name})")

    def _flat_members(self, t: BtfType, base: int):
        """(name, type id, byte offset); anonymous members flattened as C does."""
        for m in t.members:
            if m.bitfield_size:
                continue  # bitfields are read with bitfield(); no byte layout of their own
            if m.bit_offset % 8:
                continue
            off = base + m.bit_offset // 8
            mt = self.resolve(m.type)
            if not m.name and mt.kind in ("struct", "union"):
                yield from self._flat_members(mt, off)
                continue
            if mt.kind == "array" and mt.nelems == 0:
                continue  # flexible array member
            yield m.name, m.type, off

    def meanings(self, struct_name: str) -> dict[str, str]:
        """field -> semantic typedef (the first `ks_*` typedef on its type chain)."""
        t = self.resolve(self.find(struct_name).id)
        out = {}
        for name, mtid, _off in self._flat_members(t, 0):
            for td in self.typedef_chain(mtid):
                if td.startswith("ks_"):
                    out[name] = td
                    break
        return out

    def map_types(self, map_name: str) -> tuple[int | None, int | None]:
        """(key type id, value type id) of a map declared with __type(key/value, ...)
        in SEC(".maps"); None for a side that is not declared that way."""
        for t in self.types:
            if t.kind != "datasec" or t.name != ".maps":
                continue
            for vtid, _off, _size in t.members:
                var = self.types[vtid]
                if var.name != map_name:
                    continue
                out = {"key": None, "value": None}
                for m in self.resolve(var.type).members:
                    ptr = self.resolve(m.type)
                    if m.name in out and ptr.kind == "ptr":
                        out[m.name] = ptr.type
                return out["key"], out["value"]
        return None, None

    def find_var(self, name: str):
        """(datasec name, offset, dtype) of a global variable."""
        for t in self.types:
            if t.kind != "datasec":
                continue
            for vtid, off, _size in t.members:
                v = self.types[vtid]
                if v.kind == "var" and v.name == name:
                    return t.name, off, self.dtype(v.type)
        return None


@lru_cache(maxsize=64)
def vmlinux_enum(name: str) -> dict[str, int]:
    """An enum of the running kernel (e.g. skb_drop_reason), read from its BTF.

    libbpf parses the kernel's BTF in C and finds the one enum (about 50 ms); parsing
    every vmlinux type in Python would take most of a second and ~80 MB."""
    import ctypes
    import struct as _struct
    from kernelscope.libbpf._lib import lib
    btf = lib.btf__load_vmlinux_btf()
    if not btf:
        raise BtfError("cannot load the kernel's BTF (/sys/kernel/btf/vmlinux)")
    try:
        for kind, entry in ((6, 8), (19, 12)):          # BTF_KIND_ENUM, BTF_KIND_ENUM64
            tid = lib.btf__find_by_name_kind(btf, name.encode(), kind)
            if tid <= 0:
                continue
            t = lib.btf__type_by_id(btf, tid)
            _name_off, info, _size = _struct.unpack("<III", ctypes.string_at(t, 12))
            vlen, signed = info & 0xFFFF, bool(info >> 31)
            raw = ctypes.string_at(t + 12, vlen * entry)
            out = {}
            for i in range(vlen):
                if kind == 6:
                    noff, val = _struct.unpack_from("<Ii" if signed else "<II", raw, i * 8)
                else:
                    noff, lo, hi = _struct.unpack_from("<III", raw, i * 12)
                    val = (hi << 32) | lo
                out[lib.btf__name_by_offset(btf, noff).decode()] = val
            return out
    finally:
        lib.btf__free(btf)
    raise BtfError(f"type {name!r} is not in BTF")
