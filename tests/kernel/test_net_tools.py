"""TCP tools (issue 4): tcpconnect, tcpaccept, tcpstates, tcpretrans, tcpdrop, tcprtt
against real connections between two network namespaces joined by a veth pair.

The namespaces, addresses (10.231.X.0/30, fd00:231:X::/64) and ports are this
module's own; every assertion selects records by them, so other activity on the
machine does not matter. Loss comes from an nftables rule in the server's
namespace (numgen random mod 5 == 0 -> counter drop), whose own counter is the
ground truth for tcpdrop.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ks_cmd, wait_attached

PY = sys.executable
TAG = os.getpid() % 100000
SUBNET = 100 + os.getpid() % 150

SERVER = r"""
import os, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(16)
print("ready", flush=True)
for _ in range(n):
    c, peer = s.accept()
    total = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        total += len(d)
    c.sendall(str(total).encode())
    time.sleep(0.05)
    c.close()
    print("served", peer[1], total, flush=True)
s.close()
"""

CLIENT = r"""
import json, socket, sys, time
host, port, nbytes, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
c = socket.socket(fam)
c.settimeout(30)
c.connect((host, port))
lport = c.getsockname()[1]
print(json.dumps({"lport": lport}), flush=True)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
time.sleep(pause)
sent = 0
while sent < nbytes:
    c.sendall(b"x" * 1000)
    sent += 1000
    time.sleep(0.001)
c.shutdown(socket.SHUT_WR)
reply = b""
while True:
    d = c.recv(100)
    if not d:
        break
    reply += d
c.close()
print(json.dumps({"lport": lport, "reply": reply.decode()}), flush=True)
"""

# each target: host port syncnt -> prints one JSON line with the outcome
CONNECTS = r"""
import errno, json, socket, sys, time
out = []
for spec in sys.argv[1:]:
    host, port, syncnt = spec.split(",")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    c = socket.socket(fam)
    if int(syncnt):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, int(syncnt))
    t = time.monotonic()
    try:
        c.connect((host, int(port)))
        err = 0
    except OSError as e:
        err = e.errno
    out.append({"host": host, "port": int(port), "err": errno.errorcode.get(err, err) if err else None,
                "lport": c.getsockname()[1], "secs": time.monotonic() - t})
    c.close()
print(json.dumps({"pid": __import__("os").getpid(), "comm": open("/proc/self/comm").read().strip(),
                  "results": out}), flush=True)
"""


def sh(*cmd: str, check: bool = True, input: str | None = None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=30)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


class Net:
    """Two namespaces (client, server) joined by a veth pair, IPv4 and IPv6."""

    def __init__(self):
        self.c, self.s = f"ks231c-{TAG}", f"ks231s-{TAG}"
        self.c4, self.s4 = f"10.231.{SUBNET}.1", f"10.231.{SUBNET}.2"
        self.c6, self.s6 = f"fd00:231:{SUBNET}::1", f"fd00:231:{SUBNET}::2"
        cv, sv = f"k231c{TAG}", f"k231s{TAG}"
        self.cleanup()
        sh("ip", "netns", "add", self.c)
        sh("ip", "netns", "add", self.s)
        sh("ip", "link", "add", cv, "type", "veth", "peer", "name", sv)
        sh("ip", "link", "set", cv, "netns", self.c)
        sh("ip", "link", "set", sv, "netns", self.s)
        for ns, dev, a4, a6 in ((self.c, cv, self.c4, self.c6), (self.s, sv, self.s4, self.s6)):
            sh("ip", "-n", ns, "addr", "add", f"{a4}/30", "dev", dev)
            sh("ip", "-n", ns, "addr", "add", f"{a6}/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")

    def cleanup(self):
        for ns in (self.c, self.s):
            sh("ip", "netns", "del", ns, check=False)

    def py(self, ns: str, code: str, *args) -> subprocess.Popen:
        # `ip netns exec` execs the command: the Popen pid is the Python's pid
        return subprocess.Popen(["ip", "netns", "exec", ns, PY, "-c", code, *map(str, args)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def server(self, host: str, port: int, n: int) -> subprocess.Popen:
        p = self.py(self.s, SERVER, host, port, n)
        line = p.stdout.readline()
        assert line.strip() == "ready", p.stderr.read()
        return p

    def nft_input_rule(self, table: str, rule: str) -> None:
        """A table of its own in the server namespace with one input-chain rule."""
        ruleset = (f"table inet {table} {{\n chain input {{\n"
                   f"  type filter hook input priority 0; policy accept;\n  {rule}\n }}\n}}\n")
        sh("ip", "netns", "exec", self.s, "nft", "-f", "-", input=ruleset)

    def nft_counter_packets(self, table: str) -> int:
        data = json.loads(sh("ip", "netns", "exec", self.s, "nft", "-j", "list", "table",
                             "inet", table))
        total = 0
        for item in data["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    total += expr["counter"]["packets"]
        return total

    def wait_quiet(self, port: int, timeout: float = 20.0) -> None:
        """Until no socket on `port` is in a state that may still send (TIME_WAIT aside)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = []
            for ns in (self.c, self.s):
                out = sh("ip", "netns", "exec", ns, "ss", "-Htan")
                busy += [ln for ln in out.splitlines()
                         if re.search(rf"[:\]]{port}\s", ln + " ")
                         and not ln.startswith(("TIME-WAIT", "LISTEN"))]
            if not busy:
                return
            time.sleep(0.1)
        raise AssertionError(f"connections on port {port} did not finish: {busy}")


