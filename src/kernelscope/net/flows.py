"""The TCP flow table as Python records: live flows read from the kernel map, closed ones
from the ring buffer, merged by FlowTable.poll(). Field list: docs/network.md.

    from kernelscope.net.flows import open_flow_table
    with open_flow_table() as ft:
        closed, live = ft.poll()      # lists of dicts
        closed, live = ft.poll_columns()   # the same as {field: [values]}, cheaper
        ft.stats()                    # inserted/removed/evicted/insert_failed/lost
"""

from __future__ import annotations


import numpy as np

from kernelscope.enrich import net

DIRECTIONS = {0: "unknown", 1: "client", 2: "server"}
# states in which the peer's FIN had been taken in (a normal close from the other side)
_FIN_STATES = {"CLOSE_WAIT", "LAST_ACK", "CLOSING", "TIME_WAIT"}


def show_addr(text: str) -> str:
    """IPv4-mapped IPv6 addresses as ::ffff:a.b.c.d (what ss prints)."""
    if text.startswith("::ffff:") and "." not in text:
        import ipaddress
        m = ipaddress.IPv6Address(text).ipv4_mapped
        if m is not None:
            return f"::ffff:{m}"
    return text


def close_reason(rec: dict) -> str | None:
    """Why a closed flow ended: refused, connect_failed, reset_by_peer, reset_sent, fin,
    closed (local close, the peer's FIN not seen); None while open."""
    if rec.get("end_ts") is None:
        return None
    if rec["direction"] == "client" and not rec["established"]:
        return "refused" if rec["resets_received"] else "connect_failed"
    if rec["resets_received"]:
        return "reset_by_peer"
    if rec["resets_sent"]:
        return "reset_sent"
    if rec["fin_received"] or rec.get("close_from_state") in _FIN_STATES:
        return "fin"
    return "closed"


def flow_key(rec: dict) -> tuple[int, int]:
    """Identity of a connection across polls: the kernel socket while alive + its start."""
    return rec["sk_id"], rec["start_ns"]


# numeric columns copied as they are (names and units as in struct tcp_flow_event)
_PLAIN = ("sk_id", "cgroup_id", "tx_bytes", "rx_bytes", "netns", "pid", "srtt_us",
          "retransmits", "resets_sent", "resets_received", "drops", "family", "lport", "rport")
_addr_cache: dict[bytes, str] = {}
_FAMILY_NAMES = {net.AF_INET: "IPv4", net.AF_INET6: "IPv6"}


def _addr(family: int, raw: bytes) -> str:
    key = bytes([family & 0xFF]) + raw
    text = _addr_cache.get(key)
    if text is None:
        if len(_addr_cache) > 65536:
            _addr_cache.clear()
        text = _addr_cache[key] = show_addr(net.format_addr(family, raw))
    return text


def _addr_column(family: np.ndarray, addrs: np.ndarray) -> list[str]:
    """Text of a column of 16-byte addresses, each distinct (family, address) formatted once."""
    key = np.empty((len(addrs), 17), dtype=np.uint8)
    key[:, 0] = family.astype(np.uint8)
    key[:, 1:] = addrs
    uniq, inverse = np.unique(key.view(np.dtype("V17")).ravel(), return_inverse=True)
    texts = np.array([_addr(int(u[0]), u[1:].tobytes())
                      for u in (np.frombuffer(x.tobytes(), dtype=np.uint8) for x in uniq)],
                     dtype=object)
    return texts[inverse.ravel()].tolist()


def _close_reasons(b: np.ndarray) -> list:
    """close_reason() for a whole batch at once (same rules, numpy)."""
    closed = b["end_ts"] != 0
    failed = closed & (b["direction"] == 1) & (b["established"] == 0)
    cfs = b["close_from_state"]
    fin = (b["fin_received"] == 1) | np.isin(cfs, [8, 9, 11, 6])  # CLOSE_WAIT LAST_ACK CLOSING TIME_WAIT
    conds = [~closed, failed & (b["resets_received"] > 0), failed, b["resets_received"] > 0,
             b["resets_sent"] > 0, fin]
    names = np.array([None, "refused", "connect_failed", "reset_by_peer", "reset_sent", "fin",
                      "closed"], dtype=object)
    return names[np.select(conds, range(len(conds)), default=len(conds))].tolist()


