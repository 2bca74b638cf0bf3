"""Pure helpers for network records: addresses, TCP state and flag names, flow text.

Stable API (other probes import these): `format_addr(family, bytes16) -> str`,
`tcp_state_name(n) -> str`. Addresses travel from the kernel as 16 raw bytes
(IPv4 in the first 4), ports in host byte order.
"""

from __future__ import annotations

import ipaddress
import socket

AF_INET = socket.AF_INET      # 2
AF_INET6 = socket.AF_INET6    # 10

# include/net/tcp_states.h (values are kernel ABI, shown by the tracepoints' print fmt)
TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
    11: "CLOSING", 12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE",
}
TCP_STATE_NUMBERS = {v: k for k, v in TCP_STATES.items()}

# TCP header flag bits, low to high (byte 13 of the header)
TCP_FLAGS = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"]


def format_addr(family: int, raw) -> str:
    """16 raw address bytes (IPv4 in the first 4) -> text; '' for an unknown family."""
    b = bytes(raw)
    if family == AF_INET:
        return str(ipaddress.IPv4Address(b[:4]))
    if family == AF_INET6:
        a = ipaddress.IPv6Address(b[:16].ljust(16, b"\0"))
        if a.ipv4_mapped is not None:   # an IPv6 socket talking IPv4
            return f"::ffff:{a.ipv4_mapped}"
        return str(a)
    return ""


def parse_addr(text: str) -> tuple[int, bytes]:
    """Address text -> (family, 16 bytes): the inverse of format_addr. ValueError if bad."""
    a = ipaddress.ip_address(text.strip().strip("[]"))
    if a.version == 4:
        return AF_INET, a.packed.ljust(16, b"\0")
    return AF_INET6, a.packed


def family_name(family: int) -> str:
    return {AF_INET: "IPv4", AF_INET6: "IPv6"}.get(int(family), f"AF{int(family)}")


def ip_version(family: int) -> int:
    return {AF_INET: 4, AF_INET6: 6}.get(int(family), 0)


def tcp_state_name(n: int) -> str:
    """Kernel TCP state number -> name without the TCP_ prefix ('ESTABLISHED')."""
    return TCP_STATES.get(int(n), f"STATE_{int(n)}")


def tcp_state_number(name: str) -> int:
    """'ESTABLISHED' or 'TCP_ESTABLISHED' (any case) -> number; ValueError if unknown."""
    key = name.strip().upper().removeprefix("TCP_")
    if key not in TCP_STATE_NUMBERS:
        raise ValueError(f"unknown TCP state {name!r}")
    return TCP_STATE_NUMBERS[key]


def tcp_flag_names(flags: int) -> list[str]:
    """The flag byte of a TCP header -> ['SYN', 'ACK'] (low bit first)."""
    return [n for i, n in enumerate(TCP_FLAGS) if int(flags) >> i & 1]


def tcp_flags_text(flags: int) -> str:
    return "|".join(tcp_flag_names(flags)) or "-"


def endpoint(addr: str, port: int) -> str:
    """'10.0.0.1:80', '[fd00::1]:80' (brackets for IPv6, as in URLs)."""
    if ":" in addr:
        return f"[{addr}]:{port}"
    return f"{addr}:{port}"


def flow_text(laddr: str, lport: int, raddr: str, rport: int, arrow: str = "->") -> str:
    return f"{endpoint(laddr, lport)} {arrow} {endpoint(raddr, rport)}"


def parse_port(text: str) -> int:
    """A port number 1..65535 from text; ValueError otherwise."""
    try:
        v = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"not a port number: {text!r}")
    if not 0 < v < 65536:
        raise ValueError(f"port out of range (1-65535): {text!r}")
    return v


def decode_addrs(batch, records: list[dict], fields=("laddr", "raddr")) -> list[dict]:
    """Replace the raw 16-byte address columns of a decoded batch with text, in place.

    `batch` is the numpy structured array the records came from (needs `family`)."""
    fams = batch["family"].tolist()
    cols = {f: batch[f] for f in fields}
    for i, rec in enumerate(records):
        for f, col in cols.items():
            rec[f] = format_addr(fams[i], col[i].tobytes())
    return records