@pytest.fixture(scope="module")
def net():
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode:
        pytest.skip("no network namespaces")
    n = Net()
    try:
        yield n
    finally:
        n.cleanup()


class Tool:
    """A kernelscope tool in --json mode, attached before the test makes traffic."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(ks_cmd(*args, "--json"), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        wait_attached(self.proc)

    def stop(self) -> tuple[list[dict], dict]:
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        assert "Traceback" not in err, err
        recs = [json.loads(line) for line in out.splitlines() if line.strip()]
        summary = [r for r in recs if r.get("type") == "summary"]
        assert len(summary) == 1, recs[-3:]
        return [r for r in recs if r.get("type") != "summary"], summary[0]


def finish(p: subprocess.Popen, timeout: float = 30) -> str:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return out


def test_tcpconnect_outcomes_ipv4_ipv6(net, no_leaks):
    """established, refused (RST: ECONNREFUSED) and timeout (SYNs dropped: ETIMEDOUT),
    each with the connecting process's pid and comm."""
    p_open, p_closed, p_dropped = 7101, 7102, 7103
    net.nft_input_rule("ks231conn", f"tcp dport {p_dropped} counter drop")
    srv4 = net.server(net.s4, p_open, 1)
    srv6 = net.server(net.s6, p_open, 1)
    tool = Tool("tcpconnect", "-P", str(p_open), "-P", str(p_closed), "-P", str(p_dropped))
    t0 = time.time()
    targets = [f"{h},{port},{1 if port == p_dropped else 0}"
               for h in (net.s4, net.s6) for port in (p_open, p_closed, p_dropped)]
    client = net.py(net.c, CONNECTS, *targets)
    res = json.loads(finish(client))
    recs, summary = tool.stop()
    sh("ip", "netns", "exec", net.s, "nft", "delete", "table", "inet", "ks231conn")
    srv4.kill(), srv6.kill(), srv4.wait(), srv6.wait()
    assert summary["lost"] == 0

    expect = {p_open: ("established", None), p_closed: ("refused", "ECONNREFUSED"),
              p_dropped: ("timeout", "ETIMEDOUT")}
    for r in res["results"]:
        mine = [e for e in recs if e["raddr"] == r["host"] and e["rport"] == r["port"]
                and e["laddr"] in (net.c4, net.c6)]
        assert len(mine) == 1, (r, mine)
        e = mine[0]
        result, err_name = expect[r["port"]]
        # the client saw the same outcome as the tool
        assert r["err"] == err_name, r
        assert e["result"] == result and e["err_name"] == err_name, e
        assert e["pid"] == client.pid == res["pid"]
        assert e["comm"] == res["comm"]
        assert e["direction"] == "connect"
        assert e["ip"] == ("IPv6" if ":" in r["host"] else "IPv4")
        assert e["family"] == (10 if ":" in r["host"] else 2)
        assert e["ts"] >= t0 - 1
        if result == "established":
            assert e["lport"] == r["lport"]
        assert e["lport"] > 0
        # handshake time measured in the kernel agrees with the client's own clock
        assert e["latency_ns"] / 1e9 <= r["secs"] + 0.05
        if result == "timeout":
            # TCP_SYNCNT=1: the SYN and one retry (1 s RTO, then 2 s) before giving up
            assert 2.5 < e["latency_ns"] / 1e9 < 4.5, e


