"""Service-map aggregation and renderings, flow-record decoding and tcptop deltas (no root)."""

import json

import numpy as np
import pytest

from kernelscope.net import servicemap as sm
from kernelscope.net.flows import ThroughputTracker, by_process, close_reason, show_addr

from test_flow_join import rec


def flows():
    out = []
    for i in range(4):
        out.append(rec("client", "10.0.0.1", 40000 + i, "10.0.0.2", 80, comm="curl",
                       tx_bytes=100, rx_bytes=1000, srtt_us=100 * (i + 1), retransmits=i))
        out.append(rec("server", "10.0.0.2", 80, "10.0.0.1", 40000 + i, comm="nginx",
                       tx_bytes=1000, rx_bytes=100, srtt_us=100 * (i + 1)))
    out.append(rec("client", "10.0.0.1", 40100, "10.0.0.3", 5432, comm="curl", srtt_us=0,
                   resets_received=1, connect_failed=True))
    out.append(rec("client", "10.0.0.1", 40200, "10.0.0.9", 443, comm="app",
                   container_id="ab" * 32, container_runtime="docker", tx_bytes=7, rx_bytes=9))
    return out


def test_edges_aggregate_joined_conversations():
    m = sm.build_map(flows(), names={"10.0.0.3": "db.internal"})
    by = {(e["src"], e["dst"]): e for e in m["edges"]}
    web = by[("curl", "nginx (10.0.0.2:80)")]
    assert web["connections"] == 4 and web["failed_connects"] == 0
    assert (web["bytes_sent"], web["bytes_received"]) == (400, 4000)
    assert web["retransmits"] == 0 + 1 + 2 + 3
    assert (web["rtt_p50_us"], web["rtt_p90_us"], web["rtt_p99_us"]) == (200, 400, 400)
    db = by[("curl", "db.internal:5432")]
    assert db["failed_connects"] == 1 and db["resets"] == 1 and db["rtt_p50_us"] is None
    box = by[("docker:" + "ab" * 6, "10.0.0.9:443")]
    assert (box["bytes_sent"], box["bytes_received"]) == (7, 9)
    assert m["joined_conversations"] == 4 and m["conversations"] == 6
    assert m["edges"][0] is web          # heaviest first


def test_server_only_flow_edge_from_client_address():
    only = [rec("server", "10.0.0.2", 80, "192.0.2.7", 5555, comm="nginx", rx_bytes=3, tx_bytes=4)]
    e = sm.build_map(only, names={"192.0.2.7": "laptop"})["edges"][0]
    assert (e["src"], e["dst"]) == ("laptop", "nginx (10.0.0.2:80)")
    assert (e["bytes_sent"], e["bytes_received"]) == (3, 4)


def test_renderings():
    m = sm.build_map(flows())
    table = sm.format_table(m)
    assert table.splitlines()[0].split()[:3] == ["SOURCE", "DESTINATION", "CONNS"]
    assert "nginx (10.0.0.2:80)" in table
    dot = sm.format_dot(m)
    assert dot.startswith("digraph") and '"curl" -> "nginx (10.0.0.2:80)"' in dot
    assert "color=red" in dot                # the failed connect
    json.dumps(m)


def test_parse_hosts():
    names = sm.parse_hosts("127.0.0.1 localhost\n# c\n10.0.0.2 web web.lan  # x\n\n::1 ip6-lo\n")
    assert names == {"127.0.0.1": "localhost", "10.0.0.2": "web", "::1": "ip6-lo"}


def test_percentile_nearest_rank():
    assert sm._percentile([], 50) is None
    assert sm._percentile([5], 99) == 5
    assert sm._percentile(list(range(1, 101)), 90) == 90


def test_close_reason():
    base = {"end_ts": 1.0, "direction": "client", "established": True, "resets_received": 0,
            "resets_sent": 0, "fin_received": False, "close_from_state": "FIN_WAIT2"}
    assert close_reason({**base, "end_ts": None}) is None
    assert close_reason({**base, "established": False, "resets_received": 1}) == "refused"
    assert close_reason({**base, "established": False}) == "connect_failed"
    assert close_reason({**base, "resets_received": 1}) == "reset_by_peer"
    assert close_reason({**base, "resets_sent": 1}) == "reset_sent"
    assert close_reason({**base, "fin_received": True}) == "fin"
    assert close_reason({**base, "close_from_state": "LAST_ACK"}) == "fin"
    assert close_reason(base) == "closed"


def test_show_addr():
    assert show_addr("::ffff:7f00:1") == "::ffff:127.0.0.1"
    assert show_addr("fd00::1") == "fd00::1" and show_addr("10.0.0.1") == "10.0.0.1"


def live(sk, tx, rx, direction="client", pid=1):
    return {"sk_id": sk, "start_ns": 1, "tx_bytes": tx, "rx_bytes": rx, "open": True,
            "direction": direction, "pid": pid, "comm": "p"}


