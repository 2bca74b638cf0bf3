"""ClickHouse sink end to end against a real clickhouse-server (Debian's package), started
here with a temporary config and data directory on free ports: two agents (two sinks
with different host names) share one server; queries answer per host and fleet-wide."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kernelscope.export.clickhouse import ClickHouseSink

pytestmark = pytest.mark.e2e

SERVER = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/data/tmp/</tmp_path>
  <user_files_path>{d}/data/user_files/</user_files_path>
  <format_schema_path>{d}/data/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <timezone>UTC</timezone>
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></default>
    <agent><password>{password}</password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></agent>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClickHouseServer:
    """A private clickhouse-server: temp dir, free ports, stopped and removed at the end."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ks-clickhouse-"))
        self.http_port, self.tcp_port = free_port(), free_port()
        self.password = "agent-pw"
        (self.dir / "config.xml").write_text(CONFIG.format(d=self.dir, http=self.http_port, tcp=self.tcp_port))
        (self.dir / "users.xml").write_text(USERS.format(password=self.password))
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30) -> None:
        self.proc = subprocess.Popen([SERVER, f"--config-file={self.dir / 'config.xml'}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     cwd=self.dir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                log = (self.dir / "server.err.log")
                raise RuntimeError(f"clickhouse-server exited {self.proc.returncode}: {err[-500:]} "
                                   f"{log.read_text()[-1000:] if log.exists() else ''}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as r:
                    if r.read().strip() == b"Ok.":
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("clickhouse-server did not answer /ping within %ss" % timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def query(self, sql: str) -> str:
        req = urllib.request.Request(self.url + "/", data=sql.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def rows(self, sql: str) -> list[dict]:
        return [json.loads(line) for line in self.query(sql + " FORMAT JSONEachRow").splitlines()]

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    if not os.path.exists(SERVER):
        pytest.skip("clickhouse-server is not installed (Debian package clickhouse-server)")
    srv = ClickHouseServer()
    try:
        srv.start()
    except RuntimeError as e:
        srv.cleanup()
        pytest.skip(f"clickhouse-server cannot start here: {e}")
    yield srv
    srv.cleanup()


def sink_for(server, host: str, **cfg) -> ClickHouseSink:
    config = {"url": server.url, "database": "fleet", "user": "agent", "password": server.password,
              "interval": 0.2, "timeout": 5, "retry_initial": 0.05, "retry_max": 0.3, **cfg}
    return ClickHouseSink(config, host=host)


def exec_rec(pid: int, args: list[str], ts: float, retval: int = 0) -> dict:
    """Shaped as the proc_exec probe's decoded records."""
    return {"ts": ts, "pid": pid, "tid": pid, "ppid": 1, "uid": 0, "uid_name": "root",
            "retval": retval, "retval_name": None if retval == 0 else "ENOENT",
            "args_truncated": False, "cgroup_id": 2**63 + pid, "comm": args[0].rsplit("/", 1)[-1],
            "filename": args[0], "args": args}


def flow_rec(i: int, ts: float, tx: int, rx: int) -> dict:
    return {"ts": ts, "pid": 500 + i, "comm": "curl", "saddr": "10.0.0.1", "daddr": f"10.0.1.{i}",
            "sport": 40000 + i, "dport": 443, "tx_bytes": tx, "rx_bytes": rx,
            "duration_ns": 1_000_000 * (i + 1), "rtt_us": 12.5}


def test_two_agents_share_one_cluster(server):
    t0 = time.time()
    a = sink_for(server, "agent-a", batch_size=4)          # several INSERTs
    b = sink_for(server, "agent-b", batch_size=1000)
    a_exec = [exec_rec(1000 + i, ["/bin/ls", f"-{i}", "with space"], t0 + i * 0.001) for i in range(7)]
    b_exec = [exec_rec(2000 + i, ["/usr/bin/env", "x"], t0 + i, retval=-2) for i in range(3)]
    a_flow = [flow_rec(i, t0, tx=100 * i, rx=i) for i in range(5)]
    b_flow = [flow_rec(i, t0, tx=10, rx=1) for i in range(11)]
    for i in range(0, 7, 3):                                 # interleaved, as two agents would
        a.write("proc_exec", a_exec[i:i + 3])
        b.write("tcp_lifetime", b_flow[i:i + 3])
    b.write("tcp_lifetime", b_flow[9:])
    a.write("tcp_lifetime", a_flow)
    b.write("proc_exec", b_exec)
    # a field first seen later becomes a new column (ALTER TABLE ADD COLUMN)
    b.write("tcp_lifetime", [{**flow_rec(20, t0, 5, 5), "container": "web-1"}])
    a.flush(force=True)
    b.flush(force=True)
    st_a, st_b = a.stats(), b.stats()
    a.close()
    b.close()
    assert (st_a["sent"], st_a["dropped"], st_a["errors"], st_a["queued"]) == (12, 0, 0, 0), a.batcher.last_error
    assert (st_b["sent"], st_b["dropped"], st_b["errors"], st_b["queued"]) == (15, 0, 0, 0), b.batcher.last_error
    assert st_a["batches"] >= 4

    per_host = server.rows("SELECT host, count() AS n FROM fleet.proc_exec GROUP BY host ORDER BY host")
    assert per_host == [{"host": "agent-a", "n": "7"}, {"host": "agent-b", "n": "3"}]
    assert server.query("SELECT count() FROM fleet.proc_exec").strip() == "10"
    flows = server.rows("SELECT host, count() AS n, sum(tx_bytes) AS tx, sum(rx_bytes) AS rx "
                        "FROM fleet.tcp_lifetime GROUP BY host ORDER BY host")
    assert flows == [{"host": "agent-a", "n": "5", "tx": str(100 * (0 + 1 + 2 + 3 + 4)), "rx": "10"},
                     {"host": "agent-b", "n": "12", "tx": "115", "rx": "16"}]
    fleet = server.rows("SELECT uniqExact(host) AS hosts, count() AS n, sum(tx_bytes) AS tx "
                        "FROM fleet.tcp_lifetime")
    assert fleet == [{"hosts": "2", "n": "17", "tx": "1115"}]
    # exact values and types survive: arrays, big unsigned ints, timestamps, None
    row = server.rows("SELECT * FROM fleet.proc_exec WHERE host = 'agent-a' AND pid = 1003")[0]
    assert row["args"] == ["/bin/ls", "-3", "with space"]
    assert row["cgroup_id"] == str(2**63 + 1003)
    assert row["retval_name"] == "" and row["args_truncated"] == 0 and row["comm"] == "ls"
    cols = dict(line.split("\t")[:2] for line in server.query(
        "SELECT name, type FROM system.columns WHERE database = 'fleet' AND table = 'proc_exec' "
        "FORMAT TabSeparated").splitlines())
    assert cols["args"] == "Array(String)" and cols["cgroup_id"] == "UInt64" and cols["pid"] == "Int64"
    assert cols["host"] == "String" and cols["args_truncated"] == "UInt8"
    if cols["ts"].startswith("DateTime64"):
        got = server.query("SELECT toUnixTimestamp64Nano(ts) FROM fleet.proc_exec WHERE pid = 1003").strip()
    else:
        assert cols["ts"].startswith("DateTime") and cols["ts_ns"] == "UInt64"
        got = server.query("SELECT ts_ns FROM fleet.proc_exec WHERE pid = 1003").strip()
        assert server.query("SELECT toUInt32(ts) FROM fleet.proc_exec WHERE pid = 1003").strip() \
            == str(int(a_exec[3]["ts"]))
    assert abs(int(got) - a_exec[3]["ts"] * 1e9) < 1000
    failed = server.rows("SELECT host, countIf(retval < 0) AS failed FROM fleet.proc_exec "
                         "GROUP BY host ORDER BY host")
    assert failed == [{"host": "agent-a", "failed": "0"}, {"host": "agent-b", "failed": "3"}]
    assert server.rows("SELECT container FROM fleet.tcp_lifetime WHERE container != ''") == \
        [{"container": "web-1"}]


def test_server_down_then_back(server):
    s = sink_for(server, "agent-c", batch_size=5, max_queue=20, interval=0.1)
    s.write("proc_exec", [exec_rec(3000, ["/bin/true"], time.time())])
    s.flush(force=True)                                   # table exists, schema cached
    assert s.stats()["sent"] == 1
    server.stop()
    try:
        s.write("proc_exec", [exec_rec(3001 + i, ["/bin/true"], time.time()) for i in range(30)])
        deadline = time.monotonic() + 10
        while s.stats()["retries"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        st = s.stats()
        assert st["retries"] >= 2 and st["queued"] == 20 and st["dropped"] == 10 and st["sent"] == 1, st
    finally:
        server.start()
    deadline = time.monotonic() + 15
    while s.stats()["queued"] and time.monotonic() < deadline:
        s.flush(force=True)
        time.sleep(0.1)
    s.close()
    st = s.stats()
    assert (st["sent"], st["dropped"], st["queued"]) == (21, 10, 0), (st, s.batcher.last_error)
    got = server.query("SELECT count(), min(pid), max(pid) FROM fleet.proc_exec WHERE host = 'agent-c'")
    assert got.split() == ["21", "3000", "3020"]


def test_wrong_password_is_an_error_not_data(server):
    s = sink_for(server, "agent-d", password="nope", retry_max=0.1)
    s.write("proc_exec", [exec_rec(4000, ["/bin/true"], time.time())])
    s.flush(force=True)
    st = s.stats()
    s.close()
    assert st["errors"] >= 1 and st["sent"] == 0
    assert "password" in (s.batcher.last_error or "").lower()
    assert server.query("SELECT count() FROM fleet.proc_exec WHERE host = 'agent-d'").strip() == "0"
