"""OTLP exporter: events as logs (or spans), metrics from MetricSources, pushed to an
OpenTelemetry Collector over OTLP/gRPC or OTLP/HTTP (protobuf).

Built by the agent from `[exporters.otlp]` as `OtlpSink(config, host=...)`. Settings
(all optional; see docs/fleet.md):

  protocol       "grpc" (default) or "http/protobuf"
  endpoint       grpc: "host:port", "http://host:port" (plaintext) or "https://host:port"
                 (TLS); default "localhost:4317". http/protobuf: base URL, the signal
                 path (/v1/logs, /v1/metrics, /v1/traces) is appended; default
                 "http://localhost:4318"
  headers        table of header = "value" (or "k=v,k2=v2"), e.g. an auth token; sent
                 as HTTP headers or gRPC metadata
  timeout        seconds per export request (default 10)
  compression    "none" (default) or "gzip"
  insecure       grpc only: plaintext even without an http:// scheme (default: TLS only
                 for https://)
  batch_size     records per export request (default 512)
  max_queue      records held while the endpoint is slow or down (default 8192); past
                 it new records are dropped and counted
  interval       seconds between pushes of metrics and of partial batches (default 5)
  retry_initial  first backoff after a retryable failure, seconds (default 1); doubles
  retry_max      longest backoff, seconds (default 30)
  tables         only these tables are exported (default: every table written)
  spans          tables whose records are exported as spans, not logs (records with
                 start/end times: start_ns/end_ns, start_ts/end_ts, or ts + duration_ns)
  metrics        push metrics of the agent's MetricSources (default true)
  resource       table of extra resource attributes (e.g. deployment.environment)

Records become LogRecords: time from `ts` (UNIX seconds) or `ts_ns`, attribute
`kernelscope.event` = table name (also the LogRecord event_name "kernelscope.<table>"),
every other field an attribute under its own name (None values left out; `host` too,
it is the resource's host.name), severity from a `severity` field (alerts) else INFO,
body from a `message` field else the table name. Counters become monotonic cumulative
Sums (a trailing "_total" is dropped, as OpenTelemetry names counters; the Collector's
Prometheus exporter adds it back), gauges Gauges, histograms explicit-bound
Histograms. Resource: host.name, service.name = kernelscope, service.version and
kernelscope.version.

flush() asks the sender thread to send what is queued if `interval` has passed since
its last send and returns at once (the agent flushes every second; `interval` sets the
request rate); flush(force=True) sends now and waits; close() pushes metrics once more
and sends everything it can within `timeout`.
"""

from __future__ import annotations

import gzip
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Iterable

from kernelscope import __version__
from kernelscope.export.base import Sink
from kernelscope.export.batching import (Batcher, BatchedSinkMixin, Config, ConfigError, PermanentError,
                                         RetryableError)

PROTOCOLS = ("grpc", "http/protobuf")
SIGNAL_PATHS = {"logs": "/v1/logs", "traces": "/v1/traces", "metrics": "/v1/metrics"}
# OTLP spec: retryable gRPC codes (RESOURCE_EXHAUSTED too: our queue is bounded anyway)
RETRYABLE_GRPC = {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE",
                  "DATA_LOSS", "RESOURCE_EXHAUSTED"}
RETRYABLE_HTTP = {429, 502, 503, 504}

SEVERITY = {"trace": 1, "debug": 5, "info": 9, "notice": 10, "warn": 13, "warning": 13,
            "error": 17, "err": 17, "critical": 21, "crit": 21, "fatal": 21, "alert": 22,
            "emergency": 24, "emerg": 24}
