"""What this kernel and process offer: privileges, tracefs, BTF, hook mechanisms."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from kernelscope.errors import KernelscopeError, PrivilegeError

TRACEFS = Path("/sys/kernel/tracing")
BTF_PATH = Path("/sys/kernel/btf/vmlinux")
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39

# Preference among mechanisms that can serve the same hook (first wins).
MECHANISM_ORDER = ["fentry", "kprobe", "tp_btf", "raw_tp", "tracepoint", "uprobe",
                   "perf_event", "iter", "lsm", "tc", "xdp", "sockops", "cgroup_skb", "socket"]


def capabilities() -> set[int]:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            mask = int(line.split()[1], 16)
            return {i for i in range(64) if mask >> i & 1}
    return set()


def privileges() -> dict:
    caps = capabilities()
    root = os.geteuid() == 0
    bpf_ok = root or CAP_SYS_ADMIN in caps or (CAP_BPF in caps and CAP_PERFMON in caps)
    return {"euid": os.geteuid(), "root": root, "cap_bpf": CAP_BPF in caps,
            "cap_perfmon": CAP_PERFMON in caps, "cap_sys_admin": CAP_SYS_ADMIN in caps,
            "sufficient": bpf_ok}


def require_privileges() -> None:
    if not privileges()["sufficient"]:
        raise PrivilegeError("root is needed, or CAP_BPF and CAP_PERFMON "
                             "(plus CAP_SYS_ADMIN for some hooks): run it with sudo")


def ensure_tracefs() -> Path:
    """Mount tracefs at /sys/kernel/tracing when it is missing (libbpf needs it)."""
    if (TRACEFS / "events").is_dir():
        return TRACEFS
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 4 + [ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(b"nodev", str(TRACEFS).encode(), b"tracefs", None, 0, None) != 0:
        err = ctypes.get_errno()
        raise KernelscopeError(f"tracefs is not mounted and mounting it at {TRACEFS} failed: "
                               f"{_errno.errorcode.get(err, err)}")
    return TRACEFS


def tracefs_mounted() -> bool:
    return (TRACEFS / "events").is_dir()


def tracepoint_exists(category: str, name: str) -> bool:
    return (TRACEFS / "events" / category / name).is_dir()


def has_btf() -> bool:
    return BTF_PATH.exists()


def bpf_syscall_works() -> tuple[bool, str]:
    """Whether bpf() can create a map here (ENOSYS: no bpf; EPERM: not allowed)."""
    from kernelscope.libbpf._lib import lib
    ret = lib.libbpf_probe_bpf_map_type(2, None)  # BPF_MAP_TYPE_ARRAY
    if ret == 1:
        return True, "ok"
    err = -ret if ret < 0 else ctypes.get_errno()
    return False, _errno.errorcode.get(err, f"error {ret}")


@dataclass
class Mechanism:
    name: str
    available: bool
    reason: str = ""


@dataclass
class Features:
    kernel: str = field(default_factory=platform.release)
    mechanisms: dict[str, Mechanism] = field(default_factory=dict)

    def available(self, mechanism: str) -> bool:
        return self.check(mechanism).available

    def check(self, mechanism: str) -> Mechanism:
        if mechanism not in self.mechanisms:
            self.mechanisms[mechanism] = _probe_mechanism(mechanism)
        return self.mechanisms[mechanism]

    def check_all(self) -> dict[str, Mechanism]:
        for m in TRIAL_MECHANISMS + list(PROG_TYPE_ONLY):
            self.check(m)
        self.check("ringbuf")
        return self.mechanisms


@lru_cache(maxsize=1)
def features() -> Features:
    return Features()


TRIAL_MECHANISMS = ["tracepoint", "raw_tp", "tp_btf", "kprobe", "fentry", "uprobe",
                    "perf_event", "iter", "lsm"]
# Network program types are probed by loading a trivial program of that type;
# attaching them needs an interface or cgroup that the probe itself provides.
PROG_TYPE_ONLY = {"socket": 1, "xdp": 6, "tc": 3, "cgroup_skb": 8, "sockops": 13}


def _libc_path() -> str:
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and "libc.so" in parts[5]:
            return parts[5]
    return "/lib/x86_64-linux-gnu/libc.so.6"


def _probe_mechanism(mech: str) -> Mechanism:
    from kernelscope.libbpf import BpfObject, LibbpfError
    from kernelscope.libbpf._lib import lib
    from kernelscope.runtime.paths import object_path

    if mech == "ringbuf":
        ok = lib.libbpf_probe_bpf_map_type(27, None) == 1
        return Mechanism(mech, ok, "" if ok else "BPF_MAP_TYPE_RINGBUF not supported (kernel < 5.8)")
    if mech in PROG_TYPE_ONLY:
        ret = lib.libbpf_probe_bpf_prog_type(PROG_TYPE_ONLY[mech], None)
        return Mechanism(mech, ret == 1, "" if ret == 1 else "program type not supported")
    if mech not in TRIAL_MECHANISMS:
        return Mechanism(mech, False, "unknown mechanism")
    if mech in ("tracepoint",):
        try:
            ensure_tracefs()
        except KernelscopeError as e:
            return Mechanism(mech, False, str(e))
    path = object_path("host_features")
    if not path.exists():
        return Mechanism(mech, False, f"{path.name} not built")
    pfds = []
    try:
        with BpfObject(path) as obj:
            for p in obj.programs.values():
                p.autoload = p.name == f"probe__{mech}"
            obj.load()
            prog = obj.programs[f"probe__{mech}"]
            if mech == "uprobe":
                prog.attach_uprobe(_libc_path(), "getppid")
            elif mech == "perf_event":
                from kernelscope.libbpf.perf import perf_event_open
                pfds.append(perf_event_open(cpu=0, frequency=49))
                prog.attach_perf_event(pfds[-1])
                pfds.clear()  # the link owns the fd now and closes it
            else:
                prog.attach()
        return Mechanism(mech, True, "attached a test program")
    except LibbpfError as e:
        return Mechanism(mech, False, str(e))
    finally:
        for fd in pfds:
            os.close(fd)