def records_from_batch(batch: np.ndarray, boot_offset_ns: int | None = None) -> list[dict]:
    """A numpy batch of struct tcp_flow_event -> flow records (pure: nothing from /proc).

    Column by column on purpose: a busy host closes tens of thousands of connections
    a second, and a dict built once from zipped columns is the cheap part."""
    cols = columns_from_batch(batch, boot_offset_ns)
    keys = list(cols)
    return [dict(zip(keys, row)) for row in zip(*cols.values())]


def columns_from_batch(batch: np.ndarray, boot_offset_ns: int | None = None) -> dict[str, list]:
    """The same fields as records_from_batch, as columns {field: list} (for stores that
    insert columns: no dict per connection)."""
    from kernelscope.runtime.decode import boot_offset_ns as _boot, drop_reason_name
    n = len(batch)
    if not n:
        return {}
    b = batch
    off = _boot() if boot_offset_ns is None else boot_offset_ns
    cols = {k: b[k].tolist() for k in _PLAIN}
    start, end = b["start_ts"], b["end_ts"]
    is_open = end == 0
    cols["start_ts"] = ((start.astype(np.int64) + off) / 1e9).tolist()
    cols["start_ns"] = start.tolist()          # CLOCK_BOOTTIME, for exact durations and joins
    endw = ((end.astype(np.int64) + off) / 1e9).astype(object)
    endw[is_open] = None
    cols["end_ts"] = endw.tolist()
    endn = end.astype(object)
    endn[is_open] = None
    cols["end_ns"] = endn.tolist()
    dur = ((end.astype(np.int64) - start.astype(np.int64)) / 1e6).astype(object)
    dur[is_open] = None
    cols["duration_ms"] = dur.tolist()
    fam = cols["family"]
    cols["laddr"] = _addr_column(b["family"], b["laddr"])
    cols["raddr"] = _addr_column(b["family"], b["raddr"])
    cols["ip"] = [_FAMILY_NAMES.get(f) or net.family_name(f) for f in fam]
    cols["comm"] = [c.decode("utf-8", "replace") for c in b["comm"].tolist()]
    mr = b["min_rtt_us"].astype(object)
    mr[b["min_rtt_us"] == 0xFFFFFFFF] = None          # no RTT sample yet
    cols["min_rtt_us"] = mr.tolist()
    dropped = b["drops"] > 0
    rs = b["last_drop_reason"].astype(object)
    rs[~dropped] = None
    cols["last_drop_reason"] = rs.tolist()
    cols["last_drop_reason_name"] = [None if x is None else drop_reason_name(x)
                                     for x in cols["last_drop_reason"]]
    cols["direction"] = [DIRECTIONS.get(x, "unknown") for x in b["direction"].tolist()]
    st = net.TCP_STATES
    cols["state"] = [st.get(x) or net.tcp_state_name(x) for x in b["state"].tolist()]
    cols["close_from_state"] = [(st.get(x) or net.tcp_state_name(x)) if x else None
                                for x in b["close_from_state"].tolist()]
    cols["established"] = (b["established"] == 1).tolist()
    cols["fin_received"] = (b["fin_received"] == 1).tolist()
    cols["open"] = is_open.tolist()
    why = cols["close_reason"] = _close_reasons(b)
    cols["connect_failed"] = [w == "refused" or w == "connect_failed" for w in why]
    return cols