SPAN_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
# fields a span consumes for its own structure (not repeated as attributes)
SPAN_FIELDS = ("start_ns", "end_ns", "start_ts", "end_ts", "trace_id", "span_id",
               "parent_span_id", "span_name", "span_kind", "status", "status_message")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _pb():
    """The protocol classes (imported when a sink is built, not at module import)."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_svc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_svc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_svc
    from opentelemetry.proto.common.v1 import common_pb2 as common
    from opentelemetry.proto.logs.v1 import logs_pb2 as logs
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as metrics
    from opentelemetry.proto.resource.v1 import resource_pb2 as resource
    from opentelemetry.proto.trace.v1 import trace_pb2 as trace
    return dict(logs_svc=logs_svc, metrics_svc=metrics_svc, trace_svc=trace_svc,
                common=common, logs=logs, metrics=metrics, resource=resource, trace=trace)


# -- encoding (pure functions) -------------------------------------------------------

def set_value(av, v) -> bool:
    """Fill AnyValue `av` (in place: no intermediate messages) from a Python value;
    False for None (the caller leaves the attribute out)."""
    t = type(v)
    if t is str:
        av.string_value = v
    elif t is int:
        if INT64_MIN <= v <= INT64_MAX:
            av.int_value = v
        else:
            av.string_value = str(v)          # u64 past int64: keep every digit
    elif t is float:
        av.double_value = v
    elif t is bool:
        av.bool_value = v
    elif v is None:
        return False
    elif isinstance(v, (list, tuple, set, frozenset)):
        arr = av.array_value
        arr.SetInParent()
        for x in v:
            # an element cannot be left out without shifting the others: None -> empty
            set_value(arr.values.add(), x)
    elif isinstance(v, dict):
        kvl = av.kvlist_value
        kvl.SetInParent()
        add_attributes(kvl.values, v)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        av.bytes_value = bytes(v)
    elif isinstance(v, bool):
        av.bool_value = bool(v)
    elif isinstance(v, int):
        return set_value(av, int(v))
    elif isinstance(v, float):
        av.double_value = float(v)
    elif isinstance(v, str):
        av.string_value = str(v)
    elif hasattr(v, "item") and getattr(v, "ndim", 0) == 0:   # numpy scalar
        return set_value(av, v.item())
    elif hasattr(v, "tolist"):                               # numpy array
        return set_value(av, v.tolist())
    else:
        av.string_value = str(v)
    return True


def add_attributes(repeated, d: dict, skip=()) -> None:
    """Append d's items to a repeated KeyValue field, leaving out None values."""
    for k, v in d.items():
        if v is None or k in skip:
            continue
        kv = repeated.add()
        kv.key = k if type(k) is str else str(k)
        set_value(kv.value, v)


def any_value(v, common=None):
    """A Python value -> AnyValue, or None for None (left out)."""
    common = common or _pb()["common"]
    av = common.AnyValue()
    return av if set_value(av, v) else None


def attributes(d: dict, skip: Iterable[str] = (), common=None) -> list:
    common = common or _pb()["common"]
    holder = common.KeyValueList()
    add_attributes(holder.values, d, set(skip))
    return list(holder.values)


def resource_attributes(host: str, extra: dict | None = None) -> dict:
    attrs = {"service.name": "kernelscope", "service.version": __version__,
             "kernelscope.version": __version__, "host.name": host}
    attrs.update(extra or {})
    return attrs


def _ns(seconds) -> int:
    """UNIX seconds (float) -> ns, exact for the float's value (no 1e9 rounding drift)."""
    sec = math.floor(seconds)
    return int(sec) * 1_000_000_000 + int(round((seconds - sec) * 1e9))


UNIX_NS_MIN = 10**17   # below this an "_ns" value is not UNIX time (CLOCK_BOOTTIME, a duration)


def _unix_ns(v) -> int | None:
    return v if type(v) is int and v >= UNIX_NS_MIN else None


