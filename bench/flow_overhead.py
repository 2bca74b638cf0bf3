#!/usr/bin/env python3
"""Flow-table overhead: nginx + wrk over loopback alone and under three per-connection
observers, interleaved round by round in one run so drift hits every mode alike.

Modes:
  baseline     nothing running
  kernelscope  the tcp_flow probe with a FlowTable polled every second (closed + live
               records decoded, cmdline added): what the agent and tcptop run
  bpftrace     the same per-connection byte accounting in bpftrace: sum of
               sock_send_length / sock_recv_length per socket, printed and deleted at
               tcp_destroy_sock
  tcpdump      `tcpdump -i lo -w FILE port P` (a full capture to a file)
  kernelscope-columns  the same, consumed with FlowTable.poll_columns() (columns,
               no dict per connection: what a columnar store insert needs)
  kernelscope-raw (only with --modes, for diagnosis) the probe with a consumer that
               reads the map and the ring but decodes nothing: the kernel-side cost
Workloads: `keepalive` (wrk's persistent connections: per-request cost) and `close`
("Connection: close": a new TCP connection per request, per-connection cost).
nginx runs on a private port with its own config in a temp dir (1 worker, 1 KiB file,
no access log); wrk -t1 -c32. Two measures: requests/s (compared with the baseline of
the same round), and CPU per request (nginx worker + wrk + the observer's process,
user + system, during the run), which a busy shared machine disturbs much less.

usage: python bench/flow_overhead.py [--rounds R] [--seconds S] [--workload keepalive|close|both]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import free_port, wait_line  # noqa: E402

NGINX_CONF = """
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
    }}
}}
"""

KS_RUNNER = textwrap.dedent("""
    import sys, time
    from kernelscope.net.flows import open_flow_table
    raw = sys.argv[1:] == ["raw"]
    columns = sys.argv[1:] == ["columns"]
    n = 0
    with open_flow_table() as ft:
        print("ready", flush=True)
        try:
            while True:
                time.sleep(1)
                if raw:   # diagnosis: take the records from the kernel, decode nothing
                    ft.map.lookup_batch()
                    n += len(ft.ring.read())
                    continue
                if columns:
                    closed, live = ft.poll_columns()
                    n += len(closed.get("sk_id", ()))
                    continue
                closed, live = ft.poll()
                n += len(closed)
        except KeyboardInterrupt:
            pass
        st = ft.stats()
    print(f"closed={n} lost={st['lost']} evicted={st['evicted']}", file=sys.stderr)
