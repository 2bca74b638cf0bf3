"""Agent overhead: CPU and RSS of `kernelscope agent` (every module) at idle and under a
workload of new loopback TCP connections plus execs made by this script.

    sudo .venv/bin/python bench/agent_overhead.py [--seconds 20] [--conns 1000] [--execs 500]

Prints a Markdown table (docs/benchmarks.md) and checks the goals: idle < 1% of a core
and < 150 MB RSS; under load < 25% of a core, zero lost events, store write lag < 5 s,
and every exec the workload made is in the store.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) in kB."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:")):
                k, v = line.split(":")
                vals[k] = int(v.split()[0])
    return vals["VmRSS"], vals["RssAnon"]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def result_dropped(st: dict) -> int:
    return st["sinks"]["store"].get("dropped", 0)


def received(url: str) -> dict:
    st = get(url + "/api/status")
    return {n: m.get("received", 0) for n, m in st["modules"].items() if m["state"] == "running"}


def measure(pid: int, seconds: float) -> dict:
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    peak = (0, 0)
    while time.monotonic() - t0 < seconds:
        time.sleep(0.5)
        r = rss_kb(pid)
        peak = max(peak, r)
    wall = time.monotonic() - t0
    cpu = (cpu_ticks(pid) - c0) / CLK
    return {"cpu_pct": 100 * cpu / wall, "rss_mb": peak[0] / 1024, "rss_anon_mb": peak[1] / 1024,
            "seconds": wall}


TCP_LOAD = r"""
import socket, sys, threading, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(1024); port = srv.getsockname()[1]
def serve():
    while True:
        try:
            c, _ = srv.accept()
        except OSError:
            return
        c.close()
threading.Thread(target=serve, daemon=True).start()
n, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    due = start + n / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    c = socket.create_connection(("127.0.0.1", port))
    c.close()
    n += 1
print(n)
"""

EXEC_LOAD = r"""
import os, sys, time
binary, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
n, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    due = start + n / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    pid = os.posix_spawn(binary, [binary], {})
    os.waitpid(pid, 0)
    n += 1
