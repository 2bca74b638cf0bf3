"""tcp_flow (tcplife, tcptop, map): real TCP traffic between two network namespaces joined
by a veth pair (two "hosts"), exact bytes, resets, loss, a burst, the join and the map.

Own namespaces ks232a-/ks232b-<pid>, veth ks232-<pid>, subnets 10.232.1.0/30 and
fd00:232:1::/64; all removed at the end. Ports are unique per test, so traffic from
other processes on the machine never matches.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ks_cmd, run_ks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

V4 = ("10.232.1.1", "10.232.1.2")
V6 = ("fd00:232:1::1", "fd00:232:1::2")

# A server: accept connections; from each read `expect` bytes (or until EOF), send
# `reply` bytes, close. Prints "ready" once listening.
SERVER = textwrap.dedent("""
    import ctypes, socket, sys
    ctypes.CDLL(None).prctl(15, b"ks232srv", 0, 0, 0)
    fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.listen(1024)
    expect, reply, conns = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    print("ready", flush=True)
    for _ in range(conns):
        c, _a = s.accept()
        got = 0
        while got < expect:
            d = c.recv(1 << 20)
            if not d:
                break
            got += len(d)
        if reply:
            c.sendall(b"r" * reply)
        c.close()
    sys.stdin.read()   # stay alive (cmdline readable from /proc) until the test ends
""")

# A client: `conns` connections one after another; each sends `send` bytes, shuts
# down its sending side, reads until EOF. Prints one JSON line per connection.
CLIENT = textwrap.dedent("""
    import ctypes, json, os, socket, sys, time
    ctypes.CDLL(None).prctl(15, b"ks232cli", 0, 0, 0)
    fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    send, conns, hold = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    for _ in range(conns):
        c = socket.socket(fam, socket.SOCK_STREAM)
        try:
            c.connect((sys.argv[1], int(sys.argv[2])))
        except OSError as e:
            print(json.dumps({"error": e.errno, "lport": c.getsockname()[1]}), flush=True)
            c.close()
            continue
        lport = c.getsockname()[1]
        c.sendall(b"s" * send)
        if hold:
            print(json.dumps({"holding": lport, "pid": os.getpid()}), flush=True)
            time.sleep(hold)
        c.shutdown(socket.SHUT_WR)
        got = 0
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            got += len(d)
        c.close()
        print(json.dumps({"lport": lport, "got": got, "pid": os.getpid()}), flush=True)
""")


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


class Hosts:
    """Two namespaces joined by a veth pair; a = client host, b = server host."""

    def __init__(self):
        tag = os.getpid() % 100000
        self.a, self.b = f"ks232a-{tag}", f"ks232b-{tag}"
        self.veth = f"ks232-{tag}"[:15]
        sh("ip", "netns", "add", self.a)
        sh("ip", "netns", "add", self.b)
        sh("ip", "link", "add", self.veth + "a", "netns", self.a, "type", "veth",
           "peer", "name", self.veth + "b", "netns", self.b)
        for ns, end, i in ((self.a, "a", 0), (self.b, "b", 1)):
            dev = self.veth + end
            sh("ip", "-n", ns, "addr", "add", f"{V4[i]}/30", "dev", dev)
            sh("ip", "-n", ns, "addr", "add", f"{V6[i]}/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.inode = {ns: os.stat(f"/run/netns/{ns}").st_ino for ns in (self.a, self.b)}
        self.procs: list[subprocess.Popen] = []

    def run(self, ns: str, script: str, *args) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script,
                              *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def server(self, addr: str, port: int, expect: int, reply: int, conns: int = 1):
        p = self.run(self.b, SERVER, addr, port, expect, reply, conns)
        line = p.stdout.readline()
        assert line.strip() == "ready", p.stderr.read()
        return p

    def client(self, addr: str, port: int, send: int, conns: int = 1, hold: float = 0):
        return self.run(self.a, CLIENT, addr, port, send, conns, hold)

    def done(self, p: subprocess.Popen, timeout: float = 30) -> None:
        """Let a server finish (its stdin closed) and check it did."""
        p.stdin.close()
        assert p.wait(timeout) == 0, p.stderr.read()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        sh("ip", "netns", "del", self.a, check=False)
        sh("ip", "netns", "del", self.b, check=False)


@pytest.fixture(scope="module")
def hosts():
    h = Hosts()
    yield h
    h.close()


_port = [23200 + os.getpid() % 1000 * 10]


def next_port() -> int:
    _port[0] += 1
    return _port[0]


def client_results(p: subprocess.Popen, timeout: float = 60) -> list[dict]:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_flows(ft, want, timeout: float = 10.0, live: bool = False) -> list[dict]:
    """Poll the flow table until `want(records)` holds; returns the matching records."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        closed, lv = ft.poll()
        got += closed
        recs = got + (lv if live else [])
        hit = want(recs)
        if hit:
            return hit
        time.sleep(0.05)
    raise AssertionError(f"flows not seen; got {[(r['laddr'], r['lport'], r['raddr'], r['rport']) for r in got][-20:]}")


