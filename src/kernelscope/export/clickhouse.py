"""ClickHouse sink: records (exec events, flows, ...) inserted in batches over ClickHouse's
HTTP interface into MergeTree tables that the sink creates and extends from the records,
with a `host` column so that every agent of a fleet can share one cluster.

Built by the agent from `[exporters.clickhouse]` as `ClickHouseSink(config, host=...)`.
Settings (all optional; see docs/fleet.md):

  url            HTTP interface, default "http://localhost:8123"
  database       default "kernelscope" (created if missing, unless create = false)
  user           default "default"
  password       default "" (sent as X-ClickHouse-User / X-ClickHouse-Key headers)
  batch_size     rows per INSERT (default 5000)
  max_queue      rows held while ClickHouse is slow or down (default 100000); past it
                 new rows are dropped and counted
  interval       seconds between inserts of partial batches (default 5)
  timeout        seconds per HTTP request (default 10)
  retry_initial  first backoff after a failed insert, seconds (default 1); doubles
  retry_max      longest backoff, seconds (default 30)
  tables         only these tables are exported (default: every table written)
  create         create the database and tables, add new columns (default true)

Schema: one table per record table, `ENGINE = MergeTree() PARTITION BY toYYYYMMDD(ts)
ORDER BY (host, ts)`. Column types come from the Python values: bool -> UInt8, int ->
Int64 (UInt64 past 2^63), float -> Float64, str -> String, list of str -> Array(String)
(of ints -> Array(Int64), of floats -> Array(Float64)), dict and other lists -> String
(JSON). `ts` (UNIX seconds) is DateTime64(9, 'UTC') on ClickHouse >= 20.1; older servers
have no DateTime64, so there `ts` is DateTime('UTC') and `ts_ns` (UInt64) keeps the
nanoseconds. A field first seen later is added with ALTER TABLE ADD COLUMN; a None value
is left out (the column default: 0, '' or []). `host` is the record's own `host` field
(the agent stamps it) or else the sink's host name.
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from kernelscope import __version__
from kernelscope.export.base import Sink
from kernelscope.export.batching import Batcher, BatchedSinkMixin, Config, PermanentError, RetryableError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# ClickHouse exception codes that mean "this data or statement is wrong": retrying the
# same batch cannot help (parse errors, type mismatches, syntax)
PERMANENT_CODES = {6, 26, 27, 32, 33, 38, 41, 43, 44, 53, 62, 69, 70, 72, 117, 130, 131, 386}
_CODE = re.compile(r"Code: (\d+)")


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def value_type(v) -> str | None:
    """ClickHouse column type for a Python value; None when it says nothing (None, [])."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "UInt8"
    if isinstance(v, int):
        return "UInt64" if v > (1 << 63) - 1 else "Int64"
    if isinstance(v, float):
        return "Float64"
    if isinstance(v, str):
        return "String"
    if isinstance(v, (list, tuple)):
        kinds = {value_type(x) for x in v if x is not None}
        if not kinds:
            return None
        if kinds <= {"Int64", "UInt64", "UInt8"}:
            return "Array(Int64)" if "UInt64" not in kinds else "Array(UInt64)"
        if kinds <= {"Int64", "UInt64", "UInt8", "Float64"}:
            return "Array(Float64)"
        if kinds == {"String"}:
            return "Array(String)"
        return "String"
    if hasattr(v, "item"):
        return value_type(v.item())
    if hasattr(v, "tolist"):
        return value_type(v.tolist())
    return "String"


def merge_types(a: str | None, b: str | None) -> str | None:
    """The type that holds values of both (for one batch's inference)."""
    if a is None or a == b:
        return b if a is None else a
    if b is None:
        return a
    nums = ("UInt8", "Int64", "UInt64", "Float64")
    if a in nums and b in nums:
        if "Float64" in (a, b):
            return "Float64"
        if "UInt64" in (a, b):
            return "UInt64"
        return "Int64"
    if a.startswith("Array(") and b.startswith("Array("):
        return "Array(String)"
    return "String"


