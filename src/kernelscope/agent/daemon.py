"""The agent's life: start modules (skipping what this kernel cannot run), read rings into
sinks, serve the HTTP API, and on SIGTERM drain, flush and unload everything."""

from __future__ import annotations

import json
import os
import resource
import select
import sys
import threading
import time

from kernelscope.agent.context import Enricher
from kernelscope.agent.module import ModuleContext
from kernelscope.agent.modules import MODULES, module_class
from kernelscope.agent.sinks import StoreSink, build_exporter
from kernelscope.errors import KernelscopeError
from kernelscope.export.metrics import CardinalityLimiter, Metric, MetricSource
from kernelscope.export.prometheus import render

_CLK = os.sysconf("SC_CLK_TCK")


class _NoPandas:
    """Import hook that makes `import pandas` fail in the agent process.

    pyarrow and duckdb import pandas, when it is installed, the first time they meet
    a Python object (~50 MB of RSS) only to check whether it is a DataFrame; the
    agent never hands them one. Installed by `kernelscope agent` only."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not loaded in the kernelscope agent")
        return None


def keep_pandas_out() -> None:
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


def trim_heap() -> None:
    """Give freed start-up memory (BTF scans, probe loading) back to the OS."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def log(msg: str) -> None:
    sys.stderr.write(f"kernelscope agent: {msg}\n")
    sys.stderr.flush()


