"""ClickHouse sink without a server: config errors, types from Python values, rows as
JSONEachRow for old (DateTime + ts_ns) and new (DateTime64) servers."""

from __future__ import annotations

import json

import pytest

from kernelscope.errors import UsageError
from kernelscope.export.clickhouse import (ClickHouseSink, format_ts64, merge_types,
                                           quote_ident, server_has_datetime64, value_type)


@pytest.mark.parametrize("config, key", [
    ({"url": "localhost:8123"}, "url"),
    ({"database": "drop table"}, "database"),
    ({"batch_size": -1}, "batch_size"),
    ({"interval": 0}, "interval"),
    ({"max_queue": 5, "batch_size": 10}, "max_queue"),
    ({"create": "maybe"}, "create"),
    ({"pasword": "x"}, "pasword"),
])
def test_bad_config_names_the_key(config, key):
    with pytest.raises(UsageError) as e:
        ClickHouseSink(config, host="h")
    assert str(e.value).startswith(f"{key}:") and "\n" not in str(e.value)


def test_value_types():
    assert value_type(True) == "UInt8"
    assert value_type(-3) == "Int64"
    assert value_type(2**63) == "UInt64"
    assert value_type(1.0) == "Float64"
    assert value_type("x") == "String"
    assert value_type(["a", "b"]) == "Array(String)"
    assert value_type([1, 2]) == "Array(Int64)"
    assert value_type([1, 2.5]) == "Array(Float64)"
    assert value_type([]) is None and value_type(None) is None
    assert value_type({"a": 1}) == "String"
    assert merge_types("Int64", "Float64") == "Float64"
    assert merge_types("Int64", "UInt64") == "UInt64"
    assert merge_types(None, "String") == "String"
    assert merge_types("Int64", "String") == "String"


def test_ts64_format_and_version_gate():
    assert format_ts64(1700000000_123456789) == "2023-11-14 22:13:20.123456789"
    assert not server_has_datetime64("18.16.1")
    assert server_has_datetime64("20.1.2.4") and server_has_datetime64("24.3.1")


def test_rows_json_coerces_to_column_types():
    s = ClickHouseSink({"url": "http://127.0.0.1:9"}, host="node-1")
    try:
        old = {"host": "String", "ts": "DateTime('UTC')", "ts_ns": "UInt64", "pid": "Int64",
               "args": "Array(String)", "ok": "UInt8", "rtt": "Float64", "name": "String"}
        recs = [{"ts": 1700000000.5, "pid": 7.0, "args": ["a", None], "ok": True,
                 "rtt": float("nan"), "name": None, "host": "other", "unknown": 1}]
        row = json.loads(s.rows_json(recs, old, now_ns=0))
        assert row == {"host": "other", "ts": 1700000000, "ts_ns": 1700000000500000000, "pid": 7,
                       "args": ["a", ""], "ok": 1}       # the record's own host wins
        big = json.loads(s.rows_json([{"pid": 2**64 - 1, "ok": -1}], old, now_ns=1))
        assert big["pid"] == -1 and "ok" not in big        # u64 bits kept; no negative UInt8
        new = {"host": "String", "ts": "DateTime64(9, 'UTC')", "pid": "Int64"}
        row = json.loads(s.rows_json([{"pid": 1}], new, now_ns=1700000000_000000001))
        assert row == {"host": "node-1", "ts": "2023-11-14 22:13:20.000000001", "pid": 1}
    finally:
        s.batcher.close(timeout=0.1)
    assert quote_ident("a`b") == "`a\\`b`"


def test_unreachable_server_bounded_and_counted():
    s = ClickHouseSink({"url": "http://127.0.0.1:9", "batch_size": 5, "max_queue": 12,
                        "interval": 0.05, "retry_initial": 0.01, "retry_max": 0.05, "timeout": 1},
                       host="h")
    s.write("proc_exec", [{"ts": 1.0, "pid": i} for i in range(20)])
    s.write("other", [{"ts": 1.0, "pid": 1}])
    st = s.stats()
    s.close()
    assert (st["queued"], st["dropped"]) == (12, 9)
    assert s.stats()["dropped"] == 21 and s.stats()["sent"] == 0
