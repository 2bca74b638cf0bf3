"""ctypes declarations for the system libbpf.so.1 (1.1 API subset) and libc.

Only functions present in libbpf 1.1 are declared; everything else in the
package goes through the wrappers in this folder, never through ctypes directly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import os
import threading

from kernelscope.errors import KernelscopeError

c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_uint = ctypes.c_uint
c_bool = ctypes.c_bool
c_size_t = ctypes.c_size_t
c_u32 = ctypes.c_uint32
c_u64 = ctypes.c_uint64


class LibbpfError(KernelscopeError):
    """A libbpf call failed: carries libbpf's last message and the errno name."""

    def __init__(self, what: str, err: int, message: str = ""):
        self.errno = abs(err)
        self.errno_name = _errno.errorcode.get(self.errno, f"E{self.errno}")
        self.libbpf_message = message.strip()
        text = f"{what}: {self.errno_name} ({os.strerror(self.errno)})"
        if self.libbpf_message:
            text += f": {self.libbpf_message}"
        super().__init__(text)


def _load():
    for name in ("libbpf.so.1", ctypes.util.find_library("bpf")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
    raise KernelscopeError("libbpf.so.1 not found: install the libbpf1 package")


lib = _load()
libc = ctypes.CDLL(None, use_errno=True)

_PROTOS = {
    # object
    "bpf_object__open_file": (c_void_p, [c_char_p, c_void_p]),
    "bpf_object__load": (c_int, [c_void_p]),
    "bpf_object__close": (None, [c_void_p]),
    "bpf_object__next_program": (c_void_p, [c_void_p, c_void_p]),
    "bpf_object__next_map": (c_void_p, [c_void_p, c_void_p]),
    "bpf_object__find_program_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_object__find_map_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_object__btf": (c_void_p, [c_void_p]),
    "btf__raw_data": (c_void_p, [c_void_p, ctypes.POINTER(c_u32)]),
    "btf__load_vmlinux_btf": (c_void_p, []),
    "btf__free": (None, [c_void_p]),
    "btf__find_by_name_kind": (ctypes.c_int32, [c_void_p, c_char_p, c_u32]),
    "btf__type_by_id": (c_void_p, [c_void_p, c_u32]),
    "btf__name_by_offset": (c_char_p, [c_void_p, c_u32]),
    # program
    "bpf_program__name": (c_char_p, [c_void_p]),
    "bpf_program__section_name": (c_char_p, [c_void_p]),
    "bpf_program__set_autoload": (c_int, [c_void_p, c_bool]),
    "bpf_program__autoload": (c_bool, [c_void_p]),
    "bpf_program__fd": (c_int, [c_void_p]),
    "bpf_program__type": (c_int, [c_void_p]),
    "bpf_program__attach": (c_void_p, [c_void_p]),
    "bpf_program__attach_tracepoint": (c_void_p, [c_void_p, c_char_p, c_char_p]),
    "bpf_program__attach_raw_tracepoint": (c_void_p, [c_void_p, c_char_p]),
    "bpf_program__attach_perf_event": (c_void_p, [c_void_p, c_int]),
    "bpf_program__attach_uprobe_opts": (c_void_p, [c_void_p, c_int, c_char_p, c_size_t, c_void_p]),
    "bpf_program__attach_trace": (c_void_p, [c_void_p]),
    "bpf_program__attach_kprobe": (c_void_p, [c_void_p, c_bool, c_char_p]),
    "bpf_prog_test_run_opts": (c_int, [c_int, c_void_p]),
    # link
    "bpf_link__destroy": (c_int, [c_void_p]),
    "bpf_link__fd": (c_int, [c_void_p]),
    # map object
    "bpf_map__fd": (c_int, [c_void_p]),
    "bpf_map__name": (c_char_p, [c_void_p]),
    "bpf_map__type": (c_int, [c_void_p]),
    "bpf_map__key_size": (c_u32, [c_void_p]),
    "bpf_map__value_size": (c_u32, [c_void_p]),
    "bpf_map__max_entries": (c_u32, [c_void_p]),
    "bpf_map__set_max_entries": (c_int, [c_void_p, c_u32]),
    "bpf_map__initial_value": (c_void_p, [c_void_p, ctypes.POINTER(c_size_t)]),
    # map fd ops
    "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_u64]),
    "bpf_map_delete_elem": (c_int, [c_int, c_void_p]),
    "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_lookup_batch": (c_int, [c_int, c_void_p, c_void_p, c_void_p, c_void_p,
                                     ctypes.POINTER(c_u32), c_void_p]),
    "bpf_map_lookup_and_delete_batch": (c_int, [c_int, c_void_p, c_void_p, c_void_p, c_void_p,
                                                ctypes.POINTER(c_u32), c_void_p]),
    # ring buffer (callback path; the fast reader maps the ring itself)
    "ring_buffer__new": (c_void_p, [c_int, c_void_p, c_void_p, c_void_p]),
    "ring_buffer__poll": (c_int, [c_void_p, c_int]),
    "ring_buffer__consume": (c_int, [c_void_p]),
    "ring_buffer__free": (None, [c_void_p]),
    # misc
    "libbpf_num_possible_cpus": (c_int, []),
    "libbpf_set_print": (c_void_p, [c_void_p]),
    "libbpf_probe_bpf_map_type": (c_int, [c_int, c_void_p]),
    "libbpf_probe_bpf_prog_type": (c_int, [c_int, c_void_p]),
    "libbpf_major_version": (c_u32, []),
    "libbpf_minor_version": (c_u32, []),
}

for _name, (_res, _args) in _PROTOS.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args

libc.vsnprintf.restype = c_int
libc.vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]
libc.syscall.restype = ctypes.c_long


# ---- libbpf's messages: captured per thread so errors can carry them --------

PRINT_FN = ctypes.CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
_tls = threading.local()
_verbose = os.environ.get("KERNELSCOPE_LIBBPF_DEBUG") == "1"


def _print_cb(level, fmt, args):
    buf = ctypes.create_string_buffer(1024)
    libc.vsnprintf(buf, len(buf), fmt, args)
    text = buf.value.decode(errors="replace")
    log = getattr(_tls, "log", None)
    if log is None:
        log = _tls.log = []
    log.append(text)
    del log[:-64]
    if _verbose:
        import sys
        sys.stderr.write(text)
    return 0


_print_ref = PRINT_FN(_print_cb)
lib.libbpf_set_print(ctypes.cast(_print_ref, c_void_p))


def take_messages() -> list[str]:
    log = getattr(_tls, "log", None) or []
    _tls.log = []
    return log


def last_message() -> str:
    """The most telling line libbpf printed since the last call."""
    lines = [ln.strip() for ln in take_messages() if ln.strip()]
    # the verifier log is long; its last lines say why
    for ln in reversed(lines):
        if "failed" in ln or "error" in ln.lower() or "invalid" in ln.lower():
            return ln
    return lines[-1] if lines else ""


def check_ptr(ptr, what: str):
    """libbpf 1.x returns NULL and sets errno on failure."""
    if not ptr:
        err = ctypes.get_errno() or _errno.EINVAL
        raise LibbpfError(what, err, last_message())
    return ptr


def check_int(ret: int, what: str) -> int:
    if ret < 0:
        err = -ret if ret != -1 else (ctypes.get_errno() or _errno.EINVAL)
        raise LibbpfError(what, err, last_message())
    return ret


def version() -> str:
    return f"{lib.libbpf_major_version()}.{lib.libbpf_minor_version()}"