def _sec_ns(v) -> int | None:
    return _ns(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None


def record_time_ns(rec: dict) -> int:
    """Wall-clock ns of a record: ts_ns (when it is UNIX ns), else ts (UNIX seconds), else 0."""
    return _unix_ns(rec.get("ts_ns")) or _sec_ns(rec.get("ts")) or 0


def span_times(rec: dict) -> tuple[int, int]:
    """(start_ns, end_ns), wall clock. Ends from start_ns/end_ns when they are UNIX ns,
    else start_ts/end_ts (UNIX seconds); probes' start_ns/end_ns on CLOCK_BOOTTIME still
    give the exact duration. Without a start: end - duration_ns. Without an end:
    start + duration_ns, or the record's ts."""
    start = _unix_ns(rec.get("start_ns")) or _sec_ns(rec.get("start_ts"))
    end = _unix_ns(rec.get("end_ns")) or _sec_ns(rec.get("end_ts"))
    dur = rec.get("duration_ns") if type(rec.get("duration_ns")) is int else None
    s_raw, e_raw = rec.get("start_ns"), rec.get("end_ns")
    if type(s_raw) is int and type(e_raw) is int and e_raw >= s_raw:
        dur = e_raw - s_raw                    # same clock, whichever it is: exact
    if start is not None and dur is not None and (end is None or _unix_ns(e_raw) is None):
        end = start + dur
    if end is None and start is None:
        end = record_time_ns(rec) or None
    if start is None and end is not None and dur is not None:
        start = end - dur
    if start is None:
        start = end
    if end is None:
        end = start
    return int(start or 0), int(end or 0)


_LOG_SKIP = frozenset(("ts", "ts_ns", "host"))
_LOG_SKIP_MSG = _LOG_SKIP | {"message"}


def log_record(table: str, rec: dict, observed_ns: int, pb=None, into=None):
    """One record -> LogRecord (appended to the repeated field `into` when given)."""
    pb = pb or _pb()
    lr = into.add() if into is not None else pb["logs"].LogRecord()
    lr.time_unix_nano = record_time_ns(rec) or observed_ns
    lr.observed_time_unix_nano = observed_ns
    sev = rec.get("severity")
    if isinstance(sev, str) and sev.lower() in SEVERITY:
        lr.severity_number, lr.severity_text = SEVERITY[sev.lower()], sev.upper()
    else:
        lr.severity_number, lr.severity_text = 9, "INFO"
    msg = rec.get("message")
    lr.body.string_value = msg if isinstance(msg, str) else table
    kv = lr.attributes.add()
    kv.key = "kernelscope.event"
    kv.value.string_value = table
    add_attributes(lr.attributes, rec, _LOG_SKIP_MSG if isinstance(msg, str) else _LOG_SKIP)
    if _HAS_EVENT_NAME.get("v") is None:
        _HAS_EVENT_NAME["v"] = "event_name" in lr.DESCRIPTOR.fields_by_name
    if _HAS_EVENT_NAME["v"]:
        lr.event_name = f"kernelscope.{table}"
    return lr


_HAS_EVENT_NAME: dict = {}


def _hex_id(v, size: int) -> bytes | None:
    """A trace/span id from bytes or hex; None when absent, malformed or all zero
    (invalid in OTLP)."""
    b = None
    if isinstance(v, (bytes, bytearray)) and len(v) == size:
        b = bytes(v)
    elif isinstance(v, str) and len(v) == 2 * size:
        try:
            b = bytes.fromhex(v)
        except ValueError:
            return None
    return b if b and any(b) else None


def span(table: str, rec: dict, pb=None):
    pb = pb or _pb()
    trace, common = pb["trace"], pb["common"]
    start, end = span_times(rec)
    if not start:
        start = end = time.time_ns()
    kind = SPAN_KINDS.get(str(rec.get("span_kind", "internal")).lower(), 1)
    name = rec.get("span_name")
    status = rec.get("status")
    code = 0
    if isinstance(status, str):
        code = {"ok": 1, "error": 2}.get(status.lower(), 0)
    elif rec.get("error"):
        code = 2
    attrs = [common.KeyValue(key="kernelscope.event", value=common.AnyValue(string_value=table))]
    attrs += attributes(rec, skip=SPAN_FIELDS + ("ts", "ts_ns", "host"), common=common)
    sp = trace.Span(
        trace_id=_hex_id(rec.get("trace_id"), 16) or os.urandom(16),
        span_id=_hex_id(rec.get("span_id"), 8) or os.urandom(8),
        name=name if isinstance(name, str) and name else table,
        kind=kind, start_time_unix_nano=start, end_time_unix_nano=max(start, end),
        attributes=attrs,
        status=trace.Status(code=code, message=str(rec.get("status_message") or "")))
    parent = _hex_id(rec.get("parent_span_id"), 8)
    if parent:
        sp.parent_span_id = parent
    return sp


def metric_unit(name: str) -> str:
    for suffix, unit in (("_seconds", "s"), ("_bytes", "By"), ("_ratio", "1")):
        if name.endswith(suffix) or name.endswith(suffix + "_total"):
            return unit
    return ""


def histogram_point(value, labels: dict, start_ns: int, now_ns: int, metrics_pb, common):
    """(cumulative [(upper_bound, count)], sum, count) -> HistogramDataPoint."""
    buckets, total, count = value
    bounds, counts, prev = [], [], 0
    for ub, cum in sorted(buckets, key=lambda b: b[0]):
        if math.isinf(ub):
            continue
        bounds.append(float(ub))
        counts.append(int(cum) - prev)
        prev = int(cum)
    counts.append(int(count) - prev)      # the +Inf bucket
    return metrics_pb.HistogramDataPoint(
        attributes=attributes({k: str(v) for k, v in labels.items()}, common=common),
        start_time_unix_nano=start_ns, time_unix_nano=now_ns, count=int(count),
        sum=float(total), bucket_counts=counts, explicit_bounds=bounds)


def metric_proto(m, start_ns: int, now_ns: int, pb=None):
    """A kernelscope.export.metrics.Metric -> opentelemetry Metric."""
    pb = pb or _pb()
    mp, common = pb["metrics"], pb["common"]
    name = m.name
    if m.kind == "counter" and name.endswith("_total"):
        name = name[: -len("_total")]
    out = mp.Metric(name=name, description=m.help or "", unit=metric_unit(m.name))

    def number_point(labels, v):
        p = mp.NumberDataPoint(attributes=attributes({k: str(x) for k, x in labels.items()}, common=common),
                               start_time_unix_nano=start_ns, time_unix_nano=now_ns)
        if isinstance(v, bool) or (isinstance(v, int) and INT64_MIN <= v <= INT64_MAX):
            p.as_int = int(v)
        else:
            p.as_double = float(v)
        return p

    cumulative = mp.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    if m.kind == "counter":
        out.sum.CopyFrom(mp.Sum(aggregation_temporality=cumulative, is_monotonic=True,
                                data_points=[number_point(lb, v) for lb, v in m.samples]))
    elif m.kind == "gauge":
        out.gauge.CopyFrom(mp.Gauge(data_points=[number_point(lb, v) for lb, v in m.samples]))
    else:
        out.histogram.CopyFrom(mp.Histogram(
            aggregation_temporality=cumulative,
            data_points=[histogram_point(v, lb, start_ns, now_ns, mp, common) for lb, v in m.samples]))
    return out


# -- transports ------------------------------------------------------------------------

class _HttpTransport:
    def __init__(self, endpoint: str, headers: dict, timeout: float, gzip_on: bool):
        self.base = endpoint.rstrip("/")
        self.headers = {"Content-Type": "application/x-protobuf",
                        "User-Agent": f"kernelscope/{__version__}", **headers}
        if gzip_on:
            self.headers["Content-Encoding"] = "gzip"
        self.timeout = timeout
        self.gzip = gzip_on

    def export(self, signal: str, request, response_cls):
        body = request.SerializeToString()
        if self.gzip:
            body = gzip.compress(body)
        req = urllib.request.Request(self.base + SIGNAL_PATHS[signal], data=body,
                                     headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                data = r.read()
        except urllib.error.HTTPError as e:
            detail = _http_detail(e)
            if e.code in RETRYABLE_HTTP:
                raise RetryableError(f"HTTP {e.code} from {req.full_url}{detail}",
                                     retry_after=_retry_after(e.headers.get("Retry-After")))
            raise PermanentError(f"HTTP {e.code} from {req.full_url}{detail}")
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise RetryableError(f"{req.full_url}: {reason}")
        resp = response_cls()
        if data:
            try:
                resp.ParseFromString(data)
            except Exception:
                pass
        return resp

    def close(self):
        pass


def _http_detail(e) -> str:
    try:
        body = e.read()[:300]
    except Exception:
        return ""
    if not body:
        return ""
    try:
        from google.rpc import status_pb2   # optional: the OTLP error body is a Status
        st = status_pb2.Status()
        st.ParseFromString(body)
        if st.message:
            return f": {st.message}"
    except Exception:
        pass
    text = body.decode("utf-8", errors="replace").strip()
    return f": {text}" if text.isprintable() else ""


def _retry_after(v) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None


class _GrpcTransport:
    def __init__(self, endpoint: str, headers: dict, timeout: float, gzip_on: bool,
                 insecure: bool | None, reconnect_max: float = 30.0):
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as lg
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as mg
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tg
        self.grpc = grpc
        target = endpoint
        tls = False
        if target.startswith("https://"):
            target, tls = target[len("https://"):], True
        elif target.startswith("http://"):
            target = target[len("http://"):]
        if insecure is not None and not endpoint.startswith(("http://", "https://")):
            tls = not insecure
        target = target.rstrip("/")
        self.target = target
        # the channel's own reconnect backoff (default up to 120 s) must not outlast ours,
        # or a collector that came back stays unused long after our next retry
        opts = [("grpc.primary_user_agent", f"kernelscope/{__version__}"),
                ("grpc.initial_reconnect_backoff_ms", int(min(1.0, reconnect_max) * 1000)),
                ("grpc.min_reconnect_backoff_ms", int(min(1.0, reconnect_max) * 1000)),
                ("grpc.max_reconnect_backoff_ms", int(reconnect_max * 1000))]
        self.channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=opts)
                        if tls else grpc.insecure_channel(target, options=opts))
        self.stubs = {"logs": lg.LogsServiceStub(self.channel),
                      "metrics": mg.MetricsServiceStub(self.channel),
                      "traces": tg.TraceServiceStub(self.channel)}
        self.metadata = [(k.lower(), v) for k, v in headers.items()]
        self.timeout = timeout
        self.compression = grpc.Compression.Gzip if gzip_on else grpc.Compression.NoCompression

    def export(self, signal: str, request, response_cls):
        try:
            return self.stubs[signal].Export(request, timeout=self.timeout,
                                             metadata=self.metadata or None,
                                             compression=self.compression)
        except self.grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            name = code.name if code is not None else "UNKNOWN"
            msg = f"gRPC {name} from {self.target}: {e.details() if hasattr(e, 'details') else e}"
            if name in RETRYABLE_GRPC:
                raise RetryableError(msg)
            raise PermanentError(msg)

    def close(self):
        self.channel.close()