""")

BPFTRACE_PROG = """
tracepoint:sock:sock_send_length /args->protocol == 6 && args->ret > 0/ { @tx[args->sk] = @tx[args->sk] + args->ret; }
tracepoint:sock:sock_recv_length /args->protocol == 6 && args->ret > 0/ { @rx[args->sk] = @rx[args->sk] + args->ret; }
tracepoint:tcp:tcp_destroy_sock {
    printf("%d %d %d %d\\n", args->sport, args->dport, @tx[args->skaddr], @rx[args->skaddr]);
    delete(@tx[args->skaddr]); delete(@rx[args->skaddr]);
}
"""


def start_observer(mode: str, tmp: Path, port: int):
    if mode == "baseline":
        return None
    if mode in ("kernelscope", "kernelscope-raw", "kernelscope-columns"):
        extra = [mode.split("-")[1]] if "-" in mode else []
        p = subprocess.Popen([sys.executable, "-c", KS_RUNNER, *extra], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        wait_line(p, p.stdout, "ready")
    elif mode == "bpftrace":
        env = dict(os.environ, BPFTRACE_MAX_STRLEN="64")
        p = subprocess.Popen(["bpftrace", "-e", BPFTRACE_PROG], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
        wait_line(p, p.stdout, "Attaching")
        time.sleep(0.5)
    elif mode == "tcpdump":
        p = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-s", "0", "-w", str(tmp / "cap.pcap"),
                              "tcp", "port", str(port)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        wait_line(p, p.stderr, "listening on")
    else:
        raise ValueError(mode)
    # keep reading what the observer prints (bpftrace prints a line per connection):
    # a full pipe would block it and make it drop events, i.e. look cheaper than it is
    for stream in (p.stdout, p.stderr):
        threading.Thread(target=_drain, args=(stream, p), daemon=True).start()
    return p


def _drain(stream, p) -> None:
    n = 0
    for line in stream:
        n += 1
    p.lines = n


def stop_observer(p) -> None:
    if p is None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> float:
    """utime + stime of these processes (all threads), from /proc/PID/stat."""
    total = 0.0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / _TICK
    return total


def nginx_workers(master: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:
        return []


def wrk(port: int, seconds: float, workload: str, watch=()) -> tuple[float, float, int]:
    """(requests/s, CPU seconds of wrk + `watch` pids during the run, requests)."""
    cmd = ["wrk", "-t1", "-c32", f"-d{int(seconds)}s", f"http://127.0.0.1:{port}/index.html"]
    if workload == "close":
        cmd[1:1] = ["-H", "Connection: close"]
    before = cpu_seconds(watch)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _pid, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime + cpu_seconds(watch) - before
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    if p.returncode or not m or not n:
        raise RuntimeError(f"wrk failed:\n{out}{p.stderr.read()}")
    return float(m.group(1)), cpu, int(n.group(1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--workload", choices=["keepalive", "close", "both"], default="both")
    ap.add_argument("--modes", default="baseline,kernelscope,kernelscope-columns,bpftrace,tcpdump")
    a = ap.parse_args(argv)
    for exe in ("nginx", "wrk", "bpftrace", "tcpdump"):
        if not shutil.which(exe):
            sys.exit(f"flow_overhead: {exe} is not installed")
    modes = a.modes.split(",")
    workloads = ["keepalive", "close"] if a.workload == "both" else [a.workload]
    tmp = Path(tempfile.mkdtemp(prefix="ks-flowbench-"))
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_bytes(b"x" * 1024)
    port = free_port()
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(d=tmp, port=port))
    nginx = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
                              "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
    results: dict[tuple[str, str], list[float]] = {}
    cpu_per_req: dict[tuple[str, str], list[float]] = {}
    try:
        time.sleep(0.5)
        if nginx.poll() is not None:
            sys.exit(f"nginx failed: {nginx.stderr.read()}")
        for w in workloads:
            wrk(port, 1, w)   # warm up
        rng = random.Random(1)
        for r in range(a.rounds):
            for w in workloads:
                order = modes[:]
                rng.shuffle(order)
                for mode in order:
                    obs = start_observer(mode, tmp, port)
                    watch = nginx_workers(nginx.pid) + ([obs.pid] if obs else [])
                    try:
                        rps, cpu, n = wrk(port, a.seconds, w, watch)
                    finally:
                        stop_observer(obs)
                    results.setdefault((w, mode), []).append(rps)
                    cpu_per_req.setdefault((w, mode), []).append(cpu / n * 1e6)
                    print(f"round {r + 1} {w:<9} {mode:<15} {rps:>10.0f} req/s "
                          f"{cpu / n * 1e6:7.2f} us CPU/request", file=sys.stderr)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            nginx.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nnginx 1 worker + wrk -t1 -c32, {a.seconds:g} s per run, {a.rounds} interleaved rounds, "
          f"{os.cpu_count()} CPUs, kernel {os.uname().release}\n")
    # the machine may be shared: compare each mode with the baseline of its own round
    # (same minute), then take the median of those per-round ratios
    print("| workload | mode | median req/s | min | max | median of per-round ratio to baseline |")
    print("|---|---|---:|---:|---:|---:|")
    for w in workloads:
        base = results.get((w, "baseline"))
        for mode in modes:
            v = results[(w, mode)]
            rel = "-"
            if base:
                ratios = [x / b for x, b in zip(v, base)]
                rel = f"{(statistics.median(ratios) - 1) * 100:+.1f}%"
            print(f"| {w} | {mode} | {statistics.median(v):.0f} | {min(v):.0f} | {max(v):.0f} | {rel} |")
    # CPU per request is far less sensitive to other load on the machine than req/s:
    # nginx worker + wrk + the observer process, utime + stime, during the wrk run.
    # In-kernel BPF time runs in nginx's and wrk's syscalls and softirqs, so it is in.
    print("\n| workload | mode | CPU µs per request (median) | vs baseline |")
    print("|---|---|---:|---:|")
    for w in workloads:
        base = statistics.median(cpu_per_req[(w, "baseline")]) if (w, "baseline") in cpu_per_req else None
        for mode in modes:
            med = statistics.median(cpu_per_req[(w, mode)])
            rel = f"{(med / base - 1) * 100:+.1f}%" if base else "-"
            print(f"| {w} | {mode} | {med:.2f} | {rel} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
