"""tcp_flow: the TCP flow table kept in the kernel, one record per connection (tcplife, tcptop, map).

Live connections are read from the `flows` LRU map; closed ones arrive through the
`events` ring buffer. kernelscope.net.flows.FlowTable merges both; see docs/network.md.
"""

from kernelscope.runtime.probe import ProbeSpec


def decode(loaded, batch, records):
    """The generic records -> flow records (kernelscope.net.flows builds them from the batch)."""
    from kernelscope.net.flows import records_from_batch
    return records_from_batch(batch)


PROBE = ProbeSpec(
    name="tcp_flow",
    doc=__doc__.splitlines()[0],
    event="tcp_flow_event",
    decode=decode,
    tools=["tcplife", "tcptop", "map"],
)
