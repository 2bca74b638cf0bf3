"""syscall_trace: every syscall of traced processes and their children, with arguments,
strings, return value and duration (the probe behind `kernelscope trace`).

Only processes in the in-kernel `traced` set pay for argument copies: others
cost one hash lookup per syscall. Children join the set at sched_process_fork;
a process leaves it when its last thread exits. A started command is gated
in state TRACE_WAIT_EXEC so tracing begins exactly at its execve.
"""

from kernelscope.runtime.probe import ProbeSpec

TRACE_WAIT_EXEC = 1
TRACE_ON = 2

PROBE = ProbeSpec(
    name="syscall_trace",
    doc=__doc__.splitlines()[0],
    event="syscall_trace_event",
    tools=["trace"],
)
