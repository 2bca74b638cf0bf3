"""The module interface: what the agent runs. A module = probe(s) + poll() rows + metrics.

    class Module(MetricSource):
        name      = "exec"                 # [modules.exec] in the config, label module="exec"
        probes    = ("proc_exec",)         # probe folders it needs (missing -> skipped)
        tables    = ("proc_exec",)         # store tables it writes
        OPTIONS   = {"max_args": (parser, default, help)}   # its [modules.<name>] keys
        def __init__(self, options: dict, ctx: ModuleContext)
        def start(self)        # load/attach; KernelscopeError -> module skipped with the reason
        def rings(self)        # RingBuffers the agent's epoll waits on (may be empty)
        def poll(self)         # -> {table: [record dicts]}: drained events and periodic rows
        def collect(self)      # -> [Metric], read from BPF maps at scrape time
        def stats(self)        # -> {"received": n, "lost": n, "decode_seconds": s, ...}
        def close(self)        # detach and free: nothing stays in the kernel

The agent calls poll() after every wakeup of its one epoll (and every poll_interval)
from one thread, collect() from HTTP threads at scrape time, and poll(final=True)
once after stop, before close(), so rings are drained on shutdown.

`ProbeModule` does all of this for one probe from its BTF alone: ring records are
decoded and enriched into table <probe>; maps whose value is `struct ks_hist` become
histograms and maps of `__u64` counters become counters, labelled by the fields of
their key struct. Modules that need more (the exec counter, the flow table) subclass it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from kernelscope.errors import KernelscopeError
from kernelscope.export.metrics import Metric, MetricSource, log2_histogram
from kernelscope.runtime.decode import cstr


@dataclass
class ModuleContext:
    enricher: object          # agent.context.Enricher
    host: str


def _type_name(btf, tid: int | None) -> str | None:
    if tid is None:
        return None
    return btf.resolve(tid).name


def _label_value(v) -> str:
    if isinstance(v, (bytes, np.bytes_)):
        return cstr(bytes(v))
    if isinstance(v, np.generic):
        return str(v.item())
    return str(v)


def key_labels(keys: np.ndarray) -> list[dict]:
    """Structured keys -> label dicts (scalar keys -> {"key": value})."""
    if keys.dtype.names:
        names = [n for n in keys.dtype.names if not n.startswith("pad") and not n.startswith("__")]
        return [{n: _label_value(k[n]) for n in names} for k in keys]
    return [{"key": _label_value(k)} for k in keys]


class Module(MetricSource):
    name = "module"
    probes: tuple = ()
    tables: tuple = ()
    OPTIONS: dict = {}

    def __init__(self, options: dict, ctx: ModuleContext):
        self.options = options
        self.ctx = ctx

    def start(self) -> None:
        raise NotImplementedError

    def rings(self) -> list:
        return []

    def poll(self, final: bool = False) -> dict[str, list[dict]]:
        return {}

    def collect(self) -> list[Metric]:
        return []

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass


class ProbeModule(Module):
    """One probe, handled from its BTF: events -> rows, ks_hist/u64 maps -> metrics."""

    probe: str = ""
    config: dict = {}               # load-time cfg_* settings
    store_events = True
    hist_unit_scale: dict = {}      # map name -> factor to base units (e.g. 1e-9 ns -> seconds)
    exec_events = False             # records are execs: refresh the cached process context

    def __init__(self, options: dict, ctx: ModuleContext):
        super().__init__(options, ctx)
        self.loaded = None
        self._ring = None
        self._decoder = None
        self._types = {}
        self.received = 0
        self.decode_seconds = 0.0
        self._maps: list[tuple[str, str, object]] = []   # (kind, map name, Map)

    @property
    def probes(self):
        return (self.probe,)

    @property
    def tables(self):
        if not self.store_events:
            return ()
        try:
            from kernelscope.runtime.probe import load_spec
            return (self.probe,) if load_spec(self.probe).event else ()
        except Exception:
            return (self.probe,)

    def load_config(self) -> dict:
        return dict(self.config)

    def start(self) -> None:
        from kernelscope.runtime.decode import Decoder
        from kernelscope.runtime.loader import open_probe
        from kernelscope.store.schema import decoder_types
        self.loaded = open_probe(self.probe, config=self.load_config())
        spec = self.loaded.spec
        if spec.event and "events" in self.loaded.maps and self.store_events:
            self._ring = self.loaded.ring()
            self._decoder = Decoder(self.loaded.btf, spec.event)
            self._types = decoder_types(self._decoder)
        btf = self.loaded.btf
        for mname, mp in self.loaded.maps.items():
            if mp.type in ("ringbuf",) or mname.startswith(".") or "." in mname or mname == "ks_lost":
                continue
            ktid, vtid = btf.map_types(mname)
            if vtid is None or ktid is None:
                continue
            if _type_name(btf, vtid) == "ks_hist":
                self._maps.append(("histogram", mname, self.loaded.map_dtype(mname)))
            elif btf.dtype(vtid) == np.dtype("<u8") and mp.type in ("hash", "percpu_hash", "lru_hash",
                                                                   "lru_percpu_hash"):
                self._maps.append(("counter", mname, self.loaded.map_dtype(mname)))

    def rings(self) -> list:
        return [self._ring] if self._ring is not None else []

    def decode(self, batch) -> list[dict]:
        recs = self._decoder.to_dicts(batch)
        if self.loaded.spec.decode:
            recs = self.loaded.spec.decode(self.loaded, batch, recs)
        return recs

    def poll(self, final: bool = False) -> dict[str, list[dict]]:
        if self._ring is None:
            return {}
        batch = self._ring.read()
        if not len(batch):
            return {}
        t0 = time.perf_counter()
        recs = self.decode(batch)
        self.received += len(batch)
        self.decode_seconds += time.perf_counter() - t0
        if self.ctx.enricher is not None:
            self.ctx.enricher.enrich(recs, exec_event=self.exec_events)
        return {self.probe: recs} if self.store_events else {}

    def column_types(self) -> dict:
        return self._types

    # -- metrics read from maps at scrape time ----------------------------------
    def metric_name(self, map_name: str, kind: str) -> str:
        base = f"kernelscope_{self.probe}_{map_name}"
        if kind == "counter" and not base.endswith("_total"):
            base += "_total"
        return base

    def collect(self) -> list[Metric]:
        if self.loaded is None:
            return []
        out = []
        for kind, mname, mp in self._maps:
            keys, vals = mp.lookup_batch()
            if mp.percpu:
                vals = vals.sum(axis=1) if kind == "counter" else vals
            labels = key_labels(keys)
            if kind == "histogram":
                scale = self.hist_unit_scale.get(mname, 1.0)
                samples = []
                for lab, v in zip(labels, vals):
                    slots = v["slots"] if not mp.percpu else np.sum([x["slots"] for x in v], axis=0)
                    samples.append((lab, log2_histogram(slots, scale)))
                out.append(Metric(self.metric_name(mname, kind), "histogram",
                                  f"log2 histogram from BPF map {self.probe}.{mname}", samples))
            else:
                out.append(Metric(self.metric_name(mname, kind), "counter",
                                  f"counter from BPF map {self.probe}.{mname}",
                                  [(lab, int(v)) for lab, v in zip(labels, vals)]))
        return out

    def map_fill(self) -> list[tuple[str, int, int]]:
        """(map, entries, max_entries) of this probe's hash maps."""
        if self.loaded is None:
            return []
        out = []
        for mname, mp in self.loaded.maps.items():
            if "hash" not in mp.type:
                continue
            try:
                keys, _ = mp.lookup_batch()
                out.append((mname, len(keys), mp.max_entries))
            except KernelscopeError:
                continue
        return out

    def stats(self) -> dict:
        return {"received": self.received,
                "lost": self.loaded.lost() if self.loaded is not None else 0,
                "decode_seconds": round(self.decode_seconds, 6)}

    def close(self) -> None:
        if self.loaded is not None:
            self.loaded.close()
            self.loaded = None
            self._ring = None
