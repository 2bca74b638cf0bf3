"""tcp_drop: dropped TCP packets with the kernel's drop reason, flow, state and owner (tcpdrop).

The reason's name comes from the running kernel's BTF (enum skb_drop_reason);
the flow is parsed from the packet's own headers (saddr:sport -> daddr:dport as
on the wire); pid/comm are the owning process of the socket or flow, 0/"" when
not known. NOT_SPECIFIED (and consumed) frees are skipped unless config all=1.
"""

from functools import lru_cache

from kernelscope.enrich.net import decode_addrs, family_name, tcp_flags_text, tcp_state_name
from kernelscope.enrich.symbols import Symbolizer
from kernelscope.runtime.probe import ProbeSpec


@lru_cache(maxsize=1)
def kernel_symbols() -> Symbolizer:
    return Symbolizer()


def decode(loaded, batch, records):
    decode_addrs(batch, records, fields=("saddr", "daddr"))
    syms = kernel_symbols()
    for r in records:
        r["ip"] = family_name(r["family"])
        r["state"] = tcp_state_name(r["state"]) if r["state"] else None
        r["tcp_flags"] = tcp_flags_text(r["tcp_flags"])
        r["location"] = syms.kernel(r["location"], offset=True)
        r["skaddr"] = f"{r['skaddr']:#x}" if r["skaddr"] else None
        r["reason_code"] = r["reason"]
        r["reason"] = r.pop("reason_name")
    return records


PROBE = ProbeSpec(
    name="tcp_drop",
    doc=__doc__.splitlines()[0],
    event="tcp_drop_event",
    decode=decode,
    tools=["tcpdrop"],
)