def test_tcpaccept_reports_the_accepting_server_process(net, no_leaks):
    port = 7201
    tool = Tool("tcpaccept", "-P", str(port))
    srv4 = net.server(net.s4, port, 1)
    srv6 = net.server(net.s6, port, 1)
    clients = {net.s4: net.py(net.c, CLIENT, net.s4, port, 3000, 0.2),
               net.s6: net.py(net.c, CLIENT, net.s6, port, 3000, 0.2)}
    lports = {h: json.loads(finish(c).splitlines()[-1])["lport"] for h, c in clients.items()}
    finish(srv4), finish(srv6)
    recs, summary = tool.stop()
    assert summary["lost"] == 0
    for host, srv, peer in ((net.s4, srv4, net.c4), (net.s6, srv6, net.c6)):
        mine = [e for e in recs if e["laddr"] == host]
        assert len(mine) == 1, mine
        e = mine[0]
        assert e["pid"] == srv.pid, (e, srv.pid)
        assert e["comm"].startswith("python")
        assert e["lport"] == port and e["raddr"] == peer and e["rport"] == lports[host]
        assert e["direction"] == "accept" and e["result"] == "established"
        # the client connected 0.2 s before sending: the server was already in accept()
        assert 0 < e["latency_ns"] < 200e6
    assert all(e["lport"] == port for e in recs)   # -P filters