def add_process(records: list[dict], procs, cgroups=None) -> list[dict]:
    """Add cmdline (from /proc, cached per pid and start time) and container columns;
    each pid and cgroup is looked up once per call."""
    cmd: dict[int, str | None] = {}
    cgs: dict[int, tuple] = {}
    for r in records:
        pid = r["pid"]
        if pid not in cmd:
            info = procs.get(pid) if pid else None
            cmd[pid] = info.cmdline if info else None
        r["cmdline"] = cmd[pid]
        if cgroups is not None:
            cid = r["cgroup_id"]
            if cid not in cgs:
                ci = cgroups.lookup(cid) if cid else None
                cgs[cid] = (ci.path, ci.container_id, ci.container_runtime) if ci else (None,) * 3
            r["cgroup_path"], r["container_id"], r["container_runtime"] = cgs[cid]
    return records


class FlowTable:
    """Merge the kernel flow table (live) and the close events of one loaded tcp_flow probe."""

    def __init__(self, loaded, cmdline: bool = True, containers: bool = True):
        from kernelscope.enrich.cgroups import CgroupResolver
        from kernelscope.enrich.process import ProcessCache
        from kernelscope.runtime.decode import Decoder

        self.loaded = loaded
        self.decoder = Decoder(loaded.btf, "tcp_flow_event")
        self.ring = loaded.ring()
        self.map = loaded.map_dtype("flows")
        self.procs = ProcessCache() if cmdline else None
        self.cgroups = CgroupResolver() if containers else None
        self.live_count = 0
        from kernelscope.runtime.decode import boot_offset_ns
        self._boot_off = boot_offset_ns()
        self._refresh = loaded.program("refresh_flows")

    def records(self, batch: np.ndarray) -> list[dict]:
        """A batch of raw tcp_flow_event records -> flow records."""
        recs = records_from_batch(batch, self._boot_off)
        if self.procs is not None:
            add_process(recs, self.procs, self.cgroups)
        return recs

    def read_closed(self) -> list[dict]:
        """Flows closed since the last call (ring buffer), oldest first."""
        return self.records(self.ring.read())

    def read_live(self) -> list[dict]:
        """Every flow now in the kernel table, its counters refreshed from the socket now
        (closed flows whose socket the process still holds come with open=False)."""
        if self._refresh is not None:
            self._refresh.test_run()
        _keys, vals = self.map.lookup_batch()
        vals = np.asarray(vals)
        self.live_count = len(vals)
        live = self.records(vals)
        return [r for r in live if r["open"]] + [r for r in live if not r["open"]]

    def poll(self) -> tuple[list[dict], list[dict]]:
        """(closed since the last poll, live now). A flow that closes between the two
        reads is reported once, as closed."""
        live = self.read_live()
        closed = self.read_closed()
        done = {flow_key(r) for r in closed}
        live = [r for r in live if flow_key(r) not in done]
        return closed, live

    def columns(self, batch: np.ndarray) -> dict[str, list]:
        """A raw batch -> columns {field: list}, with cmdline (and container) columns."""
        cols = columns_from_batch(batch, self._boot_off)
        if cols and self.procs is not None:
            cmd: dict[int, str | None] = {}
            for pid in set(cols["pid"]):
                info = self.procs.get(pid) if pid else None
                cmd[pid] = info.cmdline if info else None
            cols["cmdline"] = [cmd[p] for p in cols["pid"]]
            if self.cgroups is not None:
                cg = {}
                for cid in set(cols["cgroup_id"]):
                    ci = self.cgroups.lookup(cid) if cid else None
                    cg[cid] = (ci.path, ci.container_id, ci.container_runtime) if ci else (None,) * 3
                for i, name in enumerate(("cgroup_path", "container_id", "container_runtime")):
                    cols[name] = [cg[c][i] for c in cols["cgroup_id"]]
        return cols

    def poll_columns(self) -> tuple[dict[str, list], dict[str, list]]:
        """poll() as columns: (closed, live), each {field: list of values}. The cheap
        path for consumers that store or aggregate batches (no dict per connection)."""
        if self._refresh is not None:
            self._refresh.test_run()
        _keys, vals = self.map.lookup_batch()
        vals = np.asarray(vals)
        self.live_count = len(vals)
        closed_raw = self.ring.read()
        if len(closed_raw) and len(vals):
            done = set(zip(closed_raw["sk_id"].tolist(), closed_raw["start_ts"].tolist()))
            keep = [(k, s) not in done for k, s in zip(vals["sk_id"].tolist(), vals["start_ts"].tolist())]
            vals = vals[np.asarray(keep, dtype=bool)]
        return self.columns(closed_raw), self.columns(vals)

    def stats(self) -> dict:
        """Kernel counters of the table: evicted = inserted - removed - live entries."""
        tot = self.loaded.map_dtype("stats").percpu_sum(0)
        live = len(self.map.lookup_batch()[0])
        tot["live"] = live
        tot["evicted"] = max(0, tot["inserted"] - tot["removed"] - live)
        tot["lost"] = self.loaded.lost()
        tot["max_flows"] = self.map.max_entries
        return tot


