"""OTLP exporter without a network: config errors name their key, values map to the
right OTLP types, histograms and spans are converted exactly."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("opentelemetry.proto", reason="needs opentelemetry-proto (kernelscope[agent])")

from kernelscope.errors import UsageError  # noqa: E402
from kernelscope.export.base import SinkError  # noqa: E402
from kernelscope.export.metrics import Metric  # noqa: E402
from kernelscope.export.otlp import (OtlpSink, any_value, histogram_point,  # noqa: E402
                                     log_record, metric_proto, span, span_times)


@pytest.mark.parametrize("config, key", [
    ({"protocol": "udp"}, "protocol"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": "many"}, "batch_size"),
    ({"max_queue": 10, "batch_size": 100}, "max_queue"),
    ({"timeout": -1}, "timeout"),
    ({"interval": "soon"}, "interval"),
    ({"headers": "novalue"}, "headers"),
    ({"headers": ["a"]}, "headers"),
    ({"protocol": "http/protobuf", "endpoint": "collector:4318"}, "endpoint"),
    ({"protocol": "http/protobuf", "insecure": True}, "insecure"),
    ({"compression": "zstd"}, "compression"),
    ({"retry_initial": 5, "retry_max": 1}, "retry_max"),
    ({"spans": [1]}, "spans"),
    ({"endpoit": "x:1"}, "endpoit"),
])
def test_bad_config_is_one_line_naming_the_key(config, key):
    with pytest.raises(UsageError) as e:
        OtlpSink(config, host="h")
    msg = str(e.value)
    assert msg.startswith(f"{key}:") and "\n" not in msg
    assert isinstance(e.value, SinkError)


def test_durations_and_header_strings_are_accepted():
    s = OtlpSink({"protocol": "http/protobuf", "endpoint": "http://127.0.0.1:9",
                  "interval": "250ms", "timeout": "2s", "headers": "a=1, b = two"}, host="h")
    try:
        assert s.batcher.interval == 0.25 and s.timeout == 2.0
        assert s.transport.headers["a"] == "1" and s.transport.headers["b"] == "two"
    finally:
        s.batcher.close(timeout=0.1)


def test_any_value_types():
    assert any_value(True).bool_value is True
    assert any_value(-5).int_value == -5
    assert any_value(2**64 - 1).string_value == str(2**64 - 1)     # past int64: exact text
    assert any_value(1.5).double_value == 1.5
    assert any_value(b"\x00\x01").bytes_value == b"\x00\x01"
    assert [v.string_value for v in any_value(["a", ""]).array_value.values] == ["a", ""]
    kv = any_value({"k": 1}).kvlist_value.values[0]
    assert (kv.key, kv.value.int_value) == ("k", 1)
    assert any_value(None) is None
    np = pytest.importorskip("numpy")
    assert any_value(np.uint32(7)).int_value == 7


def test_log_record_fields():
    rec = {"ts": 1700000000.25, "pid": 9, "retval_name": None, "severity": "critical",
           "message": "shell in container"}
    lr = log_record("alerts", rec, observed_ns=1700000001 * 10**9)
    assert lr.time_unix_nano == 1700000000250000000
    assert lr.severity_number == 21 and lr.severity_text == "CRITICAL"
    assert lr.body.string_value == "shell in container"
    keys = [a.key for a in lr.attributes]
    assert keys[0] == "kernelscope.event" and "ts" not in keys and "retval_name" not in keys
    no_ts = log_record("x", {"pid": 1}, observed_ns=42)
    assert no_ts.time_unix_nano == 42 and no_ts.severity_number == 9


def test_histogram_from_cumulative_buckets():
    p = histogram_point(([(1.0, 2), (2.0, 5), (4.0, 5), (math.inf, 6)], 9.5, 6), {"a": 1},
                        start_ns=1, now_ns=2, metrics_pb=__import__(
                            "opentelemetry.proto.metrics.v1.metrics_pb2", fromlist=["x"]),
                        common=__import__("opentelemetry.proto.common.v1.common_pb2", fromlist=["x"]))
    assert list(p.explicit_bounds) == [1.0, 2.0, 4.0]
    assert list(p.bucket_counts) == [2, 3, 0, 1]
    assert (p.count, p.sum) == (6, 9.5)
    assert p.attributes[0].value.string_value == "1"


def test_counter_gauge_names_and_values():
    c = metric_proto(Metric("kernelscope_exec_total", "counter", "n", [({}, 3)]), 1, 2)
    assert c.name == "kernelscope_exec" and c.sum.is_monotonic and c.sum.aggregation_temporality == 2
    assert c.sum.data_points[0].as_int == 3
    g = metric_proto(Metric("kernelscope_bytes", "gauge", "", [({"d": "x"}, 0.5)]), 1, 2)
    assert g.unit == "By" and g.gauge.data_points[0].as_double == 0.5


def test_span_times_variants():
    t = 1_700_000_000_000_000_000
    assert span_times({"start_ns": t + 10, "end_ns": t + 30}) == (t + 10, t + 30)
    # tcp_flow style: boot-time ns beside wall-clock seconds -> wall start, exact duration
    flow = {"start_ts": 1700000000.5, "end_ts": 1700000000.6, "start_ns": 3371863300838,
            "end_ns": 3371872047221, "ts": 1700000009.0}
    assert span_times(flow) == (t + 500_000_000, t + 500_000_000 + 8_746_383)
    assert span_times({"start_ts": 1.5, "end_ts": 2.0}) == (1_500_000_000, 2_000_000_000)
    assert span_times({"ts": 2.0, "duration_ns": 500}) == (2_000_000_000 - 500, 2_000_000_000)
    assert span_times({"start_ns": t + 100, "duration_ns": 5}) == (t + 100, t + 105)
    # boot-time ns only: the exact duration, ending at the record time
    assert span_times({"start_ns": 100, "end_ns": 105, "ts": 2.0}) == (2_000_000_000 - 5, 2_000_000_000)
    sp = span("l7", {"start_ns": t + 1, "end_ns": t + 2, "trace_id": "ab" * 16, "span_id": "cd" * 8,
                     "parent_span_id": "ef" * 8, "span_kind": "client", "method": "GET"})
    assert sp.trace_id == bytes.fromhex("ab" * 16) and sp.parent_span_id == bytes.fromhex("ef" * 8)
    assert sp.kind == 3 and sp.name == "l7"
    assert [a.key for a in sp.attributes] == ["kernelscope.event", "method"]
