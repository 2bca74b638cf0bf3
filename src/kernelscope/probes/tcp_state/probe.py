"""tcp_state: TCP state transitions with the time spent in the previous state (tcpstates).

pid/comm are the socket's owner (the process that connected, listened, accepted,
or sent/received on it), 0/"" until one of those is seen; prev_state_ns is 0 when
the socket entered its previous state before tracing began (or was created then).
"""

from kernelscope.enrich.net import decode_addrs, family_name, tcp_state_name
from kernelscope.runtime.probe import ProbeSpec


def decode(loaded, batch, records):
    decode_addrs(batch, records)
    for r in records:
        r["oldstate"] = tcp_state_name(r["oldstate"])
        r["newstate"] = tcp_state_name(r["newstate"])
        r["ip"] = family_name(r["family"])
        r["skaddr"] = f"{r['skaddr']:#x}"
    return records


PROBE = ProbeSpec(
    name="tcp_state",
    doc=__doc__.splitlines()[0],
    event="tcp_state_event",
    decode=decode,
    tools=["tcpstates"],
)
