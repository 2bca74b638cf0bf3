"""The Sink interface: where the agent hands decoded, enriched records, in batches.

A sink receives `write(table, records)` calls from the agent's main loop, one call per
table per poll (records are plain dicts with the same keys within one call), and must
not block for long: buffer, and send at `flush()`. The agent calls `flush()` from its
flusher thread every `agent.flush_interval` seconds (so write() and flush() run on
different threads: guard the buffer with a lock), and at shutdown `close()` once,
after the last write(): close() must deliver everything still buffered.
Values in records: int, float, str, bool, None, list of str; `ts` and `ingest_ts`
are wall-clock UNIX seconds (float).
`stats()` feeds /metrics and `kernelscope status` (`kernelscope_sink_*{sink=name}`).

Sinks are built by the agent from config sections `[exporters.<kind>]` through an import
path, lazily, as `Class(config_dict, host=hostname)`:

    [exporters.otlp]        -> kernelscope.export.otlp:OtlpSink
    [exporters.clickhouse]  -> kernelscope.export.clickhouse:ClickHouseSink

A sink that also pushes metrics may implement `set_metric_sources(sources)`: the agent
calls it once with the list of `kernelscope.export.metrics.MetricSource` objects before
the first write.
"""

from __future__ import annotations


class Sink:
    """One destination for records; subclasses override write/flush/close/stats."""

    name: str = "sink"

    def write(self, table: str, records: list[dict]) -> None:
        """Accept a batch of records for `table` (e.g. "proc_exec"); may buffer."""
        raise NotImplementedError

    def flush(self) -> None:
        """Send or persist everything accepted so far (may block up to a timeout)."""

    def close(self) -> None:
        """Flush and release resources; no write() follows."""
        self.flush()

    def stats(self) -> dict:
        """Counters for self-observability, e.g. {"sent": n, "dropped": n, "errors": n}.

        Values must be numbers; keys become `kernelscope_sink_<key>{sink=name}`.
        """
        return {}


class SinkError(Exception):
    """A sink could not be built from its configuration (message names the key)."""