class open_flow_table:
    """Context manager: load tcp_flow and give a FlowTable; unloads everything on exit.

    max_flows sets the kernel table size (LRU hash, default 16384)."""

    def __init__(self, max_flows: int | None = None, **kw):
        self.max_flows = max_flows
        self.kw = kw
        self.loaded = None

    def __enter__(self) -> FlowTable:
        from kernelscope.runtime.loader import open_probe
        sizes = {"flows": int(self.max_flows)} if self.max_flows else None
        self.loaded = open_probe("tcp_flow", map_sizes=sizes)
        try:
            return FlowTable(self.loaded, **self.kw)
        except BaseException:
            self.loaded.close()
            raise

    def __exit__(self, *exc):
        if self.loaded is not None:
            self.loaded.close()
            self.loaded = None


class ThroughputTracker:
    """Bytes each flow moved since the previous poll (tcptop): feed it every poll's
    (closed, live); flows older than the tracker count from their first sight."""

    def __init__(self):
        self.prev: dict[tuple, tuple[int, int]] = {}
        self.primed = False

    def update(self, closed: list[dict], live: list[dict]) -> list[dict]:
        """Records of flows that moved bytes in this interval, with tx_delta/rx_delta."""
        out = []
        seen: dict[tuple, tuple[int, int]] = {}
        for r in list(live) + list(closed):
            k = flow_key(r)
            cur = (r["tx_bytes"], r["rx_bytes"])
            if k in self.prev:
                base = self.prev[k]
            elif not self.primed or r.get("direction") == "unknown":
                # existed before we looked (first poll, or adopted mid-flight): baseline
                base = cur
            else:
                base = (0, 0)
            if r["open"]:
                seen[k] = cur
            tx, rx = cur[0] - base[0], cur[1] - base[1]
            if tx > 0 or rx > 0:
                out.append({**r, "tx_delta": max(tx, 0), "rx_delta": max(rx, 0)})
        self.prev = seen
        self.primed = True
        return out


def by_process(rows: list[dict]) -> list[dict]:
    """Per-interval rows grouped by process (tcptop -P)."""
    agg: dict[tuple, dict] = {}
    for r in rows:
        k = (r["pid"], r["comm"])
        a = agg.setdefault(k, {"pid": r["pid"], "comm": r["comm"], "cmdline": r.get("cmdline"),
                               "connections": 0, "tx_delta": 0, "rx_delta": 0})
        a["connections"] += 1
        a["tx_delta"] += r["tx_delta"]
        a["rx_delta"] += r["rx_delta"]
    return list(agg.values())


def report_table(out, stats: dict) -> None:
    """The exit report of a flow-table tool: lost close events and table evictions
    (JSON summary object, or stderr lines)."""
    import sys
    from kernelscope.tools.common import report_lost
    report_lost(out, stats["lost"], evicted=stats["evicted"],
                insert_failed=stats["insert_failed"], max_flows=stats["max_flows"])
    if not out.json and (stats["evicted"] or stats["insert_failed"]):
        sys.stderr.write(f"kernelscope: flow table full ({stats['max_flows']} flows): "
                         f"{stats['evicted']} evicted, {stats['insert_failed']} not inserted "
                         "(raise --max-flows)\n")
