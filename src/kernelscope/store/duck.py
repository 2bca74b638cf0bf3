"""The embedded store: one DuckDB file, one table per record kind, batched Arrow appends,
retention by age and size.

DuckDB allows one writing process per file. The agent owns the file while it runs
and answers queries through its HTTP API (/api/query, read-only statements on a
cursor of its own connection); `kernelscope query` and `kernelscope.store.query`
use that API when an agent is writing the store and open the file read-only
otherwise (see kernelscope/store/__init__.py).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import pyarrow as pa

from kernelscope.errors import KernelscopeError
from kernelscope.store.schema import duck_type

DEFAULT_PATH = "/var/lib/kernelscope/kernelscope.duckdb"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "SHOW", "DESCRIBE", "SUMMARIZE"}


class StoreError(KernelscopeError):
    pass


def _duckdb():
    try:
        import duckdb
    except ImportError:
        raise StoreError("the store needs duckdb: pip install 'kernelscope[agent]'")
    return duckdb


def run_file(path: str | os.PathLike) -> Path:
    """Where a running agent says it writes this store (pid and HTTP address)."""
    return Path(str(path) + ".agent.json")


def check_read_only(sql: str) -> None:
    """Refuse statements that would change the store (queries run beside the writer)."""
    duckdb = _duckdb()
    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise StoreError(f"query: {str(e).splitlines()[0]}")
    if not stmts:
        raise StoreError("query: empty SQL")
    for st in stmts:
        kind = str(st.type).rsplit(".", 1)[-1]
        if kind not in READ_ONLY_STATEMENTS:
            raise StoreError(f"query: only read-only statements are allowed, not {kind}")


class Store:
    """The writer side: owned by one process (the agent)."""

    def __init__(self, path: str | os.PathLike, max_age_seconds: float | None = None,
                 max_size_bytes: int | None = None):
        duckdb = _duckdb()
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one writer thread and a small buffer pool: the agent must stay light
            self.con = duckdb.connect(str(self.path), config={"threads": 1, "memory_limit": "64MB"})
        except (OSError, duckdb.Error) as e:
            msg = str(e).splitlines()[0]
            raise StoreError(f"cannot open store {self.path}: {msg}")
        self.max_age = max_age_seconds
        self.max_size = max_size_bytes
        self._lock = threading.Lock()
        self._columns: dict[str, dict[str, str]] = {}
        self.rows_written: dict[str, int] = {}
        self.rows_deleted = 0
        self.write_seconds = 0.0
        self.errors = 0
        self.last_error: str | None = None
        for (name,) in self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='main'").fetchall():
            self._columns[name] = self._table_columns(name)

    def _table_columns(self, table: str) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema='main' AND table_name=? ORDER BY ordinal_position", [table]).fetchall()
        return {n: t for n, t in rows}

    def append(self, table: str, data: pa.Table) -> None:
        """Append an Arrow table: creates the table, or adds columns it did not have."""
        if not _IDENT.match(table):
            raise StoreError(f"invalid table name {table!r}")
        if data.num_rows == 0:
            return
        t0 = time.perf_counter()
        with self._lock:
            cols = self._columns.get(table)
            self.con.register("_ks_batch", data)
            try:
                if cols is None:
                    self.con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM _ks_batch')
                    self._columns[table] = self._table_columns(table)
                else:
                    for f in data.schema:
                        if f.name not in cols:
                            self.con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{f.name}" {duck_type(f.type)}')
                    self._columns[table] = cols = self._table_columns(table)
                    self.con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _ks_batch')
            finally:
                self.con.unregister("_ks_batch")
        self.rows_written[table] = self.rows_written.get(table, 0) + data.num_rows
        self.write_seconds += time.perf_counter() - t0

    def tables(self) -> list[str]:
        return sorted(self._columns)

    def size_bytes(self) -> int:
        """Bytes in use by the database (blocks in use, not the file's high-water mark)."""
        with self._lock:
            # DuckDB wants a result read to its end before the connection does other work
            rows = self.con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchall()
            row = rows[0] if rows else None
        wal = Path(str(self.path) + ".wal")
        return (int(row[0]) * int(row[1]) if row else 0) + (wal.stat().st_size if wal.exists() else 0)

    def retain(self) -> int:
        """Apply retention: delete rows older than max_age, then the oldest rows while the
        database uses more than max_size. Returns rows deleted."""
        deleted = 0
        with self._lock:
            for table, cols in self._columns.items():
                if self.max_age and "ingest_ts" in cols:
                    n = self.con.execute(
                        f'DELETE FROM "{table}" WHERE ingest_ts < now()::TIMESTAMP - '
                        f'to_seconds(CAST(? AS DOUBLE))', [float(self.max_age)]).fetchall()[0][0]
                    deleted += n
        if self.max_size:
            size = self.size_bytes()
            if size > self.max_size:
                # delete the oldest share of every table that brings the store under the
                # limit, with 10% headroom; DuckDB frees space by row group (~122k rows),
                # so a limit far below one row group is only approximate
                share = min(1.0, (size - self.max_size) / size + 0.1)
                with self._lock:
                    for table, cols in self._columns.items():
                        if "ingest_ts" not in cols:
                            continue
                        cut = self.con.execute(
                            f'SELECT quantile_disc(ingest_ts, ?) FROM "{table}"', [share]).fetchall()[0][0]
                        if cut is None:
                            continue
                        deleted += self.con.execute(
                            f'DELETE FROM "{table}" WHERE ingest_ts <= ?', [cut]).fetchall()[0][0]
                    self.con.execute("CHECKPOINT")
        self.rows_deleted += deleted
        return deleted

    def query(self, sql: str, read_only: bool = True) -> pa.Table:
        """Run SQL on a cursor of the writer's connection (safe beside appends)."""
        if read_only:
            check_read_only(sql)
        cur = self.con.cursor()
        try:
            return run_sql(cur, sql)
        finally:
            cur.close()

    def checkpoint(self) -> None:
        with self._lock:
            self.con.execute("CHECKPOINT")

    def close(self) -> None:
        with self._lock:
            if self.con is not None:
                try:
                    self.con.execute("CHECKPOINT")
                finally:
                    self.con.close()
                    self.con = None


def run_sql(con, sql: str) -> pa.Table:
    """A statement on a DuckDB connection or cursor -> Arrow table; errors as StoreError."""
    duckdb = _duckdb()
    try:
        rel = con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    except duckdb.Error as e:
        raise StoreError(f"query: {str(e).splitlines()[0]}")


def open_read_only(path: str | os.PathLike):
    duckdb = _duckdb()
    p = Path(path)
    if not p.exists():
        raise StoreError(f"no store at {p} (start the agent, or pass --store PATH)")
    try:
        return duckdb.connect(str(p), read_only=True)
    except duckdb.Error as e:
        msg = str(e).splitlines()[0]
        if "lock" in msg.lower():
            raise StoreError(f"store {p} is locked by a running agent whose HTTP API could "
                             "not be reached: pass --agent URL")
        raise StoreError(f"cannot open store {p}: {msg}")


def write_run_file(path, pid: int, url: str) -> Path:
    rf = run_file(path)
    tmp = rf.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": pid, "url": url}))
    tmp.replace(rf)
    return rf