class Agent(MetricSource):
    def __init__(self, cfg: dict, config_path: str | None = None):
        self.cfg = cfg
        self.config_path = config_path
        self.modules: dict[str, object] = {}         # running
        self.skipped: dict[str, str] = {}            # name -> reason
        self.sinks: list = []
        self.store_sink: StoreSink | None = None
        self.server = None
        self.started = time.time()
        self.limiter = CardinalityLimiter(cfg["agent"]["cardinality_limit"])
        self._stop = threading.Event()
        self._flusher = None
        self._run_file = None
        self.loops = 0
        self.module_errors: dict[str, int] = {}
        self.url = None
        self._scrape_lock = threading.Lock()

    # -- start ---------------------------------------------------------------
    def start(self) -> None:
        from kernelscope import host as khost
        khost.require_privileges()
        acfg = self.cfg["agent"]
        ecfg = self.cfg["enrich"]
        from kernelscope.enrich.kubernetes import from_config as k8s_from_config
        try:
            k8s = k8s_from_config(ecfg["kubernetes"])
        except OSError as e:
            raise KernelscopeError(f"config: enrich.kubernetes.token_file: {e.strerror}")
        self.enricher = Enricher(acfg["host"], ecfg["process"], ecfg["cgroups"], k8s)
        ctx = ModuleContext(self.enricher, acfg["host"])
        # sinks first: a bad store path or exporter config fails before probes load
        scfg = self.cfg["store"]
        if scfg["enabled"]:
            from kernelscope.store.duck import Store
            store = Store(scfg["path"], scfg["max_age"], scfg["max_size"])
            self.store_sink = StoreSink(store, scfg["retention_interval"], scfg["max_pending"])
            self.sinks.append(self.store_sink)
        for kind, ecfg_ in self.cfg["exporters"].items():
            self.sinks.append(build_exporter(kind, ecfg_, acfg["host"]))
        wanted = acfg.get("modules") or list(MODULES)
        from kernelscope.runtime.paths import probe_names
        have = set(probe_names())
        for name in wanted:
            cls = module_class(name)
            mod = cls(self.cfg["modules"].get(name, {}), ctx)
            missing = [p for p in mod.probes if p not in have]
            if missing:
                self.skipped[name] = f"probe {missing[0]} is not in this build"
                continue
            try:
                mod.start()
            except KernelscopeError as e:
                mod.close()
                self.skipped[name] = str(e)
                continue
            except Exception as e:   # e.g. a probe changed under the module: skip, say why
                mod.close()
                self.skipped[name] = f"failed to start: {type(e).__name__}: {e}"
                continue
            self.modules[name] = mod
            if self.store_sink is not None and hasattr(mod, "column_types"):
                for t in mod.tables:
                    self.store_sink.set_types(t, mod.column_types())
        for name, why in self.skipped.items():
            log(f"module {name} skipped: {why}")
        if not self.modules:
            self.close()
            raise KernelscopeError("no module could start: " +
                                   "; ".join(f"{n}: {w}" for n, w in self.skipped.items()))
        for s in self.sinks:
            if hasattr(s, "set_metric_sources"):
                s.set_metric_sources(self.metric_sources())
        from kernelscope.agent.config import parse_listen
        from kernelscope.agent.server import ApiServer
        host, port = parse_listen(acfg["listen"])
        try:
            self.server = ApiServer(self, host, port)
        except KernelscopeError:
            self.close()
            raise
        self.server.start()
        h, p = self.server.address
        self.url = f"http://{'127.0.0.1' if h in ('0.0.0.0', '') else h}:{p}"
        if self.store_sink is not None:
            from kernelscope.store.duck import write_run_file
            self._run_file = write_run_file(self.store_sink.store.path, os.getpid(), self.url)
        trim_heap()
        self._flusher = threading.Thread(target=self._flush_loop, name="ks-flush", daemon=True)
        self._flusher.start()
        log(f"running modules {', '.join(self.modules)}; HTTP on {h}:{p}"
            + (f"; store {self.store_sink.store.path}" if self.store_sink else ""))

    def metric_sources(self) -> list:
        return list(self.modules.values()) + [self]

    # -- run -------------------------------------------------------------------
    def _flush_loop(self):
        interval = self.cfg["agent"]["flush_interval"]
        wake = self.store_sink.wake if self.store_sink is not None else threading.Event()
        while not self._stop.is_set():
            wake.wait(interval)     # the interval, or earlier when many rows wait
            wake.clear()
            if self._stop.is_set():
                break
            for s in self.sinks:
                try:
                    s.flush()
                except Exception as e:   # a failing exporter must not stop the others
                    log(f"sink {getattr(s, 'name', s)} flush failed: {e}")

    def _poll_all(self, final: bool = False) -> int:
        n = 0
        for name, mod in self.modules.items():
            try:
                out = mod.poll(final=final)
            except Exception as e:   # one module's bug must not stop the others or lose their data
                self.module_errors[name] = self.module_errors.get(name, 0) + 1
                if self.module_errors[name] == 1:
                    log(f"module {name} poll failed: {type(e).__name__}: {e}")
                continue
            for table, recs in out.items():
                if not recs:
                    continue
                n += len(recs)
                for s in self.sinks:
                    s.write(table, recs)
        return n

    def run(self, stop) -> None:
        """Read until `stop()` is true (a StopFlag set by SIGTERM/SIGINT)."""
        ep = select.epoll()
        for mod in self.modules.values():
            for rb in mod.rings():
                ep.register(rb.fileno(), select.EPOLLIN)
        tick = self.cfg["agent"]["poll_interval"]
        gather = min(self.cfg["agent"]["batch_wait"], tick)
        try:
            while not stop():
                t0 = time.monotonic()
                try:
                    ep.poll(tick)
                except InterruptedError:
                    pass
                # let records gather after a wakeup: per-drain costs are paid per batch,
                # not per record, and the rings hold far more than this interval brings
                left = gather - (time.monotonic() - t0)
                if left > 0:
                    time.sleep(left)
                self._poll_all()
                self.loops += 1
        finally:
            ep.close()

    def shutdown(self) -> dict:
        """Drain rings, flush sinks, unload probes; returns the final status."""
        # detach first so the rings stop filling, then drain what is in them
        for mod in self.modules.values():
            if getattr(mod, "loaded", None) is not None:
                mod.loaded.obj.detach_all()
        self._poll_all(final=True)
        self._stop.set()
        if self.store_sink is not None:
            self.store_sink.wake.set()
        if self._flusher is not None:
            self._flusher.join()
        final = self.status()
        for s in self.sinks:
            try:
                s.close()
            except Exception as e:
                log(f"sink {getattr(s, 'name', s)} close failed: {e}")
        if self.store_sink is not None:
            final["sinks"]["store"] = self.store_sink.stats()
        self.close()
        return final

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        for mod in self.modules.values():
            mod.close()
        if self._run_file is not None:
            try:
                self._run_file.unlink()
            except OSError:
                pass
            self._run_file = None

    # -- API ---------------------------------------------------------------------
    def query(self, sql: str):
        if self.store_sink is None:
            raise KernelscopeError("query: the store is disabled in this agent's config")
        return self.store_sink.store.query(sql)

    def status(self) -> dict:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        mods = {}
        for name, mod in self.modules.items():
            mods[name] = {"state": "running", "probes": list(mod.probes), "tables": list(mod.tables),
                          **mod.stats(), "errors": self.module_errors.get(name, 0)}
        for name, why in self.skipped.items():
            mods[name] = {"state": "skipped", "reason": why}
        out = {
            "pid": os.getpid(), "host": self.cfg["agent"]["host"], "url": self.url,
            "uptime_seconds": round(time.time() - self.started, 3),
            "cpu_seconds": round(cpu_seconds(), 3), "rss_bytes": rss_bytes(),
            "max_rss_bytes": ru.ru_maxrss * 1024,
            "config": self.config_path,
            "store": str(self.store_sink.store.path) if self.store_sink else None,
            "modules": mods,
            "sinks": {getattr(s, "name", type(s).__name__): s.stats() for s in self.sinks},
            "enrich": self.enricher.stats(),
            "metrics_folded": dict(self.limiter.folded),
        }
        if self.store_sink is not None:
            out["store_rows"] = dict(self.store_sink.store.rows_written)
        return out

    # -- /metrics --------------------------------------------------------------------
    def metrics_text(self) -> str:
        with self._scrape_lock:
            metrics = []
            for src in self.metric_sources():
                try:
                    metrics.extend(src.collect())
                except Exception as e:   # a scrape still answers with the other sources
                    log(f"metrics of {getattr(src, 'name', src)} failed: {type(e).__name__}: {e}")
            limited = [self.limiter.apply(m) for m in metrics]
            limited.append(Metric("kernelscope_metric_series_folded_total", "counter",
                                  "samples folded into an __overflow__ series by the cardinality cap",
                                  [({"metric": k}, v) for k, v in sorted(self.limiter.folded.items())]))
            return render(limited)

    def collect(self) -> list[Metric]:
        """The agent's own metrics (self-observability)."""
        received, lost, decode, fill_e, fill_max, up = [], [], [], [], [], []
        for name, mod in self.modules.items():
            st = mod.stats()
            probe = mod.probes[0] if mod.probes else name
            lab = {"module": name, "probe": probe}
            received.append((lab, st.get("received", 0)))
            lost.append((lab, st.get("lost", 0)))
            decode.append((lab, st.get("decode_seconds", 0.0)))
            up.append(({"module": name}, 1))
            if hasattr(mod, "map_fill"):
                for mname, n, mx in mod.map_fill():
                    fill_e.append(({"probe": probe, "map": mname}, n))
                    fill_max.append(({"probe": probe, "map": mname}, mx))
        for name in self.skipped:
            up.append(({"module": name}, 0))
        out = [
            Metric("kernelscope_module_up", "gauge", "1 when the module runs, 0 when skipped", up),
            Metric("kernelscope_events_received_total", "counter", "ring-buffer records read", received),
            Metric("kernelscope_events_lost_total", "counter",
                   "ring-buffer reservations that failed in the kernel (ks_lost)", lost),
            Metric("kernelscope_decode_seconds_total", "counter", "seconds spent decoding records", decode),
            Metric("kernelscope_map_entries", "gauge", "entries in a BPF hash map", fill_e),
            Metric("kernelscope_map_max_entries", "gauge", "capacity of a BPF hash map", fill_max),
            Metric("kernelscope_agent_cpu_seconds_total", "counter", "agent CPU time (user+system)",
                   [({}, round(cpu_seconds(), 3))]),
            Metric("kernelscope_agent_rss_bytes", "gauge", "agent resident memory", [({}, rss_bytes())]),
            Metric("kernelscope_enrich_seconds_total", "counter", "seconds spent adding context",
                   [({}, round(self.enricher.seconds, 6))]),
        ]
        sink_samples: dict[str, list] = {}
        for s in self.sinks:
            for k, v in s.stats().items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    sink_samples.setdefault(k, []).append(({"sink": getattr(s, "name", "sink")}, v))
        for k, samples in sorted(sink_samples.items()):
            gauge = k in ("pending",) or k.endswith("_seconds") or k.endswith("_bytes")
            name = f"kernelscope_sink_{k}" + ("" if gauge or k.endswith("_total") else "_total")
            out.append(Metric(name, "gauge" if gauge else "counter", f"sink statistic {k}", samples))
        if self.store_sink is not None:
            st = self.store_sink.store
            out.append(Metric("kernelscope_store_write_lag_seconds", "gauge",
                              "age of the oldest record in the last store flush",
                              [({}, round(self.store_sink.last_lag, 4))]))
            out.append(Metric("kernelscope_store_rows_written_total", "counter", "rows appended per table",
                              [({"table": t}, n) for t, n in sorted(st.rows_written.items())]))
            try:
                out.append(Metric("kernelscope_store_size_bytes", "gauge", "bytes the store uses",
                                  [({}, st.size_bytes())]))
            except Exception:
                pass
        return out


def write_status_file(path: str, status: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(status, f, indent=1, default=str)
    os.replace(tmp, path)
