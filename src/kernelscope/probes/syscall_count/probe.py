"""syscall_count: calls, errors and latency per syscall or per process, counted in the kernel (syscount).

raw_syscalls sys_enter stores the entry time in task storage; sys_exit adds
one call and its latency to a per-CPU array indexed by syscall number
(`counts_by_nr`), or with cfg_per_process to a per-CPU hash keyed by tgid
(`counts`). Calls in flight when the probe attaches, and calls that never
return (exit, exit_group), are not counted.
"""

from kernelscope.runtime.probe import ProbeSpec

PROBE = ProbeSpec(
    name="syscall_count",
    doc=__doc__.splitlines()[0],
    tools=["syscount"],
)