def test_throughput_tracker_deltas():
    t = ThroughputTracker()
    assert t.update([], [live(1, 500, 50)]) == []           # existed before: baseline
    rows = t.update([], [live(1, 800, 50), live(2, 10, 20)])  # 2 is new: from zero
    d = {r["sk_id"]: (r["tx_delta"], r["rx_delta"]) for r in rows}
    assert d == {1: (300, 0), 2: (10, 20)}
    closed = {**live(1, 1000, 70), "open": False}
    rows = t.update([closed, {**live(3, 5, 5), "open": False}], [live(2, 10, 20)])
    d = {r["sk_id"]: (r["tx_delta"], r["rx_delta"]) for r in rows}
    assert d == {1: (200, 20), 3: (5, 5)}                  # 2 idle: no row
    assert t.update([], []) == []
    agg = by_process([{**live(1, 0, 0), "tx_delta": 1, "rx_delta": 2},
                      {**live(2, 0, 0), "tx_delta": 3, "rx_delta": 4}])
    assert agg == [{"pid": 1, "comm": "p", "cmdline": None, "connections": 2,
                    "tx_delta": 4, "rx_delta": 6}]


def test_records_from_batch_decodes_kernel_layout():
    from kernelscope.net.flows import records_from_batch
    from kernelscope.runtime.paths import object_path
    path = object_path("tcp_flow")
    if not path.exists():
        pytest.skip("tcp_flow.bpf.o not built")
    from kernelscope.libbpf import BpfObject
    with BpfObject(path) as obj:
        dt = obj.btf.dtype("tcp_flow_event")
    b = np.zeros(2, dtype=dt)
    b["family"] = [2, 10]
    b["laddr"][0, :4] = [10, 0, 0, 1]
    b["raddr"][1] = list(bytes.fromhex("fd000232000100000000000000000002"))
    b["start_ts"] = [1_000_000_000, 2_000_000_000]
    b["end_ts"] = [1_500_000_000, 0]
    b["min_rtt_us"] = [0xFFFFFFFF, 7]
    b["state"] = [7, 1]
    b["close_from_state"] = [2, 0]
    b["direction"] = [1, 2]
    b["resets_received"] = [1, 0]
    b["comm"] = [b"curl", b"nginx"]
    b["drops"] = [0, 2]
    b["last_drop_reason"] = [0, 6]
    r0, r1 = records_from_batch(b, boot_offset_ns=0)
    assert r0["laddr"] == "10.0.0.1" and r1["raddr"] == "fd00:232:1::2"
    assert r0["duration_ms"] == 500.0 and r1["duration_ms"] is None and r1["open"]
    assert r0["close_reason"] == "refused" and r0["connect_failed"]
    assert r0["min_rtt_us"] is None and r1["min_rtt_us"] == 7
    assert (r0["state"], r0["close_from_state"], r1["state"]) == ("CLOSE", "SYN_SENT", "ESTABLISHED")
    assert (r0["direction"], r1["direction"], r1["comm"]) == ("client", "server", "nginx")
    assert r0["last_drop_reason"] is None and r1["last_drop_reason"] == 6
    assert "refresh_ns" not in r0 and "pad" not in r0


def test_batch_close_reasons_agree_with_close_reason():
    """The numpy rules used on batches and the per-record function give the same answer."""
    import itertools
    from kernelscope.libbpf import BpfObject
    from kernelscope.net.flows import records_from_batch
    from kernelscope.runtime.paths import object_path
    path = object_path("tcp_flow")
    if not path.exists():
        pytest.skip("tcp_flow.bpf.o not built")
    with BpfObject(path) as obj:
        dt = obj.btf.dtype("tcp_flow_event")
    combos = list(itertools.product([0, 5], [0, 1, 2], [0, 1], [0, 1], [0, 1], [0, 1], [0, 2, 5, 8, 9]))
    b = np.zeros(len(combos), dtype=dt)
    for i, (end, d, est, rr, rs, fin, cfs) in enumerate(combos):
        b[i]["start_ts"], b[i]["end_ts"], b[i]["direction"], b[i]["established"] = 1, end, d, est
        b[i]["resets_received"], b[i]["resets_sent"], b[i]["fin_received"] = rr, rs, fin
        b[i]["close_from_state"] = cfs
    recs = records_from_batch(b, boot_offset_ns=0)
    for r in recs:
        assert r["close_reason"] == close_reason(r), r
    assert {r["close_reason"] for r in recs} == {None, "refused", "connect_failed", "reset_by_peer",
                                                 "reset_sent", "fin", "closed"}


def test_columns_and_records_are_the_same_fields():
    from kernelscope.libbpf import BpfObject
    from kernelscope.net.flows import columns_from_batch, records_from_batch
    from kernelscope.runtime.paths import object_path
    path = object_path("tcp_flow")
    if not path.exists():
        pytest.skip("tcp_flow.bpf.o not built")
    with BpfObject(path) as obj:
        dt = obj.btf.dtype("tcp_flow_event")
    b = np.zeros(3, dtype=dt)
    b["family"], b["lport"], b["end_ts"], b["start_ts"] = 2, [1, 2, 3], [0, 9, 9], 1
    cols = columns_from_batch(b, 0)
    recs = records_from_batch(b, 0)
    assert [dict(zip(cols, row)) for row in zip(*cols.values())] == recs
    assert cols["lport"] == [1, 2, 3] and cols["open"] == [True, False, False]
    assert columns_from_batch(b[:0]) == {} and records_from_batch(b[:0]) == []
