"""A real Prometheus scrapes the agent; exec counts read back through its HTTP API match
the execs the test made; the store and `kernelscope query`/`status` agree."""

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
import uuid

import pytest

from agent_support import AgentProc, free_port, http_get, unique_binary, wait_for

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture
def prometheus(tmp_path):
    def start(target: str):
        port = free_port()
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                       "scrape_configs:\n  - job_name: kernelscope\n"
                       f"    static_configs:\n      - targets: ['{target}']\n")
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}",
                                 f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _ready(url), timeout=30), "prometheus did not start"
        started.append(proc)
        return url

    started = []
    yield start
    for p in started:
        p.terminate()
        p.wait(10)


def _ready(url):
    try:
        http_get(url + "/-/ready", timeout=1)
        return True
    except OSError:
        return False


def prom_query(url: str, expr: str):
    body = json.loads(http_get(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}"))
    assert body["status"] == "success", body
    res = body["data"]["result"]
    return float(res[0]["value"][1]) if res else None


@pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="prometheus not installed")
def test_prometheus_reads_exec_count(tmp_path, prometheus, no_leaks):
    name = "ksp" + uuid.uuid4().hex[:10]
    binary = unique_binary(tmp_path, name)
    n_ok, n_fail = 37, 4
    with AgentProc(tmp_path) as agent:
        prom = prometheus(f"127.0.0.1:{agent.port}")
        assert wait_for(lambda: prom_query(prom, 'up{job="kernelscope"}') == 1.0, timeout=20)
        for _ in range(n_ok):
            subprocess.run([str(binary)], check=True)
        for _ in range(n_fail):   # exec of a missing file fails: counted with result="error"
            subprocess.run([sys.executable, "-c",
                            f"import os\ntry: os.execv('{tmp_path}/missing-{name}', ['x'])\nexcept OSError: pass"])
        ok = wait_for(lambda: prom_query(prom, f'sum(kernelscope_exec_total{{comm="{name}",result="ok"}})')
                      == n_ok, timeout=20)
        assert ok, prom_query(prom, f'sum(kernelscope_exec_total{{comm="{name}"}})')
        # the exact same number went to the store, with context
        q = (f"SELECT count(*) AS n, min(exe) AS exe, min(host) AS host, min(parent_pid) AS p0, "
             f"max(parent_pid) AS p1, min(uid_name) AS user FROM proc_exec WHERE comm = '{name}'")
        assert wait_for(lambda: _query(agent, q)[0]["n"] == n_ok, timeout=10), (_query(agent, q), agent.status()["sinks"])
        got = _query(agent, q)[0]
        assert got["exe"] in (None, str(binary)) and got["host"] == socket.gethostname()
        assert got["p0"] == got["p1"] == os.getpid()      # context: the parent is this test
        assert got["user"] == "root"
        # self-observability series exist and are scraped too
        assert prom_query(prom, 'kernelscope_events_lost_total{module="exec"}') == 0.0
        assert prom_query(prom, 'kernelscope_agent_rss_bytes') > 10e6
        assert prom_query(prom, 'kernelscope_module_up{module="exec"}') == 1.0
        received = prom_query(prom, 'kernelscope_events_received_total{module="exec"}')
        assert received is not None and received >= n_ok
        # status through the CLI
        r = subprocess.run([sys.executable, "-m", "kernelscope", "status", "--agent", agent.url],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert "exec       running" in r.stdout and "lost=0" in r.stdout
        assert agent.stop() == 0
    assert "stopped:" in agent.stderr


def _query(agent, sql):
    r = subprocess.run([sys.executable, "-m", "kernelscope", "query", sql, "--store", str(agent.store),
                        "--format", "json"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]
