"""OTLP export end to end: real exec events from the proc_exec probe, metrics and spans,
sent by OtlpSink over gRPC and over HTTP/protobuf to a real OTLP receiver that checks
every record; retries and bounded memory while the receiver is down."""

from __future__ import annotations

import math
import os
import subprocess
import time
import uuid

import pytest

pytest.importorskip("grpc", reason="needs grpcio (pip install 'kernelscope[agent]')")
pytest.importorskip("opentelemetry.proto", reason="needs opentelemetry-proto (kernelscope[agent])")

from otlp_receiver import OtlpReceiver  # noqa: E402

from kernelscope.export.metrics import Metric, MetricSource, log2_histogram  # noqa: E402
from kernelscope.export.otlp import OtlpSink  # noqa: E402

pytestmark = pytest.mark.e2e

PROTOCOLS = ["grpc", "http/protobuf"]


@pytest.fixture
def rx():
    with OtlpReceiver() as r:
        yield r


def endpoint(rx: OtlpReceiver, protocol: str) -> str:
    return rx.grpc_endpoint if protocol == "grpc" else rx.http_endpoint


def make_sink(rx, protocol, **cfg) -> OtlpSink:
    config = {"protocol": protocol, "endpoint": endpoint(rx, protocol), "interval": 0.2,
              "timeout": 2, "retry_initial": 0.05, "retry_max": 0.3, **cfg}
    return OtlpSink(config, host="test-host-1")


@pytest.fixture(scope="module")
def exec_capture():
    """Real records of the proc_exec probe around two execs of a command with unique argv."""
    from kernelscope.runtime.decode import Decoder
    from kernelscope.runtime.loader import open_probe
    from kernelscope.runtime.reader import Reader
    from conftest import bpf_prog_ids, wait_gone

    before = bpf_prog_ids()
    token = f"ks-otlp-{uuid.uuid4().hex[:12]}"
    argv = ["/bin/echo", token, "two words", ""]
    pids: list[int] = []
    records: list[dict] = []
    with open_probe("proc_exec") as p, Reader({"events": p.ring()}) as reader:
        dec = Decoder(p.btf, p.spec.event)
        for _ in range(2):
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
            pids.append(proc.pid)
            proc.wait()
        deadline = time.monotonic() + 10
        stop = lambda: time.monotonic() > deadline or sum(  # noqa: E731
            1 for r in records if r["args"][1:2] == [token]) >= 2
        for _name, batch in reader.batches(until=stop):
            recs = dec.to_dicts(batch)
            if p.spec.decode:
                recs = p.spec.decode(p, batch, recs)
            records.extend(recs)
    assert not wait_gone(before), "proc_exec programs left loaded"
    ours = [r for r in records if r["args"][1:2] == [token]]
    assert sorted(r["pid"] for r in ours) == sorted(pids), "probe did not see both execs"
    return {"argv": argv, "pids": pids, "token": token, "records": records}


@pytest.mark.kernel
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_exec_events_arrive_with_exact_fields(rx, protocol, exec_capture):
    sink = make_sink(rx, protocol, batch_size=64)
    recs = exec_capture["records"]
    t0 = time.time_ns()
    for i in range(0, len(recs), 5):           # as the agent does: many small writes
        sink.write("proc_exec", recs[i:i + 5])
    sink.flush(force=True)
    assert rx.wait_for(lambda r: len(r.logs) >= len(recs), 10), sink.stats()
    sink.close()

    assert not rx.problems
    assert len(rx.logs) == len(recs)
    assert {t for t, _ in rx.requests} == {"grpc" if protocol == "grpc" else "http"}
    ours = sorted(rx.logs_where(**{"kernelscope.event": "proc_exec"}), key=lambda r: r["attrs"]["pid"])
    ours = [r for r in ours if r["attrs"]["args"][1:2] == [exec_capture["token"]]]
    assert [r["attrs"]["pid"] for r in ours] == sorted(exec_capture["pids"])
    for r in ours:
        a = r["attrs"]
        assert a["args"] == exec_capture["argv"]          # the empty last argument too
        assert a["comm"] == "echo"
        assert a["retval"] == 0 and "retval_name" not in a  # None is left out
        assert a["filename"] == "/bin/echo"
        assert a["args_truncated"] is False
        assert isinstance(a["uid"], int) and isinstance(a["ppid"], int)
        assert r["event_name"] == "kernelscope.proc_exec" and r["body"] == "proc_exec"
        src = next(x for x in recs if x["pid"] == a["pid"])
        assert abs(r["time_ns"] - src["ts"] * 1e9) < 1000   # the probe's timestamp, not now
        assert r["time_ns"] < t0 < r["observed_ns"]
        assert r["resource"]["host.name"] == "test-host-1"
        assert r["resource"]["service.name"] == "kernelscope"
        assert r["resource"]["kernelscope.version"]
    st = sink.stats()
    assert (st["sent"], st["dropped"], st["errors"], st["queued"]) == (len(recs), 0, 0, 0)