# -- the sink --------------------------------------------------------------------------

class OtlpSink(BatchedSinkMixin, Sink):
    """Events as OTLP logs/spans and metrics as OTLP metrics, pushed in the background."""

    name = "otlp"

    def __init__(self, config: dict | None = None, host: str | None = None):
        c = Config("exporters.otlp", config)
        self.protocol = c.str("protocol", "grpc", choices=PROTOCOLS)
        default_ep = "localhost:4317" if self.protocol == "grpc" else "http://localhost:4318"
        self.endpoint = c.str("endpoint", default_ep)
        if not self.endpoint:
            raise c.error("endpoint", "must not be empty")
        if self.protocol == "http/protobuf" and not self.endpoint.startswith(("http://", "https://")):
            raise c.error("endpoint", f"http/protobuf needs a URL like http://collector:4318, not {self.endpoint!r}")
        headers = c.str_map("headers")
        self.timeout = c.seconds("timeout", 10.0)
        compression = c.str("compression", "none", choices=("none", "gzip"))
        insecure = c.bool("insecure", None)
        batch_size = c.int("batch_size", 512, maximum=1_000_000)
        max_queue = c.int("max_queue", 8192, maximum=100_000_000)
        if max_queue < batch_size:
            raise c.error("max_queue", f"must be at least batch_size ({batch_size}), not {max_queue}")
        interval = c.seconds("interval", 5.0)
        retry_initial = c.seconds("retry_initial", 1.0)
        retry_max = c.seconds("retry_max", 30.0)
        if retry_max < retry_initial:
            raise c.error("retry_max", f"must be at least retry_initial ({retry_initial})")
        tables = c.str_list("tables")
        self.tables = set(tables) if tables is not None else None
        self.span_tables = set(c.str_list("spans") or ())
        self.push_metrics = c.bool("metrics", True)
        extra = c.str_map("resource")
        c.check_unknown()

        self.host = host or socket.gethostname()
        try:
            self.pb = _pb()
        except ImportError as e:
            raise ConfigError(f"protocol: OTLP needs the opentelemetry-proto package "
                              f"(pip install 'kernelscope[agent]'): {e}")
        common, resource = self.pb["common"], self.pb["resource"]
        self.resource = resource.Resource(attributes=attributes(
            resource_attributes(self.host, extra), common=common))
        self.scope = common.InstrumentationScope(name="kernelscope", version=__version__)
        if self.protocol == "grpc":
            try:
                self.transport = _GrpcTransport(self.endpoint, headers, self.timeout,
                                                compression == "gzip", insecure, retry_max)
            except ImportError as e:
                raise ConfigError(f"protocol: grpc needs grpcio "
                                  f"(pip install 'kernelscope[agent]'): {e}")
        else:
            if insecure is not None:
                raise c.error("insecure", "only applies to protocol = \"grpc\"")
            self.transport = _HttpTransport(self.endpoint, headers, self.timeout, compression == "gzip")
        self.start_ns = time.time_ns()
        self._sources: list = []
        self._metric_lock = threading.Lock()
        self.metric_counters = {"metric_points": 0, "metric_exports": 0, "metric_errors": 0,
                                "metric_points_rejected": 0}
        self._closed = False
        self.batcher = Batcher("otlp", self._send, batch_size=batch_size, max_queue=max_queue,
                               interval=interval, retry_initial=retry_initial, retry_max=retry_max,
                               tick=self._push_metrics_tick, flush_timeout=self.timeout)

    # -- Sink interface --

    def set_metric_sources(self, sources) -> None:
        self._sources = list(sources)

    def write(self, table: str, records: list[dict]) -> None:
        if not records or (self.tables is not None and table not in self.tables):
            return
        signal = "traces" if table in self.span_tables else "logs"
        self.batcher.put(signal, [(table, r) for r in records])

    def write_spans(self, table: str, records: list[dict]) -> None:
        """Export these records as spans whatever the `spans` setting says."""
        if records:
            self.batcher.put("traces", [(table, r) for r in records])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.push_metrics and self._sources:
            try:
                self.push_metrics_now()
            except Exception:
                pass
        self.batcher.close()
        self.transport.close()

    def stats(self) -> dict:
        return {**self.batcher.stats(), **self.metric_counters}

    # -- metrics --

    def export_metrics(self, metrics: list) -> None:
        """Push these Metric objects now (raises RetryableError/PermanentError)."""
        now = time.time_ns()
        pb = self.pb
        ms = [metric_proto(m, self.start_ns, now, pb) for m in metrics if m.samples]
        if not ms:
            return
        req = pb["metrics_svc"].ExportMetricsServiceRequest(resource_metrics=[
            pb["metrics"].ResourceMetrics(resource=self.resource, scope_metrics=[
                pb["metrics"].ScopeMetrics(scope=self.scope, metrics=ms)])])
        points = sum(len(m.samples) for m in metrics)
        with self._metric_lock:
            try:
                resp = self.transport.export("metrics", req, pb["metrics_svc"].ExportMetricsServiceResponse)
            except Exception:
                self.metric_counters["metric_errors"] += 1
                raise
            rejected = resp.partial_success.rejected_data_points if resp.HasField("partial_success") else 0
            self.metric_counters["metric_exports"] += 1
            self.metric_counters["metric_points"] += points - rejected
            self.metric_counters["metric_points_rejected"] += rejected

    def push_metrics_now(self) -> None:
        metrics = []
        for s in self._sources:
            metrics.extend(s.collect())
        self.export_metrics(metrics)

    def _push_metrics_tick(self) -> None:
        if self.push_metrics and self._sources:
            self.push_metrics_now()

    # -- events --

    def _send(self, signal: str, items: list) -> int:
        pb = self.pb
        now = time.time_ns()
        by_table: dict[str, list] = {}
        for table, rec in items:
            by_table.setdefault(table, []).append(rec)
        if signal == "logs":
            req = pb["logs_svc"].ExportLogsServiceRequest()
            rl = req.resource_logs.add()
            rl.resource.CopyFrom(self.resource)
            sl = rl.scope_logs.add()
            sl.scope.CopyFrom(self.scope)
            for t, recs in by_table.items():
                for r in recs:
                    log_record(t, r, now, pb, into=sl.log_records)
            resp = self.transport.export("logs", req, pb["logs_svc"].ExportLogsServiceResponse)
            return resp.partial_success.rejected_log_records if resp.HasField("partial_success") else 0
        spans = [span(t, r, pb) for t, recs in by_table.items() for r in recs]
        req = pb["trace_svc"].ExportTraceServiceRequest(resource_spans=[
            pb["trace"].ResourceSpans(resource=self.resource, scope_spans=[
                pb["trace"].ScopeSpans(scope=self.scope, spans=spans)])])
        resp = self.transport.export("traces", req, pb["trace_svc"].ExportTraceServiceResponse)
        return resp.partial_success.rejected_spans if resp.HasField("partial_success") else 0
