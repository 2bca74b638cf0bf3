"""The embedded store: typed Arrow appends, schema growth, retention, read-only queries."""

import os
import subprocess
import sys
import time

import pyarrow as pa
import pytest

from kernelscope import store
from kernelscope.store.duck import Store, StoreError, write_run_file
from kernelscope.store.schema import TS, to_arrow


def rows(n, t0=None, **extra):
    t0 = t0 or time.time()
    return [{"ts": t0 + i, "pid": i, "comm": f"c{i}", "args": ["a", str(i)], "ingest_ts": t0, **extra}
            for i in range(n)]


def test_append_types_and_query(tmp_path):
    s = Store(tmp_path / "s.duckdb")
    s.append("proc_exec", to_arrow(rows(3), {"ts": TS, "pid": pa.uint32()}))
    t = s.query("SELECT * FROM proc_exec ORDER BY pid")
    assert t.num_rows == 3
    assert t.schema.field("pid").type == pa.uint32()
    assert pa.types.is_timestamp(t.schema.field("ts").type)
    assert t.column("args").to_pylist()[2] == ["a", "2"]
    # a new column appears: the table grows, old rows read NULL
    s.append("proc_exec", to_arrow(rows(1, container_id="abc"), {"ts": TS}))
    t = s.query("SELECT container_id FROM proc_exec ORDER BY container_id NULLS FIRST")
    assert t.column("container_id").to_pylist() == [None, None, None, "abc"]
    assert s.rows_written == {"proc_exec": 4}
    s.close()


def test_read_only_queries(tmp_path):
    s = Store(tmp_path / "s.duckdb")
    s.append("t", to_arrow(rows(1), {}))
    for bad in ("DROP TABLE t", "DELETE FROM t", "INSERT INTO t SELECT * FROM t",
                "SELECT 1; DROP TABLE t", "ATTACH 'x.db'", "COPY t TO '/tmp/x.csv'"):
        with pytest.raises(StoreError, match="read-only"):
            s.query(bad)
    with pytest.raises(StoreError, match="query:"):
        s.query("SELECT nope FROM t")
    assert s.query("SELECT count(*) AS n FROM t").column("n").to_pylist() == [1]
    s.close()


def test_retention_by_age(tmp_path):
    s = Store(tmp_path / "s.duckdb", max_age_seconds=3600)
    old = time.time() - 7200
    s.append("t", to_arrow(rows(5, t0=old), {"ingest_ts": TS}))
    s.append("t", to_arrow(rows(2), {"ingest_ts": TS}))
    assert s.retain() == 5
    assert s.query("SELECT count(*) AS n FROM t").column("n").to_pylist() == [2]
    s.close()


def test_retention_by_size(tmp_path):
    s = Store(tmp_path / "s.duckdb")
    t0 = time.time() - 1000
    n = 150_000
    for i in range(4):
        blob = os.urandom(16 * n).hex()
        data = pa.table({"pid": pa.array(range(n), pa.uint32()),
                         "blob": [blob[j * 32:(j + 1) * 32] for j in range(n)],
                         "ingest_ts": pa.array([int((t0 + i) * 1e6)] * n, pa.int64()).cast(TS)})
        s.append("t", data)       # batch i is older than batch i+1
    s.checkpoint()
    full = s.size_bytes()
    s.max_size = int(full * 0.6)
    deleted = s.retain()
    after = s.query("SELECT count(*) AS n FROM t").column("n")[0].as_py()
    assert deleted > 0 and after == 4 * n - deleted
    assert s.size_bytes() <= s.max_size
    # the oldest rows went first: the newest batch is whole
    newest = s.query("SELECT count(*) AS n, epoch(max(ingest_ts)) AS hi FROM t "
                     "WHERE ingest_ts = (SELECT max(ingest_ts) FROM t)").to_pylist()[0]
    assert newest["n"] == n and newest["hi"] == pytest.approx(t0 + 3, abs=1e-3)
    assert s.retain() == 0 or s.size_bytes() <= s.max_size
    s.close()


def test_python_api_reads_file_when_no_agent(tmp_path):
    path = tmp_path / "s.duckdb"
    s = Store(path)
    s.append("proc_exec", to_arrow(rows(4), {"ts": TS}))
    s.close()
    t = store.query("SELECT count(*) AS n FROM proc_exec", path)
    assert isinstance(t, pa.Table) and t.column("n").to_pylist() == [4]
    df = store.df("SELECT comm FROM proc_exec ORDER BY pid", path)
    assert list(df["comm"]) == ["c0", "c1", "c2", "c3"]
    # a stale run file (dead pid) is ignored
    write_run_file(path, 2 ** 22 + 12345, "http://127.0.0.1:1")
    assert store.agent_url_for(path) is None
    assert store.query("SELECT 1 AS one", path).column("one").to_pylist() == [1]
    with pytest.raises(StoreError, match="read-only"):
        store.query("DROP TABLE proc_exec", path)


def test_query_cli_errors_are_one_line(tmp_path):
    def q(*args):
        return subprocess.run([sys.executable, "-m", "kernelscope", "query", *args],
                              capture_output=True, text=True, timeout=30)
    r = q("SELECT 1", "--store", str(tmp_path / "none.duckdb"))
    assert r.returncode == 1 and "no store at" in r.stderr and r.stderr.count("\n") == 1
    path = tmp_path / "s.duckdb"
    s = Store(path)
    s.append("t", to_arrow(rows(2), {}))
    s.close()
    r = q("SELECT nope FROM t", "--store", str(path))
    assert r.returncode == 1 and r.stderr.startswith("kernelscope: query:") and r.stderr.count("\n") == 1
    r = q("SELECT pid, comm FROM t ORDER BY pid", "--store", str(path), "--format", "csv")
    assert r.returncode == 0 and r.stdout.splitlines() == ["pid,comm", "0,c0", "1,c1"]
    r = q("SELECT pid, comm FROM t ORDER BY pid", "--store", str(path))
    assert r.stdout.splitlines()[0].split() == ["pid", "comm"] and "(2 rows)" in r.stdout
    r = q("SELECT pid FROM t ORDER BY pid", "--store", str(path), "--format", "json")
    assert r.stdout.splitlines() == ['{"pid": 0}', '{"pid": 1}']


def test_stale_run_file_with_live_pid_falls_back_to_file(tmp_path):
    """A run file left by a killed agent whose pid now belongs to another process."""
    from agent_support import free_port
    path = tmp_path / "s.duckdb"
    s = Store(path)
    s.append("t", to_arrow(rows(3), {}))
    s.close()
    write_run_file(path, os.getpid(), f"http://127.0.0.1:{free_port()}")
    assert store.query("SELECT count(*) AS n FROM t", path).column("n").to_pylist() == [3]
