"""tcp_rtt: log2 histograms of TCP smoothed RTT, overall, per address or per flow (tcprtt).

Map `hists`: struct ks_flow -> struct ks_hist; the key's unused parts are zero
(config by=0 all, 1 remote address, 2 local address, 3 flow). Values are
microseconds (milliseconds with ms=1), sampled per received segment.
"""

from kernelscope.enrich.net import family_name, format_addr
from kernelscope.runtime.probe import ProbeSpec

BY = {"all": 0, "raddr": 1, "laddr": 2, "flow": 3}


def key_labels(family: int, lport: int, rport: int, laddr: bytes, raddr: bytes, by: str) -> dict:
    """The labels of one histogram key for grouping mode `by`."""
    if by == "all":
        return {}
    out = {"ip": family_name(family)}
    if by in ("laddr", "flow"):
        out["laddr"] = format_addr(family, laddr)
    if by == "flow":
        out["lport"] = int(lport)
    if by in ("raddr", "flow"):
        out["raddr"] = format_addr(family, raddr)
    if by == "flow":
        out["rport"] = int(rport)
    return out


PROBE = ProbeSpec(
    name="tcp_rtt",
    doc=__doc__.splitlines()[0],
    tools=["tcprtt"],
)
