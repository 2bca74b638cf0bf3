"""Command-line pieces the TCP tools share: -4/-6, port and address filters, columns."""

from __future__ import annotations

import argparse
from typing import Callable

from kernelscope.enrich import net
from kernelscope.tools.common import record_filter


def port_arg(text: str) -> int:
    try:
        return net.parse_port(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def addr_arg(text: str) -> str:
    try:
        fam, raw = net.parse_addr(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}")
    return net.format_addr(fam, raw)


def add_port_flags(p, what: str) -> None:
    """-L/--lport, -D/--rport, -P/--port (each repeatable): `what` names the thing
    filtered ("flows", "sockets")."""
    p.add_argument("-L", "--lport", type=port_arg, action="append", metavar="PORT",
                   help="only this local port (repeatable)")
    p.add_argument("-D", "--rport", type=port_arg, action="append", metavar="PORT",
                   help="only this remote port (repeatable)")
    p.add_argument("-P", "--port", type=port_arg, action="append", metavar="PORT",
                   help=f"only {what} with this local or remote port (repeatable)")


def add_family_flags(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-4", "--ipv4", action="store_true", help="only IPv4")
    g.add_argument("-6", "--ipv6", action="store_true", help="only IPv6")


def family_wanted(args) -> int | None:
    if getattr(args, "ipv4", False):
        return net.AF_INET
    if getattr(args, "ipv6", False):
        return net.AF_INET6
    return None


def flow_filter(args, ports: dict[str, str] | None = None,
                addrs: dict[str, str] | None = None, process: bool = True) -> Callable[[dict], bool]:
    """Records kept by the common pid/comm/uid flags (when `process`), -4/-6, and
    port/address flags: `ports` maps an args attribute to the record field it
    filters ({"port": "rport"}); a list-valued attribute keeps any of its values."""
    base = record_filter(args) if process else (lambda r: True)
    fam = family_wanted(args)
    checks = []
    for attr, field in {**(ports or {}), **(addrs or {})}.items():
        want = getattr(args, attr, None)
        if want is None or want == []:
            continue
        wanted = set(want) if isinstance(want, (list, tuple, set)) else {want}
        checks.append((field, wanted))

    def keep(r: dict) -> bool:
        if fam is not None and r.get("family") != fam:
            return False
        for field, wanted in checks:
            if r.get(field) not in wanted:
                return False
        return base(r)

    return keep


MAX_KERNEL_PORTS = 8   # KS_FILTER_PORTS in ks_net.bpf.h


def kernel_filter(args, lports: str | None = None, rports: str | None = None,
                  ports: str | None = None) -> dict:
    """Probe config for the in-kernel flow filter of ks_net.bpf.h (KS_WANT_FLOW_FILTER)
    from -4/-6 and the named port-list attributes of `args`."""
    from kernelscope.errors import UsageError
    cfg = {"family": family_wanted(args) or 0}
    for key, attr in (("lports", lports), ("rports", rports), ("ports", ports)):
        values = getattr(args, attr, None) if attr else None
        if not values:
            continue
        values = sorted(set(values if isinstance(values, (list, tuple, set)) else [values]))
        if len(values) > MAX_KERNEL_PORTS:
            raise UsageError(f"at most {MAX_KERNEL_PORTS} ports per port option")
        cfg[key] = values + [0] * (MAX_KERNEL_PORTS - len(values))
    return cfg


def fmt_ms(ns: int | float | None) -> str:
    if ns is None:
        return "-"
    return f"{ns / 1e6:.3f}"