def ends(port: int, server_addr: str, n: int = 2):
    def want(recs):
        mine = [r for r in recs if (r["rport"] == port and r["raddr"] == server_addr)
                or (r["lport"] == port and r["laddr"] == server_addr)]
        return mine if len(mine) >= n else None
    return want


class Tool:
    """A CLI tool as a subprocess, started once it says its probes are attached."""

    def __init__(self, *args: str):
        self.p = subprocess.Popen(ks_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        deadline = time.monotonic() + 30
        self.err = ""
        while "attached" not in self.err:
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise AssertionError(f"tool not ready: {self.err}{self.p.stderr.read()}")
            r, _, _ = select.select([self.p.stderr], [], [], 0.2)
            if r:
                self.err += self.p.stderr.readline()

    def stop(self, timeout: float = 30) -> tuple[str, str]:
        time.sleep(0.3)
        self.p.send_signal(signal.SIGINT)
        out, err = self.p.communicate(timeout=timeout)
        assert self.p.returncode == 0, err
        return out, self.err + err


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_exact_bytes_tcplife_and_flow_table(hosts, no_leaks, family):
    from kernelscope.net.flows import open_flow_table
    srv_addr, cli_addr = (V4[1], V4[0]) if family == "ipv4" else (V6[1], V6[0])
    n, m = 1_234_567, 345_678
    port = next_port()
    tool = Tool("tcplife", "-w", "--json")
    try:
        with open_flow_table() as ft:
            srv = hosts.server(srv_addr, port, n, m)
            res = client_results(hosts.client(srv_addr, port, n))
            assert res[0]["got"] == m
            recs = wait_flows(ft, ends(port, srv_addr))
    finally:
        out, err = tool.stop()
    hosts.done(srv, 10)
    cli = next(r for r in recs if r["direction"] == "client")
    ser = next(r for r in recs if r["direction"] == "server")
    assert (cli["tx_bytes"], cli["rx_bytes"]) == (n, m)
    assert (ser["tx_bytes"], ser["rx_bytes"]) == (m, n)
    assert cli["pid"] == res[0]["pid"] and cli["comm"] == "ks232cli"
    assert ser["pid"] == srv.pid and ser["comm"] == "ks232srv"
    assert "-c" in (ser["cmdline"] or "")
    assert cli["netns"] == hosts.inode[hosts.a] and ser["netns"] == hosts.inode[hosts.b]
    assert (cli["laddr"], cli["lport"], cli["raddr"], cli["rport"]) == \
        (cli_addr, res[0]["lport"], srv_addr, port)
    assert cli["close_reason"] == "fin" and not cli["connect_failed"]
    assert cli["srtt_us"] > 0 and cli["min_rtt_us"] > 0
    assert cli["end_ts"] >= cli["start_ts"] and cli["duration_ms"] > 0
    # tcplife saw the same connection with the same exact bytes
    lines = [json.loads(x) for x in out.splitlines()]
    flows = [x for x in lines if x.get("type") == "flow" and x["lport"] == res[0]["lport"]
             and x["rport"] == port]
    assert len(flows) == 1, out[-2000:]
    f = flows[0]
    assert (f["pid"], f["comm"], f["laddr"], f["raddr"]) == (cli["pid"], "ks232cli", cli_addr, srv_addr)
    assert (f["tx_bytes"], f["rx_bytes"]) == (n, m)
    assert f["duration_ms"] > 0
    assert lines[-1]["type"] == "summary" and lines[-1]["lost"] == 0


def test_tcplife_text_columns(hosts, no_leaks):
    port = next_port()
    tool = Tool("tcplife", "-D", str(port))
    srv = hosts.server(V4[1], port, 1000, 2000)
    res = client_results(hosts.client(V4[1], port, 1000))
    time.sleep(0.5)
    out, err = tool.stop()
    hosts.done(srv, 10)
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert out.splitlines()[0].split() == ["PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT",
                                           "TX_BYTES", "RX_BYTES", "MS"]
    assert len(rows) == 1, out     # -D keeps only the client end (remote port = server)
    pid, comm, laddr, lport, raddr, rport, tx, rx, ms = rows[0]
    assert (int(pid), comm, laddr, int(lport), raddr, int(rport), int(tx), int(rx)) == \
        (res[0]["pid"], "ks232cli", V4[0], res[0]["lport"], V4[1], port, 1000, 2000)
    assert float(ms) > 0
    assert "0 events lost" in err


def test_live_flows_read_from_map(hosts, no_leaks):
    from kernelscope.net.flows import open_flow_table
    port = next_port()
    n = 300_000
    with open_flow_table() as ft:
        srv = hosts.server(V4[1], port, n + 1, 10)    # reads until the client's EOF
        cli = hosts.client(V4[1], port, n, hold=3)
        hold = json.loads(cli.stdout.readline())
        rec = wait_flows(ft, lambda recs: [r for r in recs if r["lport"] == hold["holding"]
                                           and r["rport"] == port and r["open"]
                                           and r["tx_bytes"] == n] or None, live=True)[0]
        assert rec["end_ts"] is None and rec["state"] == "ESTABLISHED"
        assert rec["pid"] == hold["pid"] and rec["direction"] == "client"
        res = client_results(cli)
        closed = wait_flows(ft, lambda recs: [r for r in recs if r["lport"] == hold["holding"]
                                              and r["rport"] == port] or None)[0]
        assert not closed["open"] and closed["tx_bytes"] == n and closed["rx_bytes"] == 10
        assert closed["start_ns"] == rec["start_ns"]
    hosts.done(srv, 10)
    assert res[0]["got"] == 10


def test_refused_connect_is_a_reset_and_failed_connect(hosts, no_leaks):
    from kernelscope.net.flows import open_flow_table
    port = next_port()   # nobody listens
    with open_flow_table() as ft:
        res = client_results(hosts.client(V4[1], port, 10))
        assert res[0]["error"] == 111      # ECONNREFUSED
        rec = wait_flows(ft, lambda recs: [r for r in recs if r["rport"] == port
                                           and r["raddr"] == V4[1]] or None)[0]
    assert rec["direction"] == "client" and rec["comm"] == "ks232cli"
    assert rec["resets_received"] == 1 and not rec["established"]
    assert rec["connect_failed"] and rec["close_reason"] == "refused"
    assert rec["close_from_state"] == "SYN_SENT"
    assert rec["lport"] == res[0]["lport"]
    assert (rec["tx_bytes"], rec["rx_bytes"]) == (0, 0)


def nft(ns: str, script: str) -> None:
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def nft_counter(ns: str, table: str, name: str) -> int:
    r = sh("ip", "netns", "exec", ns, "nft", "-j", "list", "counter", "inet", table, name)
    for obj in json.loads(r.stdout)["nftables"]:
        if "counter" in obj:
            return obj["counter"]["packets"]
    raise AssertionError(r.stdout)


def test_loss_gives_retransmits_and_drops(hosts, no_leaks):
    from kernelscope.net.flows import open_flow_table
    port = next_port()
    n = 2_000_000
    table = "ks232loss"
    # drop ~1 in 8 data packets arriving at the server: they reach the server's socket
    # (early demux), so each drop is one of the server flow's
    nft(hosts.b, f"""
        table inet {table} {{
            counter dropped {{ }}
            chain input {{
                type filter hook input priority 0;
                tcp dport {port} meta length > 200 numgen random mod 8 == 0 counter name dropped drop
            }}
        }}
    """)
    try:
        with open_flow_table() as ft:
            srv = hosts.server(V4[1], port, n, 1000)
            res = client_results(hosts.client(V4[1], port, n), timeout=120)
            recs = wait_flows(ft, ends(port, V4[1]), timeout=30)
        dropped = nft_counter(hosts.b, table, "dropped")
    finally:
        sh("ip", "netns", "exec", hosts.b, "nft", "delete", "table", "inet", table, check=False)
    hosts.done(srv, 10)
    cli = next(r for r in recs if r["direction"] == "client")
    ser = next(r for r in recs if r["direction"] == "server")
    assert res[0]["got"] == 1000
    assert dropped > 0
    assert cli["retransmits"] > 0
    # every packet the rule dropped is one of the server flow's drops; any other drop
    # of that flow is a duplicate (TCP_OLD_DATA...) of a retransmitted segment
    assert dropped <= ser["drops"] <= dropped + cli["retransmits"], (ser["drops"], dropped)
    assert ser["last_drop_reason"] and ser["last_drop_reason_name"]   # the kernel's reason
    # exact bytes despite the retransmissions
    assert (cli["tx_bytes"], ser["rx_bytes"]) == (n, n)


def test_burst_of_500_connections_all_in_tcplife(hosts, no_leaks):
    port = next_port()
    count = 500
    tool = Tool("tcplife", "--json", "-D", str(port))
    srv = hosts.server(V4[1], port, 10, 10, conns=count)
    res = client_results(hosts.client(V4[1], port, 10, conns=count), timeout=120)
    hosts.done(srv, 30)
    time.sleep(0.5)
    out, err = tool.stop()
    lines = [json.loads(x) for x in out.splitlines()]
    summary = lines[-1]
    flows = {x["lport"] for x in lines if x.get("type") == "flow" and x["rport"] == port}
    assert len(res) == count
    assert summary["type"] == "summary"
    missing = {r["lport"] for r in res} - flows
    # every connection, or exactly as many missing as reported lost or evicted
    assert len(missing) <= summary["lost"] + summary["evicted"]
    if not summary["lost"] and not summary["evicted"]:
        assert not missing
    assert all(x["tx_bytes"] == 10 and x["rx_bytes"] == 10
               for x in lines if x.get("type") == "flow" and x["rport"] == port)


def test_conversation_joined_across_namespaces(hosts, no_leaks):
    from kernelscope.net.flows import open_flow_table
    from kernelscope.net.servicemap import join_conversations
    port = next_port()
    with open_flow_table() as ft:
        srv = hosts.server(V6[1], port, 5000, 7000)
        res = client_results(hosts.client(V6[1], port, 5000))
        recs = wait_flows(ft, ends(port, V6[1]))
    hosts.done(srv, 10)
    convs = [c for c in join_conversations(recs) if c["server_port"] == port]
    assert len(convs) == 1
    c = convs[0]
    assert c["joined"]
    assert (c["client_pid"], c["client_comm"]) == (res[0]["pid"], "ks232cli")
    assert (c["server_pid"], c["server_comm"]) == (srv.pid, "ks232srv")
    assert (c["client_netns"], c["server_netns"]) == (hosts.inode[hosts.a], hosts.inode[hosts.b])
    assert (c["bytes_client_to_server"], c["bytes_server_to_client"]) == (5000, 7000)
    assert c["client"]["rx_bytes"] == c["server"]["tx_bytes"]


def test_map_json_edge_and_svg(hosts, no_leaks, tmp_path):
    port = next_port()
    conns, n, m = 3, 40_000, 90_000
    tool = Tool("map", "--duration", "6", "--format", "json")
    srv = hosts.server(V4[1], port, n, m, conns=conns)
    res = client_results(hosts.client(V4[1], port, n, conns=conns))
    refused = client_results(hosts.client(V4[1], port + 500, 1))
    out, err = tool.p.communicate(timeout=30)
    assert tool.p.returncode == 0, err
    hosts.done(srv, 10)
    assert all(r["got"] == m for r in res) and refused[0]["error"] == 111
    doc = json.loads(out)
    edge = [e for e in doc["edges"] if e["service"] == f"{V4[1]}:{port}"]
    assert len(edge) == 1, doc["edges"]
    e = edge[0]
    assert (e["src"], e["dst_workload"]) == ("ks232cli", "ks232srv")
    assert e["connections"] == conns and e["failed_connects"] == 0
    assert (e["bytes_sent"], e["bytes_received"]) == (conns * n, conns * m)
    assert e["rtt_p50_us"] > 0 and e["rtt_samples"] == conns
    bad = [x for x in doc["edges"] if x["service"] == f"{V4[1]}:{port + 500}"]
    assert len(bad) == 1 and bad[0]["failed_connects"] == 1 and bad[0]["resets"] == 1
    # svg through graphviz
    svg = tmp_path / "map.svg"
    r = run_ks("map", "--duration", "1", "--format", "svg", "-o", str(svg))
    assert r.returncode == 0, r.stderr
    text = svg.read_text()
    assert "<svg" in text and text.rstrip().endswith("</svg>")


def test_poll_columns_same_flows(hosts, no_leaks):
    from kernelscope.net.flows import open_flow_table
    port = next_port()
    with open_flow_table() as ft:
        srv = hosts.server(V4[1], port, 4321, 1234)
        res = client_results(hosts.client(V4[1], port, 4321))
        got = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(got) < 2:
            closed, _live = ft.poll_columns()
            if closed:
                got += [dict(zip(closed, row)) for row in zip(*closed.values())
                        if dict(zip(closed, row))["rport"] == port or dict(zip(closed, row))["lport"] == port]
            time.sleep(0.05)
    hosts.done(srv, 10)
    cli = next(r for r in got if r["direction"] == "client")
    ser = next(r for r in got if r["direction"] == "server")
    assert (cli["lport"], cli["tx_bytes"], cli["rx_bytes"]) == (res[0]["lport"], 4321, 1234)
    assert (ser["tx_bytes"], ser["rx_bytes"], ser["pid"]) == (1234, 4321, srv.pid)
    assert ser["cmdline"] and "-c" in ser["cmdline"]


HOLDER = textwrap.dedent("""
    import json, socket, sys
    conns = [socket.create_connection((sys.argv[1], int(sys.argv[2]))) for _ in range(int(sys.argv[3]))]
    for c in conns:
        c.sendall(b"h")
    print(json.dumps([c.getsockname()[1] for c in conns]), flush=True)
    sys.stdin.readline()          # hold every connection open until told
    for c in conns:
        c.close()
""")


def test_table_full_evictions_are_counted(hosts, no_leaks):
    from kernelscope.net.flows import open_flow_table
    port = next_port()
    conns, size = 120, 32
    with open_flow_table(max_flows=size) as ft:
        srv = hosts.server(V4[1], port, 1, 0, conns=conns)
        holder = hosts.run(hosts.a, HOLDER, V4[1], port, conns)
        ports = set(json.loads(holder.stdout.readline()))
        hosts.done(srv, 30)
        time.sleep(0.2)
        full = ft.stats()          # 120 client ends open at once in a table of 32
        holder.stdin.write("\n")
        holder.stdin.close()
        assert holder.wait(30) == 0
        time.sleep(0.3)
        closed, _live = ft.poll()
        st = ft.stats()
    assert full["max_flows"] == size and full["live"] <= size
    assert full["evicted"] >= conns - size, full
    mine = {r["lport"] for r in closed if r["rport"] == port and r["lport"] in ports}
    # every client end that did not come out at close was evicted, and counted
    assert conns - len(mine) <= st["evicted"] + st["insert_failed"] + st["lost"]
    assert len(mine) < conns


def test_bad_input_is_one_line(no_leaks):
    r = run_ks("tcptop", "0")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    r = run_ks("map", "--format", "png")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    r = run_ks("tcplife", "-D", "70000")
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_tcptop_shows_the_busy_connection(hosts, no_leaks):
    port = next_port()
    n = 3_000_000
    tool = Tool("tcptop", "-C", "--json", "1")
    srv = hosts.server(V4[1], port, n, 10)
    res = client_results(hosts.client(V4[1], port, n))
    time.sleep(1.5)
    out, err = tool.stop()
    hosts.done(srv, 10)
    lines = [json.loads(x) for x in out.splitlines()]
    rows = [r for x in lines if x["type"] == "interval" for r in x["rows"]
            if r["lport"] == res[0]["lport"] and r["rport"] == port]
    assert sum(r["tx_delta"] for r in rows) == n, out[-3000:]
    assert sum(r["rx_delta"] for r in rows) == 10
    r = run_ks("tcptop", "-C", "-P", "0.5", "1")
    assert r.returncode == 0 and "PID" in r.stdout and "CONNS" in r.stdout, r.stderr
