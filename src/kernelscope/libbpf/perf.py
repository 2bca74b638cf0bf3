"""perf_event_open for BPF perf_event programs (CPU sampling, software clocks)."""

from __future__ import annotations

import ctypes
import os

from kernelscope.libbpf._lib import LibbpfError, libc

NR_PERF_EVENT_OPEN = 298  # x86_64
PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE = 0, 1
PERF_COUNT_HW_CPU_CYCLES = 0
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_FLAG_FD_CLOEXEC = 1 << 3
_FREQ = 1 << 10  # attr.freq bit in the flags word


class PerfEventAttr(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period_or_freq", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("reserved", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32),
        ("reserved2", ctypes.c_uint32),
        ("sig_data", ctypes.c_uint64),
    ]


def perf_event_open(cpu: int, frequency: int = 99, pid: int = -1,
                    type_: int = PERF_TYPE_SOFTWARE, config: int = PERF_COUNT_SW_CPU_CLOCK) -> int:
    """Open a sampling event on one CPU (all processes when pid is -1)."""
    attr = PerfEventAttr(type=type_, size=ctypes.sizeof(PerfEventAttr), config=config,
                         sample_period_or_freq=frequency, flags=_FREQ)
    fd = libc.syscall(NR_PERF_EVENT_OPEN, ctypes.byref(attr), pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise LibbpfError(f"perf_event_open(cpu {cpu})", ctypes.get_errno())
    return fd


def online_cpus() -> list[int]:
    text = open("/sys/devices/system/cpu/online").read().strip()
    cpus = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus.extend(range(int(a), int(b) + 1))
        elif part:
            cpus.append(int(part))
    return cpus


def close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
