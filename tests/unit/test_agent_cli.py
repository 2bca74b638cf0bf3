"""status/query without a running agent: one clear line, non-zero exit."""

import subprocess
import sys

from agent_support import free_port


def ks(*args):
    return subprocess.run([sys.executable, "-m", "kernelscope", *args], capture_output=True, text=True,
                          timeout=30)


def test_status_without_agent():
    port = free_port()
    r = ks("status", "--agent", f"http://127.0.0.1:{port}")
    assert r.returncode == 1
    assert r.stderr.startswith(f"kernelscope: no agent answers at http://127.0.0.1:{port}")
    assert r.stderr.count("\n") == 1 and not r.stdout


def test_status_store_without_agent(tmp_path):
    r = ks("status", "--store", str(tmp_path / "x.duckdb"))
    assert r.returncode == 1 and "no running agent writes" in r.stderr and r.stderr.count("\n") == 1


def test_query_unreachable_agent():
    r = ks("query", "SELECT 1", "--agent", f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "cannot reach the agent" in r.stderr and r.stderr.count("\n") == 1


def test_format_status():
    from kernelscope.tools.status import format_status
    text = format_status({
        "pid": 7, "host": "h", "uptime_seconds": 12, "cpu_seconds": 0.5, "rss_bytes": 100 << 20,
        "store": "/tmp/s.duckdb",
        "modules": {"exec": {"state": "running", "probes": ["proc_exec"], "received": 5, "lost": 0,
                             "decode_seconds": 0.01},
                    "flows": {"state": "skipped", "reason": "probe tcp_flow is not in this build"}},
        "sinks": {"store": {"written": 5, "errors": 0}}, "store_rows": {"proc_exec": 5}})
    assert "agent pid 7 on h, up 12s, CPU 0.50s, RSS 100.0 MiB" in text
    assert "exec       running  probes=proc_exec received=5 lost=0" in text
    assert "flows      skipped  probe tcp_flow is not in this build" in text
    assert "store rows written: proc_exec=5" in text
