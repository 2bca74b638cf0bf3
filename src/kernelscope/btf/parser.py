"""Parse raw BTF (from a .bpf.o or /sys/kernel/btf/vmlinux) into type records."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

KINDS = {
    0: "void", 1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum",
    7: "fwd", 8: "typedef", 9: "volatile", 10: "const", 11: "restrict", 12: "func",
    13: "func_proto", 14: "var", 15: "datasec", 16: "float", 17: "decl_tag",
    18: "type_tag", 19: "enum64",
}
MAGIC = 0xEB9F


@dataclass
class Member:
    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass
class BtfType:
    id: int
    kind: str
    name: str
    size: int = 0          # int, struct, union, enum, datasec, float
    type: int = 0          # ptr, typedef, modifiers, var, func
    encoding: int = 0      # int: 1 signed, 2 char, 4 bool
    bits: int = 0
    elem_type: int = 0     # array
    nelems: int = 0
    members: list = field(default_factory=list)       # struct/union: Member; datasec: (type, offset, size)
    values: dict = field(default_factory=dict)        # enum name -> value
    signed: bool = False   # enum
    component_idx: int = -1  # decl_tag


class BtfError(ValueError):
    pass


def parse(raw: bytes) -> list[BtfType]:
    """All types; index i is type id i (0 is void)."""
    if len(raw) < 24:
        raise BtfError("BTF too short")
    magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", raw, 0)
    if magic != MAGIC:
        raise BtfError("bad BTF magic (big-endian BTF is not supported)")
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", raw, 8)
    tbase = hdr_len + type_off
    sbase = hdr_len + str_off
    strings = raw[sbase:sbase + str_len]

    def name_at(off: int) -> str:
        end = strings.index(b"\0", off)
        return strings[off:end].decode(errors="replace")

    types = [BtfType(0, "void", "")]
    pos, end = tbase, tbase + type_len
    u32 = struct.Struct("<I").unpack_from
    while pos < end:
        name_off, info, size_or_type = struct.unpack_from("<III", raw, pos)
        pos += 12
        kind_no = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        kind = KINDS.get(kind_no)
        if kind is None:
            raise BtfError(f"unknown BTF kind {kind_no}")
        t = BtfType(len(types), kind, name_at(name_off))
        if kind in ("int",):
            t.size = size_or_type
            enc = u32(raw, pos)[0]
            pos += 4
            t.encoding = (enc >> 24) & 0xF
            t.bits = enc & 0xFF
        elif kind in ("struct", "union"):
            t.size = size_or_type
            for _ in range(vlen):
                m_name, m_type, m_off = struct.unpack_from("<III", raw, pos)
                pos += 12
                if kflag:
                    t.members.append(Member(name_at(m_name), m_type, m_off & 0xFFFFFF, m_off >> 24))
                else:
                    t.members.append(Member(name_at(m_name), m_type, m_off))
        elif kind == "array":
            t.elem_type, _idx, t.nelems = struct.unpack_from("<III", raw, pos)
            pos += 12
        elif kind == "enum":
            t.size = size_or_type
            t.signed = kflag
            for _ in range(vlen):
                e_name, e_val = struct.unpack_from("<Ii", raw, pos)
                pos += 8
                t.values[name_at(e_name)] = e_val
        elif kind == "enum64":
            t.size = size_or_type
            t.signed = kflag
            for _ in range(vlen):
                e_name, lo, hi = struct.unpack_from("<III", raw, pos)
                pos += 12
                t.values[name_at(e_name)] = (hi << 32) | lo
        elif kind == "func_proto":
            t.type = size_or_type
            pos += 8 * vlen
        elif kind == "var":
            t.type = size_or_type
            pos += 4
        elif kind == "datasec":
            t.size = size_or_type
            for _ in range(vlen):
                t.members.append(struct.unpack_from("<III", raw, pos))
                pos += 12
        elif kind == "decl_tag":
            t.type = size_or_type
            t.component_idx = struct.unpack_from("<i", raw, pos)[0]
            pos += 4
        elif kind == "float":
            t.size = size_or_type
        else:  # ptr, fwd, typedef, modifiers, func, type_tag
            t.type = size_or_type
        types.append(t)
    return types

