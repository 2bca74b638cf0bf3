"""tcp_connect: TCP active opens with their outcome, passive opens at accept (tcpconnect, tcpaccept).

Active: the process that called connect(), then established / refused (ECONNREFUSED)
/ timed out (ETIMEDOUT) / another error / closed before the handshake ended, with
the handshake time. Passive: the process whose accept()/accept4() returned the
socket, with the time the connection waited in the accept queue.
"""

from kernelscope.enrich.net import decode_addrs, family_name
from kernelscope.runtime.probe import ProbeSpec

DIRECTIONS = {0: "connect", 1: "accept"}


def outcome_name(outcome: int, err_name: str | None) -> str:
    """The result column: established, refused, timeout, closed, or the errno name."""
    if outcome == 0:
        return "established"
    if outcome == 2:
        return "closed"
    return {"ECONNREFUSED": "refused", "ETIMEDOUT": "timeout"}.get(err_name or "", err_name or "error")


def decode(loaded, batch, records):
    decode_addrs(batch, records)
    for r in records:
        r["direction"] = DIRECTIONS.get(r["direction"], str(r["direction"]))
        r["result"] = outcome_name(r.pop("outcome"), r.get("err_name"))
        r["ip"] = family_name(r["family"])
    return records


PROBE = ProbeSpec(
    name="tcp_connect",
    doc=__doc__.splitlines()[0],
    event="tcp_connect_event",
    decode=decode,
    tools=["tcpconnect", "tcpaccept"],
)
