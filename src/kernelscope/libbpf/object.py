"""BPF objects, programs and links: open, configure, load, attach, close.

Every handle closes deterministically: BpfObject and Link are context managers
and the object closes all links it attached when it closes.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from pathlib import Path

from kernelscope.libbpf._lib import (
    LibbpfError, c_size_t, check_int, check_ptr, lib, take_messages,
)
from kernelscope.libbpf.maps import Map


class Link:
    """An attachment of a program to a hook; destroying it detaches."""

    def __init__(self, ptr: int, program: "Program", target: str):
        self._ptr = ptr
        self.program = program
        self.target = target

    @property
    def fd(self) -> int:
        return lib.bpf_link__fd(self._ptr)

    def destroy(self) -> None:
        if self._ptr:
            lib.bpf_link__destroy(self._ptr)
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()

    def __repr__(self):
        return f"<Link {self.program.name} -> {self.target}>"


class UprobeOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("ref_ctr_offset", ctypes.c_size_t),
        ("bpf_cookie", ctypes.c_uint64),
        ("retprobe", ctypes.c_bool),
        ("func_name", ctypes.c_char_p),
    ]


class TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (libbpf 1.1)."""
    _fields_ = [("sz", ctypes.c_size_t), ("data_in", ctypes.c_void_p),
                ("data_out", ctypes.c_void_p), ("data_size_in", ctypes.c_uint32),
                ("data_size_out", ctypes.c_uint32), ("ctx_in", ctypes.c_void_p),
                ("ctx_out", ctypes.c_void_p), ("ctx_size_in", ctypes.c_uint32),
                ("ctx_size_out", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("repeat", ctypes.c_int), ("duration", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
                ("batch_size", ctypes.c_uint32)]


class Program:
    def __init__(self, obj: "BpfObject", ptr: int):
        self._obj = obj
        self._ptr = ptr
        self.name = lib.bpf_program__name(ptr).decode()
        self.section = lib.bpf_program__section_name(ptr).decode()

    @property
    def autoload(self) -> bool:
        return bool(lib.bpf_program__autoload(self._ptr))

    @autoload.setter
    def autoload(self, value: bool) -> None:
        check_int(lib.bpf_program__set_autoload(self._ptr, bool(value)),
                  f"set autoload of {self.name}")

    @property
    def fd(self) -> int:
        return lib.bpf_program__fd(self._ptr)

    @property
    def mechanism(self) -> str:
        """The hook mechanism named by the section (tracepoint, raw_tp, tp_btf, ...)."""
        return section_mechanism(self.section)

    def _link(self, ptr, target: str) -> Link:
        link = Link(check_ptr(ptr, f"attach {self.name} to {target}"), self, target)
        self._obj._links.append(link)
        return link

    def attach(self) -> Link:
        """Attach where the section name says (tracepoints, raw_tp, tp_btf, kprobe, fentry)."""
        take_messages()
        return self._link(lib.bpf_program__attach(self._ptr), self.section)

    def attach_tracepoint(self, category: str, name: str) -> Link:
        take_messages()
        return self._link(lib.bpf_program__attach_tracepoint(
            self._ptr, category.encode(), name.encode()), f"tracepoint {category}:{name}")

    def attach_raw_tracepoint(self, name: str) -> Link:
        take_messages()
        return self._link(lib.bpf_program__attach_raw_tracepoint(self._ptr, name.encode()),
                          f"raw_tp {name}")

    def attach_perf_event(self, pfd: int) -> Link:
        """Attach to an open perf event; on success the link owns (and closes) pfd."""
        take_messages()
        return self._link(lib.bpf_program__attach_perf_event(self._ptr, pfd), f"perf_event fd {pfd}")

    def attach_uprobe(self, binary: str, symbol: str | None = None, offset: int = 0,
                      pid: int = -1, retprobe: bool = False) -> Link:
        """Attach to a function by symbol (libbpf resolves it) or by file offset."""
        opts = UprobeOpts(sz=ctypes.sizeof(UprobeOpts), retprobe=retprobe,
                          func_name=symbol.encode() if symbol else None)
        take_messages()
        target = f"{'uretprobe' if retprobe else 'uprobe'} {binary}:{symbol or hex(offset)}"
        return self._link(lib.bpf_program__attach_uprobe_opts(
            self._ptr, pid, str(binary).encode(), offset, ctypes.byref(opts)), target)

    def attach_kprobe(self, function: str, retprobe: bool = False) -> Link:
        take_messages()
        return self._link(lib.bpf_program__attach_kprobe(self._ptr, retprobe, function.encode()),
                          f"kprobe {function}")

    def test_run(self) -> int:
        """Run a loaded program once, now, on this CPU (BPF_PROG_TEST_RUN): for
        on-demand programs such as a bare SEC("raw_tp"). Returns its return value."""
        opts = TestRunOpts(sz=ctypes.sizeof(TestRunOpts))
        take_messages()
        check_int(lib.bpf_prog_test_run_opts(self.fd, ctypes.byref(opts)), f"run {self.name}")
        return opts.retval

    def attach_trace(self) -> Link:
        """fentry/fexit/tp_btf by the BTF target named in the section."""
        take_messages()
        return self._link(lib.bpf_program__attach_trace(self._ptr), self.section)

    def __repr__(self):
        return f"<Program {self.name} sec={self.section}>"


_SECTION_MECHANISMS = [
    ("tp_btf/", "tp_btf"), ("raw_tp/", "raw_tp"), ("raw_tracepoint/", "raw_tp"),
    ("tp/", "tracepoint"), ("tracepoint/", "tracepoint"),
    ("kprobe/", "kprobe"), ("kretprobe/", "kprobe"), ("fentry/", "fentry"), ("fexit/", "fentry"),
    ("uprobe", "uprobe"), ("uretprobe", "uprobe"), ("perf_event", "perf_event"),
    ("iter/", "iter"), ("tc", "tc"), ("xdp", "xdp"), ("sockops", "sockops"),
    ("cgroup_skb/", "cgroup_skb"), ("socket", "socket"), ("lsm/", "lsm"),
]


def section_mechanism(section: str) -> str:
    for prefix, mech in _SECTION_MECHANISMS:
        if section.startswith(prefix):
            return mech
    return section.split("/", 1)[0]


class BpfObject:
    """An opened .bpf.o; configure (cfg_ globals, autoload, map sizes), load, attach."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise LibbpfError(f"open {self.path}", _errno.ENOENT)
        take_messages()
        self._ptr = check_ptr(lib.bpf_object__open_file(str(self.path).encode(), None),
                              f"open {self.path.name}")
        self._links: list[Link] = []
        self._loaded = False
        self.programs: dict[str, Program] = {}
        prog = lib.bpf_object__next_program(self._ptr, None)
        while prog:
            p = Program(self, prog)
            self.programs[p.name] = p
            prog = lib.bpf_object__next_program(self._ptr, prog)
        self.maps: dict[str, Map] = {}
        m = lib.bpf_object__next_map(self._ptr, None)
        while m:
            mp = Map(m)
            self.maps[mp.name] = mp
            m = lib.bpf_object__next_map(self._ptr, m)
        self._btf = None

    # -- BTF and configuration before load ------------------------------------
    @property
    def btf(self):
        """The object's BTF, parsed (kernelscope.btf.Btf)."""
        if self._btf is None:
            from kernelscope.btf import Btf
            size = ctypes.c_uint32()
            btf = lib.bpf_object__btf(self._ptr)
            if not btf:
                raise LibbpfError(f"{self.path.name} has no BTF", _errno.ENOENT)
            raw = lib.btf__raw_data(btf, ctypes.byref(size))
            self._btf = Btf(ctypes.string_at(raw, size.value))
        return self._btf

    def set_config(self, **values) -> None:
        """Set `const volatile cfg_*` globals by name (before load)."""
        if self._loaded:
            raise LibbpfError("set_config after load", _errno.EBUSY)
        for name, value in values.items():
            if not name.startswith("cfg_"):
                name = "cfg_" + name
            var = self.btf.find_var(name)
            if var is None:
                raise LibbpfError(f"{self.path.name} has no global {name}", _errno.ENOENT)
            section, offset, dtype = var
            mp = self._section_map(section)
            size = c_size_t()
            ptr = check_ptr(lib.bpf_map__initial_value(mp._ptr, ctypes.byref(size)),
                            f"initial value of {section}")
            import numpy as np
            if dtype.subdtype is not None:   # an array global: fill it element-wise
                arr = np.asarray(value, dtype=dtype.base).reshape(dtype.shape)
            else:
                arr = np.asarray(value, dtype=dtype)
            raw = arr.tobytes()
            if offset + len(raw) > size.value:
                raise LibbpfError(f"{name} outside {section}", _errno.ERANGE)
            ctypes.memmove(ptr + offset, raw, len(raw))

    def _section_map(self, section: str) -> Map:
        for mp in self.maps.values():
            # libbpf names internal maps "<obj prefix>.rodata" and the like
            if mp.name.endswith(section):
                return mp
        raise LibbpfError(f"no map for section {section}", _errno.ENOENT)

    def load(self) -> None:
        take_messages()
        check_int(lib.bpf_object__load(self._ptr), f"load {self.path.name}")
        self._loaded = True

    @property
    def loaded(self) -> bool:
        return self._loaded

    def links(self) -> list[Link]:
        return list(self._links)

    def detach_all(self) -> None:
        while self._links:
            self._links.pop().destroy()

    def close(self) -> None:
        if self._ptr:
            self.detach_all()
            for mp in self.maps.values():
                mp._invalidate()
            lib.bpf_object__close(self._ptr)
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # a safety net only: callers close explicitly or use `with`
        try:
            self.close()
        except Exception:
            pass
