"""Pure helpers of the TCP tools: addresses, states, flags, outcomes, symbols, labels."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest

from kernelscope.enrich import net
from kernelscope.probes.tcp_connect.probe import outcome_name
from kernelscope.probes.tcp_rtt.probe import key_labels


def raw(text: str) -> bytes:
    return net.parse_addr(text)[1]


def test_format_addr_ipv4_uses_first_four_bytes():
    b = bytes([10, 231, 7, 1]) + bytes(range(1, 13))   # junk after the IPv4 bytes
    assert net.format_addr(socket.AF_INET, b) == "10.231.7.1"


def test_format_addr_ipv6_compressed():
    b = socket.inet_pton(socket.AF_INET6, "fd00:231:7::2")
    assert net.format_addr(socket.AF_INET6, b) == "fd00:231:7::2"
    assert net.format_addr(socket.AF_INET6, bytes(16)) == "::"


def test_format_addr_ipv4_mapped_shows_dotted_quad():
    b = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")
    assert net.format_addr(socket.AF_INET6, b) == "::ffff:127.0.0.1"


def test_format_addr_accepts_numpy_rows_and_lists():
    row = np.frombuffer(socket.inet_pton(socket.AF_INET6, "fe80::1"), dtype=np.uint8)
    assert net.format_addr(10, row) == "fe80::1"
    assert net.format_addr(2, [192, 168, 0, 1] + [0] * 12) == "192.168.0.1"


def test_format_addr_unknown_family_is_empty():
    assert net.format_addr(0, bytes(16)) == ""
    assert net.format_addr(1, bytes(16)) == ""


def test_parse_addr_round_trip_and_errors():
    for text in ("10.0.0.1", "fd00::1", "::ffff:10.1.2.3"):
        fam, b = net.parse_addr(text)
        assert len(b) == 16
        assert net.format_addr(fam, b) == text
    assert net.parse_addr("[fd00::1]") == net.parse_addr("fd00::1")
    with pytest.raises(ValueError):
        net.parse_addr("10.0.0.256")
    with pytest.raises(ValueError):
        net.parse_addr("example.com")


@pytest.mark.parametrize("n,name", [(1, "ESTABLISHED"), (2, "SYN_SENT"), (3, "SYN_RECV"),
                                    (4, "FIN_WAIT1"), (5, "FIN_WAIT2"), (6, "TIME_WAIT"),
                                    (7, "CLOSE"), (8, "CLOSE_WAIT"), (9, "LAST_ACK"),
                                    (10, "LISTEN"), (11, "CLOSING"), (12, "NEW_SYN_RECV")])
def test_tcp_state_names_match_kernel_numbering(n, name):
    assert net.tcp_state_name(n) == name
    assert net.tcp_state_number(name) == n
    assert net.tcp_state_number("tcp_" + name.lower()) == n


def test_tcp_state_unknown():
    assert net.tcp_state_name(99) == "STATE_99"
    with pytest.raises(ValueError):
        net.tcp_state_number("HALF_OPEN")


def test_tcp_state_names_agree_with_tracefs_print_fmt():
    fmt = "/sys/kernel/tracing/events/sock/inet_sock_set_state/format"
    try:
        text = open(fmt).read()
    except OSError:
        pytest.skip("tracefs not readable")
    import re
    pairs = re.findall(r'\{ (\d+), "TCP_([A-Z_0-9]+)" \}', text)
    assert pairs
    for num, name in pairs:
        assert net.tcp_state_name(int(num)) == name


def test_tcp_flag_names():
    assert net.tcp_flag_names(0x02) == ["SYN"]
    assert net.tcp_flag_names(0x12) == ["SYN", "ACK"]
    assert net.tcp_flag_names(0x18) == ["PSH", "ACK"]
    assert net.tcp_flag_names(0x11) == ["FIN", "ACK"]
    assert net.tcp_flag_names(0x04) == ["RST"]
    assert net.tcp_flag_names(0xC0) == ["ECE", "CWR"]
    assert net.tcp_flags_text(0) == "-"
    assert net.tcp_flags_text(0x14) == "RST|ACK"


def test_endpoint_brackets_ipv6():
    assert net.endpoint("10.0.0.1", 80) == "10.0.0.1:80"
    assert net.endpoint("fd00::1", 443) == "[fd00::1]:443"
    assert net.flow_text("fd00::1", 1, "fd00::2", 2) == "[fd00::1]:1 -> [fd00::2]:2"


def test_parse_port():
    assert net.parse_port("80") == 80
    for bad in ("0", "65536", "-1", "http", ""):
        with pytest.raises(ValueError):
            net.parse_port(bad)


def test_family_helpers():
    assert net.family_name(2) == "IPv4" and net.family_name(10) == "IPv6"
    assert net.ip_version(10) == 6 and net.ip_version(3) == 0


def test_decode_addrs_from_a_structured_batch():
    dt = np.dtype([("family", "<u2"), ("laddr", "u1", 16), ("raddr", "u1", 16)])
    batch = np.zeros(2, dtype=dt)
    batch[0]["family"] = 2
    batch[0]["laddr"][:4] = [10, 231, 7, 1]
    batch[0]["raddr"][:4] = [10, 231, 7, 2]
    batch[1]["family"] = 10
    batch[1]["laddr"] = np.frombuffer(raw("fd00:231:7::1"), dtype=np.uint8)
    batch[1]["raddr"] = np.frombuffer(raw("fd00:231:7::2"), dtype=np.uint8)
    recs = net.decode_addrs(batch, [{}, {}])
    assert recs == [{"laddr": "10.231.7.1", "raddr": "10.231.7.2"},
                    {"laddr": "fd00:231:7::1", "raddr": "fd00:231:7::2"}]


def test_connect_outcome_names():
    assert outcome_name(0, None) == "established"
    assert outcome_name(1, "ECONNREFUSED") == "refused"
    assert outcome_name(1, "ETIMEDOUT") == "timeout"
    assert outcome_name(1, "EHOSTUNREACH") == "EHOSTUNREACH"
    assert outcome_name(2, None) == "closed"


def test_rtt_key_labels():
    l4, r4 = raw("10.0.0.1"), raw("10.0.0.2")
    assert key_labels(0, 0, 0, bytes(16), bytes(16), "all") == {}
    assert key_labels(2, 0, 0, bytes(16), r4, "raddr") == {"ip": "IPv4", "raddr": "10.0.0.2"}
    assert key_labels(2, 0, 0, l4, bytes(16), "laddr") == {"ip": "IPv4", "laddr": "10.0.0.1"}
    assert key_labels(2, 40000, 80, l4, r4, "flow") == {
        "ip": "IPv4", "laddr": "10.0.0.1", "lport": 40000, "raddr": "10.0.0.2", "rport": 80}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "kernelscope", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args,needle", [
    (("tcpconnect", "-P", "70000"), "port out of range"),
    (("tcpaccept", "-P", "http"), "not a port number"),
    (("tcpstates", "-s", "HALF_OPEN"), "unknown TCP state"),
    (("tcprtt", "--raddr", "10.0.0.300"), "not an IP address"),
    (("tcprtt", "-a", "-F"), "not allowed with"),
    (("tcpretrans", "-i", "1"), "--interval needs -c"),
    (("tcpdrop", "-r", "NO_SUCH_REASON"), "unknown drop reason"),
    (("tcpconnect", "-4", "-6"), "not allowed with"),
])
def test_bad_input_is_one_line_and_nonzero(args, needle):
    r = _cli(*args)
    assert r.returncode != 0
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3   # argparse: usage + error; ours: one line


# ---- text lines of the tools (the kernel tests read --json) -------------------------

def _conn(**kw):
    r = {"ts": 1795303290.5, "pid": 4242, "comm": "curl", "ip": "IPv6", "family": 10,
         "laddr": "fd00::1", "lport": 40000, "raddr": "fd00::2", "rport": 80,
         "result": "refused", "err": 111, "err_name": "ECONNREFUSED", "latency_ns": 51000}
    r.update(kw)
    return r


def test_tcpconnect_and_tcpaccept_lines():
    from kernelscope.tools import tcpaccept, tcpconnect
    line = tcpconnect.format_line(_conn())
    assert "4242" in line and "curl" in line and "[fd00::1]:40000" in line
    assert "[fd00::2]:80" in line and "refused" in line and line.endswith("0.051")
    line = tcpaccept.format_line(_conn(latency_ns=0, ip="IPv4", laddr="10.0.0.2", lport=80,
                                       raddr="10.0.0.1", rport=5555))
    assert "10.0.0.2:80" in line and "10.0.0.1:5555" in line and line.rstrip().endswith("-")


def test_tcpstates_line_unknown_owner_and_time():
    from kernelscope.tools import tcpstates
    r = {"ts": 1795303290.5, "skaddr": "0xffff888116da09c0", "pid": 0, "comm": "",
         "laddr": "10.0.0.2", "lport": 80, "raddr": "10.0.0.1", "rport": 5555,
         "oldstate": "LISTEN", "newstate": "SYN_RECV", "prev_state_ns": 0}
    r["prev_state_ms"] = tcpstates.prev_ms(r["prev_state_ns"])
    line = tcpstates.format_line(r)
    assert "LISTEN -> SYN_RECV" in line and line.rstrip().endswith("-")
    assert tcpstates.prev_ms(1_234_567) == 1.235


def test_tcpretrans_lines_and_count_table():
    from kernelscope.tools import tcpretrans
    r = {"ts": 1795303290.5, "ip": "IPv4", "laddr": "10.0.0.1", "lport": 5555,
         "raddr": "10.0.0.2", "rport": 80, "state": "FIN_WAIT1", "kind": "segment",
         "err": 0, "err_name": None}
    assert "FIN_WAIT1" in tcpretrans.format_line(r)
    assert "segment:EBUSY" in tcpretrans.format_line({**r, "err": -16, "err_name": "EBUSY"})
    table = tcpretrans.format_counts([{**r, "retransmits": 7}])
    assert table[0].split() == ["LOCAL", "REMOTE", "RETRANSMITS"]
    assert table[1].split() == ["10.0.0.1:5555", "10.0.0.2:80", "7"]


def test_tcpdrop_line():
    from kernelscope.tools import tcpdrop
    r = {"ts": 1795303290.5, "pid": 0, "comm": "", "ip": "IPv4", "saddr": "10.0.0.1",
         "sport": 5555, "daddr": "10.0.0.2", "dport": 81, "tcp_flags": "SYN", "state": None,
         "reason": "NETFILTER_DROP", "location": "nft_do_chain+0x3e8"}
    f = tcpdrop.format_line(r).split()
    assert f[1:3] == ["-", "-"] and f[4:6] == ["10.0.0.1:5555", "10.0.0.2:81"]
    assert f[6:] == ["SYN", "-", "NETFILTER_DROP", "nft_do_chain+0x3e8"]


def test_tcprtt_labels_and_kernel_config():
    import argparse
    from kernelscope.tools import tcprtt
    p = argparse.ArgumentParser()
    tcprtt.add_arguments(p)
    args = p.parse_args(["-F", "-m", "-D", "443", "--raddr", "fd00::2", "-6"])
    cfg = tcprtt.probe_config(args)
    assert cfg["by"] == 3 and cfg["ms"] == 1 and cfg["rport"] == 443 and cfg["family"] == 10
    assert cfg["raddr_family"] == 10 and bytes(cfg["raddr"]) == raw("fd00::2")
    assert tcprtt.label({"laddr": "10.0.0.1", "lport": 1, "raddr": "10.0.0.2", "rport": 2}) == \
        "flow = 10.0.0.1:1 -> 10.0.0.2:2"
    assert tcprtt.label({"ip": "IPv4", "raddr": "10.0.0.2"}) == "remote address = 10.0.0.2"
    assert tcprtt.label({}) is None


def test_kernel_filter_config():
    import argparse
    from kernelscope.errors import UsageError
    from kernelscope.tools import _net, tcpstates
    p = argparse.ArgumentParser()
    tcpstates.add_arguments(p)
    args = p.parse_args(["-L", "80", "-L", "443", "-L", "80", "-P", "22", "-4"])
    cfg = _net.kernel_filter(args, lports="lport", rports="rport", ports="port")
    assert cfg == {"family": 2, "lports": [80, 443, 0, 0, 0, 0, 0, 0],
                   "ports": [22, 0, 0, 0, 0, 0, 0, 0]}
    args = p.parse_args(sum((["-D", str(n)] for n in range(1, 10)), []))
    with pytest.raises(UsageError):
        _net.kernel_filter(args, rports="rport")
