"""sched_offcpu: off-CPU time summed in the kernel by process, thread, user and kernel stack
(the probe behind offcputime).

At sched_switch the thread leaving the CPU is `current`: its stacks (bpf_get_stackid
into `stacks`) and the time are kept by thread id; when the thread is switched back in
the elapsed time is added to `offcpu[(pid, tid, stacks, comm)]`. The time includes
the wait in the run queue after the wakeup, as bcc's offcputime does.
"""

from kernelscope.runtime.probe import ProbeSpec

PROBE = ProbeSpec(
    name="sched_offcpu",
    doc=__doc__.splitlines()[0],
    hooks={"sched_switch": ["tp_btf", "raw_tp", "tracepoint"]},
    tools=["offcputime"],
)
