"""The agent's sinks: the embedded store (StoreSink) and exporters built from config."""

from __future__ import annotations

import importlib
import threading
import time

from kernelscope.export.base import Sink, SinkError

# [exporters.<kind>] -> import path of the Sink class, called as Class(config_dict, host=...)
EXPORTERS = {
    "otlp": "kernelscope.export.otlp:OtlpSink",
    "clickhouse": "kernelscope.export.clickhouse:ClickHouseSink",
}


class StoreSink(Sink):
    """Buffers records per table; flush() appends each table's batch as one Arrow table."""

    name = "store"

    def __init__(self, store, retention_interval: float = 60.0, max_pending: int = 50_000,
                 flush_rows: int = 10_000):
        self.store = store
        self.flush_rows = flush_rows
        self.wake = threading.Event()     # set when enough rows wait: flush before the interval
        self.max_pending = max_pending
        self._n_pending = 0
        self.dropped = 0
        self.retention_interval = retention_interval
        self._pending: dict[str, list[dict]] = {}
        self._oldest: float | None = None
        self._types: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._last_retention = time.monotonic()
        self.accepted = 0
        self.written = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_lag = 0.0
        self.max_lag = 0.0
        self.last_flush_seconds = 0.0

    def set_types(self, table: str, types: dict) -> None:
        self._types[table] = types

    def write(self, table: str, records: list[dict]) -> None:
        if not records:
            return
        with self._lock:
            if self._n_pending + len(records) > self.max_pending:
                # the store cannot keep up: drop (counted) rather than grow without bound
                self.dropped += len(records)
                return
            self._pending.setdefault(table, []).extend(records)
            self._n_pending += len(records)
            if self._n_pending >= self.flush_rows:
                self.wake.set()
            if self._oldest is None:
                self._oldest = time.time()
            self.accepted += len(records)

    def pending(self) -> int:
        return self._n_pending

    def flush(self) -> None:
        from kernelscope.store.schema import to_arrow
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                oldest, self._oldest = self._oldest, None
                self._n_pending = 0
            t0 = time.perf_counter()
            for table, recs in pending.items():
                try:
                    self.store.append(table, to_arrow(recs, self._types.get(table, {})))
                    self.written += len(recs)
                except Exception as e:   # a bad batch must not stop the agent; counted and shown
                    self.errors += 1
                    self.last_error = f"{table}: {str(e).splitlines()[0]}"
            self.last_flush_seconds = time.perf_counter() - t0
            if oldest is not None:
                self.last_lag = time.time() - oldest
                self.max_lag = max(self.max_lag, self.last_lag)
            if time.monotonic() - self._last_retention >= self.retention_interval:
                self._last_retention = time.monotonic()
                try:
                    self.store.retain()
                except Exception as e:
                    self.errors += 1
                    self.last_error = f"retention: {str(e).splitlines()[0]}"

    def close(self) -> None:
        self.flush()
        self.store.close()

    def stats(self) -> dict:
        return {"accepted": self.accepted, "written": self.written, "errors": self.errors,
                "dropped": self.dropped,
                "last_error": self.last_error,
                "pending": self.pending(), "write_lag_seconds": round(self.last_lag, 4),
                "max_write_lag_seconds": round(self.max_lag, 4),
                "rows_deleted": self.store.rows_deleted}


def build_exporter(kind: str, config: dict, host: str) -> Sink:
    path = EXPORTERS[kind]
    modname, _, clsname = path.partition(":")
    from kernelscope.agent.config import ConfigError
    try:
        cls = getattr(importlib.import_module(modname), clsname)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"config: exporters.{kind}: {path} is not available ({e})")
    try:
        return cls(config, host=host)
    except (SinkError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"config: exporters.{kind}: {e}")
