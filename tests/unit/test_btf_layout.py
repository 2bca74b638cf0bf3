"""BTF parsing and layouts on hand-built BTF blobs (no kernel, no root)."""

from __future__ import annotations

import struct

import numpy as np

from kernelscope.btf import Btf


class BtfBuilder:
    def __init__(self):
        self.types = []
        self.strings = b"\0"

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def add(self, raw: bytes) -> int:
        self.types.append(raw)
        return len(self.types)

    def int_(self, name, size, signed=False):
        return self.add(struct.pack("<III", self.s(name), 1 << 24, size)
                        + struct.pack("<I", (1 if signed else 0) << 24 | size * 8))

    def typedef(self, name, tid):
        return self.add(struct.pack("<III", self.s(name), 8 << 24, tid))

    def array(self, elem, n, idx):
        return self.add(struct.pack("<III", 0, 3 << 24, 0) + struct.pack("<III", elem, idx, n))

    def struct_(self, name, size, members, union=False):
        kind = 5 if union else 4
        raw = struct.pack("<III", self.s(name), kind << 24 | len(members), size)
        for mname, tid, bitoff in members:
            raw += struct.pack("<III", self.s(mname), tid, bitoff)
        return self.add(raw)

    def blob(self) -> bytes:
        types = b"".join(self.types)
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(self.strings))
        return hdr + types + self.strings


def build():
    b = BtfBuilder()
    u8 = b.int_("unsigned char", 1)
    char = b.add(struct.pack("<III", b.s("char"), 1 << 24, 1) + struct.pack("<I", 2 << 24 | 8))
    u16 = b.int_("unsigned short", 2)
    s32 = b.int_("int", 4, signed=True)
    u64 = b.int_("unsigned long long", 8)
    errno_t = b.typedef("ks_retval_t", s32)
    arr3 = b.array(u16, 3, s32)
    name8 = b.array(char, 8, s32)
    inner = b.struct_("inner", 16, [("a", u8, 0), ("b", u64, 64)])
    un = b.struct_("", 8, [("x", u64, 0), ("y", s32, 0)], union=True)
    b.struct_("ev", 56, [("tag", u8, 0), ("v", u64, 64), ("arr", arr3, 128), ("ret", errno_t, 192),
                         ("in", inner, 256), ("", un, 384), ("name", name8, 384)])
    return Btf(b.blob())


def test_layout_offsets_padding_nested_union():
    btf = build()
    dt = btf.dtype("ev")
    assert dt.itemsize == 56
    assert dt.fields["v"][1] == 8
    assert dt.fields["arr"][0].shape == (3,) and dt.fields["arr"][1] == 16
    assert dt.fields["in"][1] == 32 and dt.fields["in"][0].fields["b"][1] == 8
    # anonymous union members are flattened into the parent, at the same offset
    assert dt.fields["x"][1] == dt.fields["y"][1] == 48
    assert dt.fields["name"][0] == np.dtype("S8")
    assert btf.meanings("ev") == {"ret": "ks_retval_t"}


def test_decode_values_through_layout():
    btf = build()
    dt = btf.dtype("ev")
    raw = bytearray(56)
    struct.pack_into("<B", raw, 0, 9)
    struct.pack_into("<Q", raw, 8, 123456789)
    struct.pack_into("<3H", raw, 16, 1, 2, 3)
    struct.pack_into("<i", raw, 24, -13)
    struct.pack_into("<BxxxxxxxQ", raw, 32, 5, 77)
    struct.pack_into("<Q", raw, 48, 0xAABBCCDD11223344)
    rec = np.frombuffer(bytes(raw), dtype=dt)[0]
    assert rec["tag"] == 9 and rec["v"] == 123456789
    assert rec["arr"].tolist() == [1, 2, 3] and rec["ret"] == -13
    assert rec["in"]["a"] == 5 and rec["in"]["b"] == 77
    assert rec["x"] == 0xAABBCCDD11223344 and rec["y"] == 0x11223344