print(n)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--conns", type=float, default=1000.0, help="new TCP connections per second")
    ap.add_argument("--execs", type=float, default=500.0, help="execs per second")
    ap.add_argument("--modules", help="comma-separated modules (default: all this kernel supports)")
    ap.add_argument("--exec-uid", type=int, help="modules.exec.uid (e.g. an unused uid: no exec events)")
    ap.add_argument("--idle-only", action="store_true", help="measure the idle phase only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("agent_overhead: run as root (the agent loads BPF programs)")

    tmp = Path(tempfile.mkdtemp(prefix="ks-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    store = tmp / "bench.duckdb"
    cfg = tmp / "agent.toml"
    mods = "" if not args.modules else \
        "modules = [" + ", ".join(f'"{m}"' for m in args.modules.split(",")) + "]\n"
    exec_cfg = "" if args.exec_uid is None else f"[modules.exec]\nuid = {args.exec_uid}\n"
    cfg.write_text(f'[agent]\nlisten = "127.0.0.1:{port}"\nstatus_file = "{tmp / "final.json"}"\n{mods}'
                   f'[store]\npath = "{store}"\n{exec_cfg}')
    binary = tmp / "ksbenchexec"
    shutil.copy("/bin/true", binary)
    agent = subprocess.Popen([sys.executable, "-m", "kernelscope", "agent", "--config", str(cfg)],
                             stderr=open(tmp / "agent.log", "w"))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                st = get(url + "/api/status")
                break
            except OSError:
                if agent.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"agent did not start: {(tmp / 'agent.log').read_text()}")
                time.sleep(0.2)
        modules = [n for n, m in st["modules"].items() if m["state"] == "running"]
        skipped = {n: m["reason"] for n, m in st["modules"].items() if m["state"] != "running"}
        time.sleep(3)   # let start-up settle
        r0 = received(url)
        idle = measure(agent.pid, args.seconds)
        r1 = received(url)
        idle["events"] = {k: r1[k] - r0.get(k, 0) for k in r1}
        if args.idle_only:
            agent.terminate()
            rc = agent.wait(60)
            ev = idle["events"]
            print(f"modules: {', '.join(modules)}; idle {idle['seconds']:.0f} s: agent CPU "
                  f"{idle['cpu_pct']:.2f}% of a core, peak RSS {idle['rss_mb']:.0f} MB "
                  f"({idle['rss_anon_mb']:.0f} MB anonymous); events {sum(ev.values())}; exit {rc}")
            return 0

        tcp = subprocess.Popen([sys.executable, "-c", TCP_LOAD, str(args.conns), str(args.seconds)],
                               stdout=subprocess.PIPE, text=True)
        exe = subprocess.Popen([sys.executable, "-c", EXEC_LOAD, str(binary), str(args.execs),
                                str(args.seconds)], stdout=subprocess.PIPE, text=True)
        load = measure(agent.pid, args.seconds)
        r2 = received(url)
        load["events"] = {k: r2[k] - r1.get(k, 0) for k in r2}
        n_conns = int(tcp.communicate()[0])
        n_execs = int(exe.communicate()[0])
        deadline = time.monotonic() + 60    # let the store catch up before counting
        while get(url + "/api/status")["sinks"]["store"]["pending"] and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.5)
        st = get(url + "/api/status")
        lost = sum(m.get("lost", 0) for m in st["modules"].values())
        lag = st["sinks"]["store"]["max_write_lag_seconds"]
        stored = urllib.request.urlopen(urllib.request.Request(
            url + "/api/query", data=b"SELECT count(*) AS n FROM proc_exec WHERE comm = 'ksbenchexec'",
            method="POST"), timeout=30)
        n_stored = json.load(stored)["rows"][0]["n"]
        agent.terminate()
        rc = agent.wait(60)
    finally:
        if agent.poll() is None:
            agent.kill()
    result = {
        "modules": modules, "skipped": skipped,
        "idle": idle, "load": load, "conns_made": n_conns, "execs_made": n_execs,
        "conn_rate": n_conns / args.seconds, "exec_rate": n_execs / args.seconds,
        "execs_stored": n_stored, "lost": lost, "store_dropped": st["sinks"]["store"]["dropped"], "max_write_lag_s": lag, "exit_code": rc,
    }
    goals = {
        "idle CPU < 1% of a core": idle["cpu_pct"] < 1.0,
        "idle RSS < 150 MB": idle["rss_mb"] < 150,
        "load CPU < 25% of a core": load["cpu_pct"] < 25.0,
        "zero lost events": lost == 0 and result_dropped(st) == 0,
        "store write lag < 5 s": lag < 5.0,
        "every exec stored": n_stored == n_execs,
    }
    result["goals"] = goals
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"modules: {', '.join(modules)}" + (f"; skipped: {skipped}" if skipped else ""))
        print()
        print("| phase | agent CPU (% of one core) | peak RSS (MB) | of which anonymous (MB) |")
        print("|---|---|---|---|")
        print(f"| idle, {idle['seconds']:.0f} s | {idle['cpu_pct']:.2f} | {idle['rss_mb']:.0f} | "
              f"{idle['rss_anon_mb']:.0f} |")
        print(f"| {result['conn_rate']:.0f} TCP conn/s + {result['exec_rate']:.0f} exec/s, "
              f"{load['seconds']:.0f} s | {load['cpu_pct']:.1f} | {load['rss_mb']:.0f} | "
              f"{load['rss_anon_mb']:.0f} |")
        print()
        print(f"execs made {n_execs}, stored {n_stored}; connections made {n_conns}; lost events {lost}; "
              f"store rows dropped {result['store_dropped']}; "
              f"max store write lag {lag:.2f} s; agent exit code {rc}")
        for phase in ("idle", "load"):
            ev = result[phase]["events"]
            print(f"events received during {phase}: " + ", ".join(f"{k} {v}" for k, v in ev.items())
                  + f" ({sum(ev.values()) / result[phase]['seconds']:.0f}/s)")
        for g, ok in goals.items():
            print(f"  {'PASS' if ok else 'FAIL'}  {g}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