def test_tcpstates_full_lifecycle_ipv4_ipv6(net, no_leaks):
    port = 7301
    tool = Tool("tcpstates", "-P", str(port))
    srv4 = net.server(net.s4, port, 1)
    srv6 = net.server(net.s6, port, 1)
    clients = {net.s4: net.py(net.c, CLIENT, net.s4, port, 2000, 0.3),
               net.s6: net.py(net.c, CLIENT, net.s6, port, 2000, 0.3)}
    lports = {h: json.loads(finish(c).splitlines()[-1])["lport"] for h, c in clients.items()}
    finish(srv4), finish(srv6)
    net.wait_quiet(port)
    recs, summary = tool.stop()
    assert summary["lost"] == 0

    def chain(laddr, lport, raddr, rport):
        sks = {e["skaddr"] for e in recs if e["laddr"] == laddr and e["lport"] == lport
               and e["raddr"] == raddr and e["rport"] == rport}
        assert len(sks) == 1, sks
        sk = sks.pop()
        return [e for e in recs if e["skaddr"] == sk]

    for host, peer, srv, cl in ((net.s4, net.c4, srv4, clients[net.s4]),
                                (net.s6, net.c6, srv6, clients[net.s6])):
        ev = chain(peer, lports[host], host, port)
        assert [(e["oldstate"], e["newstate"]) for e in ev] == [
            ("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED"), ("ESTABLISHED", "FIN_WAIT1"),
            ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT2", "CLOSE")]
        assert all(e["pid"] == cl.pid for e in ev), ev
        assert ev[0]["lport"] == 0 and all(e["lport"] == lports[host] for e in ev[1:])
        assert ev[0]["prev_state_ms"] is None
        # the client slept 0.3 s, then sent 2000 bytes, while ESTABLISHED
        assert 300 <= ev[2]["prev_state_ms"] < 5000
        assert ev[1]["prev_state_ms"] < 300
        ts = [e["ts"] for e in ev]
        assert ts == sorted(ts)
        # the server's side of the same connection
        sv = chain(host, port, peer, lports[host])
        assert [(e["oldstate"], e["newstate"]) for e in sv] == [
            ("LISTEN", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED"), ("ESTABLISHED", "CLOSE_WAIT"),
            ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSE")]
        # owner known once the server accepted and read it
        assert all(e["pid"] == srv.pid for e in sv[2:]), sv
        assert sv[3]["prev_state_ms"] >= 50   # the server waited 50 ms before close()


def test_loss_shows_in_tcpretrans_and_tcpdrop_matching_nft_counter(net, no_leaks):
    """1 in 5 packets to the server port dropped by nftables: tcpdrop sees exactly the
    packets the rule's counter counted, as NETFILTER_DROP, owned by the server;
    tcpretrans sees the client retransmitting, and its -c table equals its events."""
    port = 7401
    net.nft_input_rule("ks231loss", f"tcp dport {port} numgen random mod 5 0 counter drop")
    try:
        drops = Tool("tcpdrop", "-P", str(port))
        retrans = Tool("tcpretrans", "-P", str(port))
        counts = Tool("tcpretrans", "-c", "-P", str(port))
        srv4 = net.server(net.s4, port, 1)
        srv6 = net.server(net.s6, port, 1)
        clients = {net.s4: net.py(net.c, CLIENT, net.s4, port, 150_000, 0.3),
                   net.s6: net.py(net.c, CLIENT, net.s6, port, 150_000, 0.3)}
        lports = {}
        for h, c in clients.items():
            last = json.loads(finish(c, timeout=60).splitlines()[-1])
            assert last["reply"] == "150000"
            lports[h] = last["lport"]
        finish(srv4), finish(srv6)
        net.wait_quiet(port)
        time.sleep(0.2)
        drop_recs, drop_sum = drops.stop()
        re_recs, re_sum = retrans.stop()
        cnt_recs, cnt_sum = counts.stop()
        nft_packets = net.nft_counter_packets("ks231loss")
    finally:
        sh("ip", "netns", "exec", net.s, "nft", "delete", "table", "inet", "ks231loss", check=False)
    assert drop_sum["lost"] == re_sum["lost"] == cnt_sum["lost"] == 0
    assert nft_packets > 0

    ours = [d for d in drop_recs if d["daddr"] in (net.s4, net.s6) and d["dport"] == port]
    nf = [d for d in ours if d["reason"] == "NETFILTER_DROP"]
    # every packet the rule dropped, and nothing else, is a NETFILTER_DROP of our flows
    assert len(nf) == nft_packets, (len(nf), nft_packets)
    for d in nf:
        assert d["saddr"] in (net.c4, net.c6) and d["sport"] == lports[d["daddr"]]
        assert d["ip"] == ("IPv6" if ":" in d["daddr"] else "IPv4")
    srv_pid = {net.s4: srv4.pid, net.s6: srv6.pid}
    data = [d for d in nf if "PSH" in d["tcp_flags"]]
    assert data, "no data segment was dropped"
    # data segments arrive after accept(): while the server's socket lives, the flow's
    # owner is the server (a late retransmission may arrive after it is gone)
    live = [d for d in data if d["state"] in ("ESTABLISHED", "CLOSE_WAIT", "LAST_ACK")]
    assert live
    for d in live:
        assert d["pid"] == srv_pid[d["daddr"]], {k: d[k] for k in (
            "ts", "pid", "state", "tcp_flags", "saddr", "sport", "daddr", "seq", "skaddr")}
    # a received packet is never charged to the sender's process, although the same
    # flow seen from the sending end is in the owner map too (both ends on this host)
    for d in nf:
        assert d["pid"] in (0, srv_pid[d["daddr"]]), d

    for host, peer in ((net.s4, net.c4), (net.s6, net.c6)):
        flow = lambda r: (r["laddr"], r["lport"], r["raddr"], r["rport"]) == (  # noqa: E731
            peer, lports[host], host, port)
        ev = [r for r in re_recs if flow(r)]
        lost_data = [d for d in data if d["daddr"] == host]
        if lost_data:
            # each lost data segment must be sent again
            assert ev, f"no retransmission seen for {host}"
            assert all(r["state"] in ("ESTABLISHED", "FIN_WAIT1", "SYN_SENT") for r in ev)
        # the kernel's per-flow counter equals the events for every flow of ours
        row = [r for r in cnt_recs if flow(r)]
        assert (row[0]["retransmits"] if row else 0) == len(ev)
    ours_re = {(r["laddr"], r["lport"], r["raddr"], r["rport"]) for r in re_recs
               if port in (r["lport"], r["rport"])}
    for key in ours_re:
        row = [r for r in cnt_recs if (r["laddr"], r["lport"], r["raddr"], r["rport"]) == key]
        n_ev = sum(1 for r in re_recs if (r["laddr"], r["lport"], r["raddr"], r["rport"]) == key)
        assert row and row[0]["retransmits"] == n_ev


def test_port_filter_runs_in_the_kernel(net, no_leaks):
    """Only connects to the configured ports reach the ring buffer at all."""
    from kernelscope.runtime.decode import Decoder
    from kernelscope.runtime.loader import open_probe
    from kernelscope.tools._net import kernel_filter

    class A:
        port = [7602]
        ipv4 = ipv6 = False

    cfg = {"active": 1, "passive": 0, **kernel_filter(A, rports="port")}
    with open_probe("tcp_connect", config=cfg) as p:
        ring = p.ring()
        client = net.py(net.c, CONNECTS, f"{net.s4},7601,0", f"{net.s4},7602,0",
                        f"{net.s6},7601,0", f"{net.s6},7602,0")
        finish(client)
        time.sleep(0.1)
        batch = ring.read()
        recs = p.spec.decode(p, batch, Decoder(p.btf, p.spec.event).to_dicts(batch))
    # whatever else the machine does, nothing but port 7602 left the kernel
    assert {r["rport"] for r in recs} == {7602}
    ours = [r for r in recs if r["raddr"] in (net.s4, net.s6)]
    assert sorted((r["raddr"], r["result"]) for r in ours) == sorted(
        [(net.s4, "refused"), (net.s6, "refused")]), ours


def ss_rtt_us(ns: str, port: int) -> dict[int, float]:
    """Client local port -> the kernel's smoothed RTT (us) as `ss -ti` reports it."""
    out = sh("ip", "netns", "exec", ns, "ss", "-Htin", "state", "established",
             f"( dport = :{port} )")
    res, lport = {}, None
    for line in out.splitlines():
        m = re.search(r"[:\]](\d+)\s+\S*[:\]]" + str(port) + r"\b", line)
        if m:
            lport = int(m.group(1))
        r = re.search(r"\brtt:([\d.]+)/", line)
        if r and lport is not None:
            res[lport] = float(r.group(1)) * 1000
    return res


HOLD_CLIENT = r"""
import json, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
c = socket.create_connection((host, port), timeout=10)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print(json.dumps({"lport": c.getsockname()[1]}), flush=True)
for i in range(200):
    c.sendall(b"x" * 1000)
    time.sleep(0.002)
print("sent", flush=True)
sys.stdin.readline()
c.close()
"""


def test_tcprtt_histograms_hold_the_test_flows_samples(net, no_leaks):
    port = 7501
    by_flow = Tool("tcprtt", "-F", "-D", str(port))
    by_raddr = Tool("tcprtt", "-a")
    srv4 = net.server(net.s4, port, 1)
    srv6 = net.server(net.s6, port, 1)
    clients, lports, rtts = {}, {}, {}
    for h in (net.s4, net.s6):
        c = subprocess.Popen(["ip", "netns", "exec", net.c, PY, "-c", HOLD_CLIENT, h, str(port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        lports[h] = json.loads(c.stdout.readline())["lport"]
        assert c.stdout.readline().strip() == "sent"
        clients[h] = c
    rtts = ss_rtt_us(net.c, port)   # while still established
    for c in clients.values():
        c.stdin.write("\n"), c.stdin.flush(), c.wait(timeout=10)
    finish(srv4), finish(srv6)
    flows, s1 = by_flow.stop()
    raddrs, s2 = by_raddr.stop()
    assert s1["lost"] == s2["lost"] == 0
    assert all(h["rport"] == port for h in flows if h["total"])   # -D filters in the kernel
    for host, peer in ((net.s4, net.c4), (net.s6, net.c6)):
        mine = [h for h in flows if h.get("raddr") == host and h.get("lport") == lports[host]]
        assert len(mine) == 1, flows
        h = mine[0]
        assert h["unit"] == "usecs" and h["laddr"] == peer
        assert h["total"] == sum(b["count"] for b in h["buckets"])
        # the client received at least one ACK per 1000-byte write it waited on
        assert h["total"] >= 20
        nz = [b for b in h["buckets"] if b["count"]]
        lo, hi = nz[0]["low"], nz[-1]["high"]
        # the srtt ss reported for this socket lies in the histogram's range
        assert lports[host] in rtts, rtts
        assert lo <= rtts[lports[host]] <= hi + 1, (rtts, h["buckets"])
        # per remote address: this address is only ever reached by this test's
        # connections; its server side adds no samples to the client's address
        ra = [x for x in raddrs if x.get("raddr") == host]
        assert len(ra) == 1 and ra[0]["total"] == h["total"], (ra, h)


@pytest.mark.parametrize("probe", ["tcp_connect", "tcp_state", "tcp_drop", "tcp_retrans",
                                   "tcp_rtt"])
def test_every_hook_variant_loads_and_attaches(probe, no_leaks):
    """The fallbacks (raw_tp, classic tracepoint) pass the verifier too, not only the
    variant this kernel picks."""
    import dataclasses
    from kernelscope.libbpf import BpfObject
    from kernelscope.runtime.loader import open_probe, split_program_name
    from kernelscope.runtime.paths import object_path
    from kernelscope.runtime.probe import load_spec

    spec = load_spec(probe)
    with BpfObject(object_path(probe)) as obj:
        variants: dict[str, set[str]] = {}
        for prog in obj.programs.values():
            hook, mech = split_program_name(prog.name, prog.mechanism)
            variants.setdefault(hook, set()).add(mech)
    mechs = sorted({m for v in variants.values() for m in v})
    for mech in mechs:
        order = {h: [mech] + sorted(v - {mech}) for h, v in variants.items()}
        with open_probe(dataclasses.replace(spec, hooks=order)) as p:
            for hook, v in variants.items():
                want = mech if mech in v else sorted(v)[0]
                assert p.choices[hook].mechanism == want, (hook, p.choices[hook])
