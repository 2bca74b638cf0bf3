"""tcp_retrans: retransmitted TCP segments and SYN-ACKs with flow and state (tcpretrans).

Events (one per retransmission) or, with config count=1, only the in-kernel map
`counts` (struct ks_flow -> u64) read by tcpretrans -c.
"""


from kernelscope.enrich.net import decode_addrs, family_name, format_addr, tcp_state_name
from kernelscope.runtime.probe import ProbeSpec

KINDS = {0: "segment", 1: "synack"}


def decode(loaded, batch, records):
    decode_addrs(batch, records)
    for r in records:
        r["state"] = tcp_state_name(r["state"])
        r["kind"] = KINDS.get(r["kind"], str(r["kind"]))
        r["ip"] = family_name(r["family"])
        r["skaddr"] = f"{r['skaddr']:#x}"
    return records


def read_counts(loaded) -> list[dict]:
    """The per-flow counter map as records, most retransmissions first."""
    mp = loaded.map_dtype("counts")
    keys, vals = mp.lookup_batch()
    out = []
    for k, v in zip(keys, vals.tolist()):
        fam = int(k["family"])
        out.append({"family": fam, "ip": family_name(fam),
                    "laddr": format_addr(fam, k["laddr"].tobytes()), "lport": int(k["lport"]),
                    "raddr": format_addr(fam, k["raddr"].tobytes()), "rport": int(k["rport"]),
                    "retransmits": int(v)})
    out.sort(key=lambda r: (-r["retransmits"], r["laddr"], r["lport"]))
    return out


PROBE = ProbeSpec(
    name="tcp_retrans",
    doc=__doc__.splitlines()[0],
    event="tcp_retrans_event",
    decode=decode,
    tools=["tcpretrans"],
)
