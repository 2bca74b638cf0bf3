"""Network models built on the TCP probes: the flow table, the service map, the join of
both ends of a connection (see docs/network.md)."""