def _coerce(v, ctype: str):
    """A Python value -> the JSON value for a column of type `ctype` (None: leave out)."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict, str, bytes)):
        v = v.item()
    base = ctype
    if base.startswith("Nullable(") or base.startswith("LowCardinality("):
        base = base[base.index("(") + 1:-1]
    try:
        if base.startswith("Array("):
            inner = base[6:-1]
            if not isinstance(v, (list, tuple)):
                v = [v]
            vals = [_coerce(x, inner) for x in v]
            return [x for x in vals if x is not None] if inner != "String" else \
                [x if x is not None else "" for x in vals]
        if base in ("UInt8", "UInt16", "UInt32", "UInt64", "Int8", "Int16", "Int32", "Int64"):
            if isinstance(v, float):
                if not math.isfinite(v):
                    return None
                v = int(v)
            v = int(v)
            if base.startswith("U"):
                return v if 0 <= v < (1 << 64) else None
            if (1 << 63) <= v < (1 << 64):
                v -= 1 << 64        # a u64 in a signed column: same bits, as toInt64() does
            return v if -(1 << 63) <= v < (1 << 63) else None
        if base in ("Float32", "Float64"):
            v = float(v)
            return v if math.isfinite(v) else None
        if base == "String":
            if isinstance(v, str):
                return v
            if isinstance(v, (bytes, bytearray)):
                return bytes(v).decode("utf-8", errors="replace")
            if isinstance(v, (dict, list, tuple)):
                return json.dumps(v, default=str, ensure_ascii=False)
            return str(v)
    except (TypeError, ValueError):
        return None
    return v


def format_ts64(ns: int) -> str:
    """UNIX ns -> 'YYYY-MM-DD hh:mm:ss.nnnnnnnnn' (UTC), what DateTime64(9) parses."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + f".{frac:09d}"


def record_ns(rec: dict, now_ns: int) -> int:
    if type(rec.get("ts_ns")) is int and rec["ts_ns"] >= 10**17:    # UNIX ns, not boot time
        return rec["ts_ns"]
    ts = rec.get("ts")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool) and ts > 0:
        sec = math.floor(ts)
        return int(sec) * 1_000_000_000 + int(round((ts - sec) * 1e9))
    return now_ns


def server_has_datetime64(version: str) -> bool:
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (20, 1)


