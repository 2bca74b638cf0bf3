"""SIGTERM under exec load: the agent drains its rings, flushes the store, exits 0, and
leaves no BPF program loaded; every exec it received is in the store."""

import subprocess
import sys
import time

import pytest

from agent_support import AgentProc, unique_binary

pytestmark = pytest.mark.kernel

LOAD = """
import os, sys, time
end = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end:
    pid = os.fork()
    if pid == 0:
        os.execv(sys.argv[1], [sys.argv[1]])
    os.waitpid(pid, 0)
    n += 1
print(n)
"""


def test_sigterm_under_load_loses_nothing(tmp_path, no_leaks):
    name = "kss" + str(int(time.time() * 1000))[-9:]
    binary = unique_binary(tmp_path, name)
    agent = AgentProc(tmp_path)
    with agent:
        load = subprocess.Popen([sys.executable, "-c", LOAD, str(binary), "6"], stdout=subprocess.PIPE, text=True)
        time.sleep(2.5)
        rc = agent.stop()          # while the load still runs
        made = int(load.communicate(timeout=30)[0])
    assert rc == 0, agent.stderr
    final = agent.final_status()
    exec_mod = final["modules"]["exec"]
    received = exec_mod["received"]
    assert received > 100
    assert exec_mod["lost"] == 0
    store = final["sinks"]["store"]
    assert store["errors"] == 0 and store["pending"] == 0
    assert store["written"] == store["accepted"] == received
    # the file, opened read-only now that the agent is gone, holds every received exec
    r = subprocess.run([sys.executable, "-m", "kernelscope", "query", "SELECT count(*) AS n, "
                        f"count(*) FILTER (WHERE comm = '{name}') AS ours FROM proc_exec",
                        "--store", str(agent.store), "--format", "csv"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    n, ours = map(int, r.stdout.splitlines()[1].split(","))
    assert n == received
    assert 0 < ours <= made
    assert f"{received} events received, 0 lost, {received} rows written" in agent.stderr
    assert not agent.store.with_name(agent.store.name + ".agent.json").exists()
