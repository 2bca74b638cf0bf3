"""Column types for store tables, derived from the probe's BTF layout and field meaning.

The decoder says what each field is (numpy dtype from BTF, semantic typedef); this
maps that to Arrow types, so a table's schema is written nowhere by hand:
  ks_boot_ns_t             -> timestamp[us] (UTC; the decoder gives wall-clock seconds)
  char[N]                  -> string
  u8/u16/u32/u64, i8..i64  -> the same width and signedness
  *_name siblings          -> string
Columns a probe's own decode() adds or reshapes (argv lists, bools) and enrichment
columns not in `ENRICH_TYPES` are inferred by Arrow from their values.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

TS = pa.timestamp("us")

_INT = {
    ("i", 1): pa.int8(), ("i", 2): pa.int16(), ("i", 4): pa.int32(), ("i", 8): pa.int64(),
    ("u", 1): pa.uint8(), ("u", 2): pa.uint16(), ("u", 4): pa.uint32(), ("u", 8): pa.uint64(),
}

# added by the agent's enrichment to every record (see agent/context.py)
ENRICH_TYPES = {
    "host": pa.string(),
    "exe": pa.string(), "cmdline": pa.string(), "proc_uid": pa.int64(), "proc_user": pa.string(),
    "parent_pid": pa.int64(), "parent_comm": pa.string(),
    "cgroup_path": pa.string(), "container_id": pa.string(), "container_runtime": pa.string(),
    "pod_uid": pa.string(), "pod_qos": pa.string(), "systemd_unit": pa.string(),
    "pod_name": pa.string(), "pod_namespace": pa.string(), "pod_labels": pa.string(),
    "ingest_ts": TS,
}


def arrow_type(dt: np.dtype, meaning: str | None) -> pa.DataType | None:
    if meaning == "ks_boot_ns_t":
        return TS
    if dt.kind == "S":
        return pa.string()
    if dt.kind == "b":
        return pa.bool_()
    if dt.kind in "iu" and dt.subdtype is None:
        return _INT.get((dt.kind, dt.itemsize))
    if dt.kind == "f":
        return pa.float64() if dt.itemsize == 8 else pa.float32()
    return None


def decoder_types(decoder) -> dict[str, pa.DataType]:
    """name -> Arrow type for every field a runtime.decode.Decoder emits."""
    out: dict[str, pa.DataType] = {}
    for name in decoder._fields:
        t = arrow_type(decoder.dtype.fields[name][0], decoder.meanings.get(name))
        if t is not None:
            out[name] = t
        meaning = decoder.meanings.get(name)
        if meaning in ("ks_retval_t", "ks_errno_t", "ks_uid_t", "ks_signal_t", "ks_drop_reason_t"):
            out[name + "_name"] = pa.string()
    return out


def _column(values: list, typ: pa.DataType | None) -> pa.Array:
    if typ is not None and pa.types.is_timestamp(typ):
        # wall-clock seconds (float) or datetime values
        if values and isinstance(next((v for v in values if v is not None), None), (int, float)):
            arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            us = (arr * 1e6).round()
            mask = np.isnan(us)
            return pa.array(np.where(mask, 0, us).astype(np.int64), type=pa.int64(),
                            mask=mask).cast(typ)
        return pa.array(values, type=typ)
    if typ is not None and pa.types.is_uint64(typ):
        # pyarrow converts Python ints above 2^63 one slow step at a time (~10 us each)
        try:
            return pa.array(np.fromiter(values, dtype=np.uint64, count=len(values)))
        except (TypeError, ValueError, OverflowError):
            pass   # None or negative values: the general path below
    if typ is not None:
        try:
            return pa.array(values, type=typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass  # the probe's decode() changed this field's type: infer below
    try:
        return pa.array(values)
    except OverflowError:
        return _column(values, pa.uint64())   # unsigned 64-bit ids above 2^63


def to_arrow(records: list[dict], types: dict[str, pa.DataType]) -> pa.Table:
    """Records (dicts) -> an Arrow table, typed by `types` where known, inferred elsewhere."""
    names: dict[str, None] = {}
    for r in records:
        for k in r:
            names.setdefault(k, None)
    cols = {}
    for name in names:
        vals = [r.get(name) for r in records]
        typ = types.get(name, ENRICH_TYPES.get(name))
        arr = _column(vals, typ)
        if pa.types.is_null(arr.type):
            arr = arr.cast(pa.string())   # all-None column: keep it, as text
        elif pa.types.is_list(arr.type) and pa.types.is_null(arr.type.value_type):
            arr = arr.cast(pa.list_(pa.string()))   # only empty lists so far
        cols[name] = arr
    return pa.table(cols)


def duck_type(t: pa.DataType) -> str:
    """DuckDB column type for an Arrow type (used when a table gains a column)."""
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    m = {pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
         pa.uint8(): "UTINYINT", pa.uint16(): "USMALLINT", pa.uint32(): "UINTEGER",
         pa.uint64(): "UBIGINT", pa.float32(): "FLOAT", pa.float64(): "DOUBLE",
         pa.bool_(): "BOOLEAN", pa.string(): "VARCHAR", pa.large_string(): "VARCHAR"}
    if t in m:
        return m[t]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return duck_type(t.value_type) + "[]"
    return "VARCHAR"