class FixedSource(MetricSource):
    def __init__(self):
        self.execs = 41
        self.slots = [0] * 8

    def collect(self):
        return [
            Metric("kernelscope_exec_total", "counter", "execs seen",
                   [({"comm": "bash"}, self.execs), ({"comm": "sh"}, 3)]),
            Metric("kernelscope_tcp_active_flows", "gauge", "open flows", [({}, 2.5)]),
            Metric("kernelscope_block_io_latency_seconds", "histogram", "block I/O latency",
                   [({"disk": "vda"}, log2_histogram(self.slots, scale=1e-6))]),
        ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_metrics_arrive_with_right_values(rx, protocol):
    src = FixedSource()
    src.slots[0], src.slots[3], src.slots[5] = 2, 7, 1     # 0-1us, 8-15us, 32-63us
    sink = make_sink(rx, protocol, headers={"Authorization": "Bearer t0k"})
    sink.set_metric_sources([src])
    assert rx.wait_for(lambda r: r.metric("kernelscope_exec") is not None, 5), sink.stats()
    src.execs = 50
    assert rx.wait_for(lambda r: r.metric("kernelscope_exec")["points"][0]["value"] == 50, 5)
    sink.close()
    assert not rx.problems

    c = rx.metric("kernelscope_exec")
    assert c["kind"] == "sum" and c["monotonic"] is True and c["temporality"] == 2
    assert c["description"] == "execs seen"
    vals = {p["attrs"]["comm"]: p["value"] for p in c["points"]}
    assert vals == {"bash": 50, "sh": 3}
    first = next(m for m in rx.metrics if m["name"] == "kernelscope_exec")
    assert first["points"][0]["value"] == 41
    # a cumulative series keeps its start time across exports
    assert first["points"][0]["start_ns"] == c["points"][0]["start_ns"] < c["points"][0]["time_ns"]

    g = rx.metric("kernelscope_tcp_active_flows")
    assert g["kind"] == "gauge" and g["points"][0]["value"] == 2.5 and g["points"][0]["attrs"] == {}

    h = rx.metric("kernelscope_block_io_latency_seconds")
    assert h["kind"] == "histogram" and h["unit"] == "s" and h["temporality"] == 2
    p = h["points"][0]
    assert p["attrs"] == {"disk": "vda"}
    assert p["bounds"] == pytest.approx([2e-6, 4e-6, 8e-6, 16e-6, 32e-6, 64e-6])
    assert p["counts"] == [2, 0, 0, 7, 0, 1, 0]
    assert p["count"] == 10
    assert p["sum"] == pytest.approx((2 * 1 + 7 * 12 + 1 * 48) * 1e-6)
    assert all(m["resource"]["host.name"] == "test-host-1" for m in rx.metrics)
    auth = [h.get("authorization") for h in rx.headers]
    assert auth and set(auth) == {"Bearer t0k"}
    assert sink.stats()["metric_points"] >= 8


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_spans_from_records_with_start_and_end(rx, protocol):
    sink = make_sink(rx, protocol, spans=["l7_http"], compression="gzip")
    now = time.time_ns()
    trace_id = os.urandom(16).hex()
    recs = [
        {"start_ns": now - 5_000_000, "end_ns": now, "span_name": "GET /health", "span_kind": "server",
         "trace_id": trace_id, "method": "GET", "status_code": 200, "pid": 77},
        {"ts": now / 1e9, "duration_ns": 1_500_000, "span_name": "POST /x", "span_kind": "client",
         "status": "error", "status_code": 503},
    ]
    sink.write("l7_http", recs)
    sink.write("proc_exec", [{"ts": now / 1e9, "pid": 1, "args": ["x"]}])  # still a log
    sink.flush(force=True)
    assert rx.wait_for(lambda r: len(r.spans) == 2 and len(r.logs) == 1, 5), sink.stats()
    sink.close()
    assert not rx.problems
    a, b = sorted(rx.spans, key=lambda s: s["name"])
    assert (a["name"], a["kind"], a["start_ns"], a["end_ns"]) == ("GET /health", 2, now - 5_000_000, now)
    assert a["trace_id"] == trace_id
    assert a["attrs"] == {"kernelscope.event": "l7_http", "method": "GET", "status_code": 200, "pid": 77}
    assert (b["name"], b["kind"], b["status"]) == ("POST /x", 3, 2)
    assert b["end_ns"] - b["start_ns"] == 1_500_000
    assert abs(b["end_ns"] - now) < 1000
    if protocol == "http/protobuf":
        assert rx.headers[0].get("content-encoding") == "gzip"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_receiver_down_bounded_queue_then_delivered(rx, protocol):
    rx.stop()
    sink = make_sink(rx, protocol, batch_size=10, max_queue=50, interval=0.1)
    written = 0
    for chunk in range(12):                          # 120 records, 10 per write
        sink.write("proc_exec", [{"ts": time.time(), "seq": chunk * 10 + i, "pid": 1000 + i}
                                 for i in range(10)])
        written += 10
        assert sink.stats()["queued"] <= 50
    deadline = time.monotonic() + 10
    while sink.stats()["retries"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    st = sink.stats()
    assert st["retries"] >= 3 and st["errors"] >= 3, st
    assert st["queued"] == 50 and st["sent"] == 0
    assert st["dropped"] == written - 50
    assert len(sink.batcher._queues["logs"]) == 50    # memory: the records themselves

    rx.start()                                        # same ports
    assert rx.wait_for(lambda r: len(r.logs) >= 50, 10), sink.stats()
    sink.write("proc_exec", [{"ts": time.time(), "seq": 1000, "pid": 1}])
    sink.flush(force=True)
    assert rx.wait_for(lambda r: len(r.logs) >= 51, 5), sink.stats()
    sink.close()
    assert not rx.problems
    seqs = [r["attrs"]["seq"] for r in rx.logs]
    assert seqs == list(range(50)) + [1000]           # the oldest 50, once each, in order
    st = sink.stats()
    assert (st["sent"], st["dropped"], st["queued"]) == (51, written - 50, 0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retryable_errors_retry_and_permanent_errors_drop(rx, protocol):
    sink = make_sink(rx, protocol, batch_size=100)
    rx.fail_next(2, "UNAVAILABLE")
    sink.write("proc_exec", [{"ts": time.time(), "seq": i} for i in range(7)])
    deadline = time.monotonic() + 10
    while len(rx.logs) < 7 and time.monotonic() < deadline:
        sink.flush(force=True)
        time.sleep(0.05)
    st = sink.stats()
    assert sorted(r["attrs"]["seq"] for r in rx.logs) == list(range(7))
    assert (st["sent"], st["retries"], st["rejected"]) == (7, 2, 0)

    rx.fail_next(1, "INVALID_ARGUMENT")
    sink.write("proc_exec", [{"ts": time.time(), "seq": 100 + i} for i in range(4)])
    sink.flush(force=True)
    st = sink.stats()
    assert (st["rejected"], st["retries"], st["queued"]) == (4, 2, 0)
    sink.write("proc_exec", [{"ts": time.time(), "seq": 200}])
    sink.flush(force=True)
    assert rx.wait_for(lambda r: len(r.logs) == 8, 5)
    sink.close()
    assert [r["attrs"]["seq"] for r in rx.logs][-1] == 200
    assert rx.refused == 3 and not rx.problems
    assert math.isclose(sink.stats()["sent"], 8)
