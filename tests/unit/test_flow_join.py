"""The join of both ends of a connection into one conversation (pure, no root)."""

import itertools

from kernelscope.net.servicemap import join_conversations, norm_addr, side

_ids = itertools.count(1)


def rec(direction, laddr, lport, raddr, rport, start=100.0, end=101.0, **kw):
    r = {"direction": direction, "laddr": laddr, "lport": lport, "raddr": raddr, "rport": rport,
         "start_ts": start, "end_ts": end, "pid": kw.pop("pid", 1), "comm": kw.pop("comm", "x"),
         "netns": kw.pop("netns", 1), "sk_id": kw.pop("sk_id", next(_ids)),
         "tx_bytes": 0, "rx_bytes": 0, "retransmits": 0, "resets_sent": 0,
         "resets_received": 0, "drops": 0, "srtt_us": 50, "connect_failed": False}
    r.update(kw)
    return r


def test_two_ends_join_with_both_processes():
    c = rec("client", "10.0.0.1", 40000, "10.0.0.2", 80, pid=11, comm="curl", netns=7,
            tx_bytes=100, rx_bytes=5000, retransmits=2)
    s = rec("server", "10.0.0.2", 80, "10.0.0.1", 40000, pid=22, comm="nginx", netns=8,
            tx_bytes=5000, rx_bytes=100, retransmits=1, start=100.001, end=101.002)
    convs = join_conversations([s, c])
    assert len(convs) == 1
    cv = convs[0]
    assert cv["joined"]
    assert (cv["client_pid"], cv["client_comm"], cv["client_netns"]) == (11, "curl", 7)
    assert (cv["server_pid"], cv["server_comm"], cv["server_netns"]) == (22, "nginx", 8)
    assert (cv["bytes_client_to_server"], cv["bytes_server_to_client"]) == (100, 5000)
    assert cv["retransmits"] == 3
    assert (cv["client_addr"], cv["client_port"], cv["server_addr"], cv["server_port"]) == \
        ("10.0.0.1", 40000, "10.0.0.2", 80)
    assert cv["start_ts"] == 100.0 and cv["end_ts"] == 101.002


def test_port_reuse_joins_by_time_overlap():
    # the same 4-tuple used twice, a minute apart: each client joins its own server end
    c1 = rec("client", "10.0.0.1", 40000, "10.0.0.2", 80, start=100, end=101, pid=1)
    c2 = rec("client", "10.0.0.1", 40000, "10.0.0.2", 80, start=160, end=161, pid=2)
    s1 = rec("server", "10.0.0.2", 80, "10.0.0.1", 40000, start=100, end=101, pid=10)
    s2 = rec("server", "10.0.0.2", 80, "10.0.0.1", 40000, start=160, end=161, pid=20)
    convs = join_conversations([s2, c1, s1, c2])
    pairs = sorted((cv["client_pid"], cv["server_pid"]) for cv in convs)
    assert pairs == [(1, 10), (2, 20)] and all(cv["joined"] for cv in convs)


def test_no_overlap_no_join_and_halves_kept():
    c = rec("client", "10.0.0.1", 40000, "10.0.0.2", 80, start=100, end=101)
    s = rec("server", "10.0.0.2", 80, "10.0.0.1", 40000, start=200, end=201)
    convs = join_conversations([c, s])
    assert len(convs) == 2 and not any(cv["joined"] for cv in convs)
    server_half = next(cv for cv in convs if cv["client_pid"] is None)
    assert (server_half["client_addr"], server_half["server_port"]) == ("10.0.0.1", 80)


def test_open_flows_overlap_and_mismatched_tuple_does_not_join():
    c = rec("client", "10.0.0.1", 40000, "10.0.0.2", 80, start=100, end=None)
    s = rec("server", "10.0.0.2", 80, "10.0.0.1", 40000, start=100.5, end=None)
    other = rec("server", "10.0.0.2", 80, "10.0.0.1", 40001, start=100.5, end=None)
    convs = join_conversations([c, s, other])
    joined = [cv for cv in convs if cv["joined"]]
    assert len(joined) == 1 and joined[0]["server"] is s and joined[0]["end_ts"] is None


def test_ipv4_mapped_client_joins_ipv4_server():
    c = rec("client", "::ffff:10.0.0.1", 40000, "::ffff:10.0.0.2", 80)
    s = rec("server", "10.0.0.2", 80, "10.0.0.1", 40000)
    assert norm_addr("::ffff:10.0.0.1") == "10.0.0.1"
    assert join_conversations([c, s])[0]["joined"]


def test_unknown_direction_side_by_port():
    assert side(rec("unknown", "10.0.0.1", 40000, "10.0.0.2", 443)) == "client"
    assert side(rec("unknown", "10.0.0.2", 443, "10.0.0.1", 40000)) == "server"


def test_resets_counted_once_per_rst():
    # a refused connect seen from both ends is impossible (no server socket); a reset
    # of an established connection: sent by the server, received by the client
    c = rec("client", "10.0.0.1", 40000, "10.0.0.2", 80, resets_received=1)
    s = rec("server", "10.0.0.2", 80, "10.0.0.1", 40000, resets_sent=1)
    assert join_conversations([c, s])[0]["resets"] == 1
    half = join_conversations([c])[0]
    assert half["resets"] == 1