class ClickHouseHTTP:
    """The few HTTP calls the sink makes."""

    def __init__(self, url: str, user: str, password: str, timeout: float):
        self.url = url.rstrip("/") + "/"
        self.headers = {"X-ClickHouse-User": user, "User-Agent": f"kernelscope/{__version__}"}
        if password:
            self.headers["X-ClickHouse-Key"] = password
        self.timeout = timeout

    def query(self, sql: str, body: bytes | None = None) -> str:
        """Run `sql` (with `body` appended as INSERT data); raises RetryableError or
        PermanentError."""
        if body is None:
            url, data = self.url, sql.encode()
        else:
            url, data = self.url + "?" + urllib.parse.urlencode({"query": sql}), body
        req = urllib.request.Request(url, data=data, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", errors="replace").strip()
            m = _CODE.search(text)
            code = int(m.group(1)) if m else None
            msg = f"ClickHouse {self.url}: {text.splitlines()[0][:300] if text else f'HTTP {e.code}'}"
            if code in PERMANENT_CODES:
                err = PermanentError(msg)
            else:
                err = RetryableError(msg)
            err.code = code
            raise err
        except (urllib.error.URLError, OSError) as e:
            raise RetryableError(f"ClickHouse {self.url}: {getattr(e, 'reason', e)}")


class ClickHouseSink(BatchedSinkMixin, Sink):
    """Batches of records -> INSERT ... FORMAT JSONEachRow, schema created on the way."""

    name = "clickhouse"

    def __init__(self, config: dict | None = None, host: str | None = None):
        c = Config("exporters.clickhouse", config)
        url = c.str("url", "http://localhost:8123")
        parsed = urllib.parse.urlsplit(url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise c.error("url", f"must be an http:// or https:// URL, not {url!r}")
        self.database = c.str("database", "kernelscope")
        if not _IDENT.match(self.database or ""):
            raise c.error("database", f"must be a plain name (letters, digits, _), not {self.database!r}")
        user = c.str("user", "default")
        password = c.str("password", "")
        batch_size = c.int("batch_size", 5000, maximum=10_000_000)
        max_queue = c.int("max_queue", 100_000, maximum=100_000_000)
        if max_queue < batch_size:
            raise c.error("max_queue", f"must be at least batch_size ({batch_size}), not {max_queue}")
        interval = c.seconds("interval", 5.0)
        self.timeout = c.seconds("timeout", 10.0)
        retry_initial = c.seconds("retry_initial", 1.0)
        retry_max = c.seconds("retry_max", 30.0)
        if retry_max < retry_initial:
            raise c.error("retry_max", f"must be at least retry_initial ({retry_initial})")
        tables = c.str_list("tables")
        self.tables = set(tables) if tables is not None else None
        self.create = c.bool("create", True)
        c.check_unknown()
        # credentials in the URL would end up in logs: take them out
        if parsed.username:
            user = urllib.parse.unquote(parsed.username)
            password = urllib.parse.unquote(parsed.password or "") or password
            url = urllib.parse.urlunsplit(parsed._replace(netloc=parsed.hostname + (
                f":{parsed.port}" if parsed.port else "")))
        self.url = url
        self.host = host or socket.gethostname()
        self.http = ClickHouseHTTP(url, user, password, self.timeout)
        self._columns: dict[str, dict[str, str]] = {}   # table -> column -> type
        self._version: str | None = None
        self._db_ready = False
        self._schema_lock = threading.Lock()
        self.counters = {"columns_added": 0, "tables_created": 0}
        self.batcher = Batcher("clickhouse", self._send, batch_size=batch_size, max_queue=max_queue,
                               interval=interval, retry_initial=retry_initial, retry_max=retry_max,
                               flush_timeout=self.timeout)

    # -- Sink interface --

    def write(self, table: str, records: list[dict]) -> None:
        if not records or (self.tables is not None and table not in self.tables):
            return
        self.batcher.put(table, records)

    def close(self) -> None:
        self.batcher.close()

    def stats(self) -> dict:
        return {**self.batcher.stats(), **self.counters}

    # -- schema --

    def server_version(self) -> str:
        if self._version is None:
            self._version = self.http.query("SELECT version()").strip()
        return self._version

    def _load_columns(self, table: str) -> dict[str, str]:
        text = self.http.query(
            f"SELECT name, type FROM system.columns WHERE database = '{self.database}' "
            f"AND table = '{table}' FORMAT TabSeparated")
        cols = {}
        for line in text.splitlines():
            if "\t" in line:
                name, typ = line.split("\t", 1)
                cols[name] = typ.replace("\\'", "'")
        return cols

    def _ensure_schema(self, table: str, rows: list[dict]) -> dict[str, str]:
        """Column -> type for `table`, creating the table or adding columns that `rows`
        need; returns the table's columns."""
        with self._schema_lock:
            cols = self._columns.get(table)
            if cols is None:
                cols = self._load_columns(table)
                if not cols:
                    if not self.create:
                        raise PermanentError(f"ClickHouse table {self.database}.{table} does not exist "
                                             f"and [exporters.clickhouse] create = false")
                    self._create_table(table, rows)
                    cols = self._load_columns(table)
                self._columns[table] = cols
            wanted: dict[str, str | None] = {}
            for r in rows:
                for k, v in r.items():
                    if k in cols:
                        continue
                    wanted[k] = merge_types(wanted.get(k), value_type(v))
            added = False
            for name, typ in wanted.items():
                if typ is None or not _IDENT.match(name):
                    continue
                if not self.create:
                    continue
                try:
                    self.http.query(f"ALTER TABLE {self._qual(table)} ADD COLUMN {quote_ident(name)} {typ}")
                    self.counters["columns_added"] += 1
                except PermanentError as e:
                    if getattr(e, "code", None) != 44:   # another agent added it first
                        raise
                added = True
            if added:
                cols = self._columns[table] = self._load_columns(table)
            return cols

    def _qual(self, table: str) -> str:
        return f"{quote_ident(self.database)}.{quote_ident(table)}"

    def _create_table(self, table: str, rows: list[dict]) -> None:
        if not self._db_ready:
            self.http.query(f"CREATE DATABASE IF NOT EXISTS {quote_ident(self.database)}")
            self._db_ready = True
        dt64 = server_has_datetime64(self.server_version())
        cols = {"host": "String", "ts": "DateTime64(9, 'UTC')" if dt64 else "DateTime('UTC')"}
        if not dt64:
            cols["ts_ns"] = "UInt64"
        types: dict[str, str | None] = {}
        for r in rows:
            for k, v in r.items():
                if k in cols:
                    continue
                types[k] = merge_types(types.get(k), value_type(v))
        for k, t in types.items():
            if t is not None and _IDENT.match(k):
                cols[k] = t
        body = ", ".join(f"{quote_ident(k)} {t}" for k, t in cols.items())
        self.http.query(f"CREATE TABLE IF NOT EXISTS {self._qual(table)} ({body}) "
                        f"ENGINE = MergeTree() PARTITION BY toYYYYMMDD(ts) ORDER BY (host, ts)")
        self.counters["tables_created"] += 1

    # -- rows --

    def rows_json(self, rows: list[dict], cols: dict[str, str], now_ns: int) -> bytes:
        ts_type = cols.get("ts", "DateTime")
        dt64 = ts_type.startswith("DateTime64")
        has_ts_ns = "ts_ns" in cols
        lines = []
        for r in rows:
            ns = record_ns(r, now_ns)
            host = r.get("host")
            out = {"host": host if isinstance(host, str) and host else self.host,
                   "ts": format_ts64(ns) if dt64 else ns // 1_000_000_000}
            if has_ts_ns:
                out["ts_ns"] = ns
            for k, v in r.items():
                if k in ("ts", "ts_ns", "host"):
                    continue
                t = cols.get(k)
                if t is None:
                    continue
                cv = _coerce(v, t)
                if cv is not None:
                    out[k] = cv
            lines.append(json.dumps(out, ensure_ascii=False, separators=(",", ":")))
        return ("\n".join(lines) + "\n").encode()

    def _send(self, table: str, rows: list[dict]) -> None:
        if not _IDENT.match(table):
            raise PermanentError(f"ClickHouse: table name {table!r} is not a plain name")
        cols = self._ensure_schema(table, rows)
        body = self.rows_json(rows, cols, time.time_ns())
        names = ["host", "ts"] + (["ts_ns"] if "ts_ns" in cols else [])
        seen = set(names)
        for r in rows:
            for k in r:
                if k in cols and k not in seen:
                    seen.add(k)
                    names.append(k)
        try:
            self.http.query(f"INSERT INTO {self._qual(table)} ({', '.join(quote_ident(n) for n in names)}) "
                            f"FORMAT JSONEachRow", body)
        except (RetryableError, PermanentError) as e:
            if getattr(e, "code", None) in (60, 16):   # table/column gone: reload the schema
                with self._schema_lock:
                    self._columns.pop(table, None)
                raise RetryableError(str(e))
            raise


__all__ = ["ClickHouseSink", "value_type", "format_ts64", "quote_ident"]
