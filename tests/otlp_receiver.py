"""A real OTLP receiver for tests: gRPC (the opentelemetry.proto.collector services) and
HTTP/protobuf (POST /v1/logs, /v1/metrics, /v1/traces) on free ports, built from the
official opentelemetry-proto classes.

Every request is decoded and checked (resource with service.name and host.name,
non-zero timestamps, attribute values of a known type, well-formed metrics and spans);
a request that fails a check is refused (INVALID_ARGUMENT / HTTP 400) and its problems
are kept in `problems`, so a test asserting `not rx.problems` catches a bad exporter.
Accepted data is stored as plain Python values for assertions:

    rx.logs    [{"resource": {...}, "time_ns", "observed_ns", "severity", "body",
                 "event_name", "attrs": {...}}]
    rx.spans   [{"resource", "name", "kind", "start_ns", "end_ns", "trace_id", "span_id",
                 "status", "attrs"}]
    rx.metrics [{"resource", "name", "kind", "unit", "description", "monotonic",
                 "temporality", "points": [{"attrs", "value" | "bounds", "counts", "sum",
                 "count", "start_ns", "time_ns"}]}]

`fail_next(n, code)` refuses the next n requests with a gRPC code name (the HTTP
transport maps UNAVAILABLE -> 503, INVALID_ARGUMENT -> 400, RESOURCE_EXHAUSTED -> 429).
`stop()` and `start()` take the servers down and up again on the same ports.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_svc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_svc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_svc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc

HTTP_CODES = {"UNAVAILABLE": 503, "INVALID_ARGUMENT": 400, "RESOURCE_EXHAUSTED": 429,
              "INTERNAL": 500, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def any_value(v, where: str, problems: list, empty_ok: bool = False):
    """AnyValue -> Python. An empty AnyValue (null) is valid in an array; as an attribute
    value it is a problem (an exporter should leave the attribute out)."""
    kind = v.WhichOneof("value")
    if kind is None:
        if not empty_ok:
            problems.append(f"{where}: AnyValue with no value")
        return None
    if kind == "array_value":
        return [any_value(x, f"{where}[{i}]", problems, empty_ok=True)
                for i, x in enumerate(v.array_value.values)]
    if kind == "kvlist_value":
        return kv_dict(v.kvlist_value.values, where, problems)
    return getattr(v, kind)


def kv_dict(kvs, where: str, problems: list) -> dict:
    out = {}
    for kv in kvs:
        if not kv.key:
            problems.append(f"{where}: attribute with an empty key")
        if kv.key in out:
            problems.append(f"{where}: duplicate attribute {kv.key!r}")
        out[kv.key] = any_value(kv.value, f"{where}.{kv.key}", problems)
    return out


def check_resource(res, where: str, problems: list) -> dict:
    attrs = kv_dict(res.attributes, f"{where}.resource", problems)
    for key in ("service.name", "host.name"):
        if not isinstance(attrs.get(key), str) or not attrs[key]:
            problems.append(f"{where}: resource lacks a string {key}")
    return attrs


def check_scope(scope, where: str, problems: list) -> None:
    if not scope.name:
        problems.append(f"{where}: instrumentation scope without a name")


def decode_logs(req, problems: list) -> list[dict]:
    out = []
    if not req.resource_logs:
        problems.append("logs: request without resource_logs")
    for i, rl in enumerate(req.resource_logs):
        res = check_resource(rl.resource, f"logs[{i}]", problems)
        for sl in rl.scope_logs:
            check_scope(sl.scope, f"logs[{i}]", problems)
            for j, lr in enumerate(sl.log_records):
                where = f"logs[{i}].record[{j}]"
                if not lr.time_unix_nano or not lr.observed_time_unix_nano:
                    problems.append(f"{where}: zero timestamp")
                if lr.time_unix_nano and lr.time_unix_nano < 10**18:
                    problems.append(f"{where}: time {lr.time_unix_nano} is not UNIX ns")
                if not 1 <= lr.severity_number <= 24:
                    problems.append(f"{where}: severity_number {lr.severity_number} out of range")
                out.append({"resource": res, "time_ns": lr.time_unix_nano,
                            "observed_ns": lr.observed_time_unix_nano,
                            "severity": lr.severity_number, "severity_text": lr.severity_text,
                            "body": any_value(lr.body, f"{where}.body", problems),
                            "event_name": getattr(lr, "event_name", ""),
                            "attrs": kv_dict(lr.attributes, where, problems)})
    return out


def decode_spans(req, problems: list) -> list[dict]:
    out = []
    if not req.resource_spans:
        problems.append("traces: request without resource_spans")
    for i, rs in enumerate(req.resource_spans):
        res = check_resource(rs.resource, f"traces[{i}]", problems)
        for ss in rs.scope_spans:
            check_scope(ss.scope, f"traces[{i}]", problems)
            for j, sp in enumerate(ss.spans):
                where = f"traces[{i}].span[{j}]"
                if len(sp.trace_id) != 16 or not any(sp.trace_id):
                    problems.append(f"{where}: bad trace_id")
                if len(sp.span_id) != 8 or not any(sp.span_id):
                    problems.append(f"{where}: bad span_id")
                if not sp.name:
                    problems.append(f"{where}: empty name")
                if not sp.start_time_unix_nano or not sp.end_time_unix_nano:
                    problems.append(f"{where}: zero timestamp")
                if sp.end_time_unix_nano < sp.start_time_unix_nano:
                    problems.append(f"{where}: ends before it starts")
                out.append({"resource": res, "name": sp.name, "kind": sp.kind,
                            "start_ns": sp.start_time_unix_nano, "end_ns": sp.end_time_unix_nano,
                            "trace_id": sp.trace_id.hex(), "span_id": sp.span_id.hex(),
                            "parent_span_id": sp.parent_span_id.hex(),
                            "status": sp.status.code, "attrs": kv_dict(sp.attributes, where, problems)})
    return out


def _number(p, where, problems):
    kind = p.WhichOneof("value")
    if kind is None:
        problems.append(f"{where}: number point without a value")
        return None
    return getattr(p, kind)


def _point_times(p, where, problems, need_start: bool):
    if not p.time_unix_nano:
        problems.append(f"{where}: zero time")
    if need_start and not p.start_time_unix_nano:
        problems.append(f"{where}: cumulative point without a start time")
    if p.start_time_unix_nano and p.start_time_unix_nano > p.time_unix_nano:
        problems.append(f"{where}: start after time")


def decode_metrics(req, problems: list) -> list[dict]:
    out = []
    if not req.resource_metrics:
        problems.append("metrics: request without resource_metrics")
    for i, rm in enumerate(req.resource_metrics):
        res = check_resource(rm.resource, f"metrics[{i}]", problems)
        for sm in rm.scope_metrics:
            check_scope(sm.scope, f"metrics[{i}]", problems)
            for m in sm.metrics:
                where = f"metric {m.name!r}"
                if not m.name:
                    problems.append("metric without a name")
                kind = m.WhichOneof("data")
                rec = {"resource": res, "name": m.name, "kind": kind, "unit": m.unit,
                       "description": m.description, "points": []}
                if kind in ("sum", "gauge"):
                    data = getattr(m, kind)
                    if kind == "sum":
                        rec["monotonic"] = data.is_monotonic
                        rec["temporality"] = data.aggregation_temporality
                        if data.aggregation_temporality == 0:
                            problems.append(f"{where}: sum without temporality")
                    for p in data.data_points:
                        _point_times(p, where, problems, kind == "sum" and data.aggregation_temporality == 2)
                        rec["points"].append({"attrs": kv_dict(p.attributes, where, problems),
                                              "value": _number(p, where, problems),
                                              "start_ns": p.start_time_unix_nano,
                                              "time_ns": p.time_unix_nano})
                elif kind == "histogram":
                    h = m.histogram
                    rec["temporality"] = h.aggregation_temporality
                    if h.aggregation_temporality == 0:
                        problems.append(f"{where}: histogram without temporality")
                    for p in h.data_points:
                        _point_times(p, where, problems, h.aggregation_temporality == 2)
                        bounds, counts = list(p.explicit_bounds), list(p.bucket_counts)
                        if len(counts) != len(bounds) + 1:
                            problems.append(f"{where}: {len(counts)} bucket counts for {len(bounds)} bounds")
                        if any(b >= a for a, b in zip(bounds[1:], bounds)):
                            problems.append(f"{where}: bounds not strictly increasing")
                        if sum(counts) != p.count:
                            problems.append(f"{where}: bucket counts sum {sum(counts)} != count {p.count}")
                        rec["points"].append({"attrs": kv_dict(p.attributes, where, problems),
                                              "bounds": bounds, "counts": counts, "sum": p.sum,
                                              "count": p.count, "start_ns": p.start_time_unix_nano,
                                              "time_ns": p.time_unix_nano})
                else:
                    problems.append(f"{where}: unexpected data kind {kind!r}")
                out.append(rec)
    return out


SIGNALS = {
    "logs": (logs_svc.ExportLogsServiceRequest, logs_svc.ExportLogsServiceResponse, decode_logs),
    "metrics": (metrics_svc.ExportMetricsServiceRequest, metrics_svc.ExportMetricsServiceResponse,
                decode_metrics),
    "traces": (trace_svc.ExportTraceServiceRequest, trace_svc.ExportTraceServiceResponse, decode_spans),
}


class OtlpReceiver:
    """Both transports of one receiver; use as a context manager."""

    def __init__(self):
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.lock = threading.RLock()   # predicates of wait_for call logs_where()
        self.cond = threading.Condition(self.lock)
        self.logs: list[dict] = []
        self.spans: list[dict] = []
        self.metrics: list[dict] = []
        self.problems: list[str] = []
        self.requests: list[tuple[str, str]] = []   # (transport, signal) per accepted request
        self.refused = 0
        self.headers: list[dict] = []               # request headers / metadata seen
        self._fail: list[str] = []
        self._grpc = None
        self._http = None
        self._http_thread = None

    # -- lifecycle --

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> "OtlpReceiver":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        rx = self

        class Logs(logs_grpc.LogsServiceServicer):
            def Export(self, request, context):
                return rx._grpc_export("logs", request, context)

        class Metrics(metrics_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                return rx._grpc_export("metrics", request, context)

        class Traces(trace_grpc.TraceServiceServicer):
            def Export(self, request, context):
                return rx._grpc_export("traces", request, context)

        logs_grpc.add_LogsServiceServicer_to_server(Logs(), server)
        metrics_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        trace_grpc.add_TraceServiceServicer_to_server(Traces(), server)
        if server.add_insecure_port(self.grpc_endpoint) != self.grpc_port:
            raise RuntimeError(f"cannot bind gRPC port {self.grpc_port}")
        server.start()
        self._grpc = server

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                rx._http_post(self)

            def log_message(self, *a):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._http = ThreadingHTTPServer(("127.0.0.1", self.http_port), Handler)
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._http_thread.start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait()
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- test controls --

    def fail_next(self, n: int, code: str = "UNAVAILABLE") -> None:
        with self.lock:
            self._fail.extend([code] * n)

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def logs_where(self, **attrs) -> list[dict]:
        with self.lock:
            return [r for r in self.logs if all(r["attrs"].get(k) == v for k, v in attrs.items())]

    def metric(self, name: str) -> dict | None:
        """The most recent export of metric `name`."""
        with self.lock:
            found = [m for m in self.metrics if m["name"] == name]
        return found[-1] if found else None

    # -- handling --

    def _accept(self, transport: str, signal: str, request, headers: dict):
        """Returns (None, response) or (code name, message)."""
        req_cls, resp_cls, decode = SIGNALS[signal]
        with self.lock:
            if self._fail:
                self.refused += 1
                return self._fail.pop(0), "injected failure"
        problems: list[str] = []
        items = decode(request, problems)
        with self.cond:
            self.headers.append(headers)
            if problems:
                self.problems.extend(f"{transport}/{signal}: {p}" for p in problems)
                self.refused += 1
                self.cond.notify_all()
                return "INVALID_ARGUMENT", "; ".join(problems[:5])
            {"logs": self.logs, "metrics": self.metrics, "traces": self.spans}[signal].extend(items)
            self.requests.append((transport, signal))
            self.cond.notify_all()
        return None, resp_cls()

    def _grpc_export(self, signal: str, request, context):
        headers = {k: v for k, v in context.invocation_metadata()}
        code, result = self._accept("grpc", signal, request, headers)
        if code:
            context.abort(getattr(grpc.StatusCode, code), result)
        return result

    def _http_post(self, h: BaseHTTPRequestHandler) -> None:
        signal = {"/v1/logs": "logs", "/v1/metrics": "metrics", "/v1/traces": "traces"}.get(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length)
        if signal is None:
            return self._http_reply(h, 404, b"unknown path")
        if h.headers.get("Content-Type") != "application/x-protobuf":
            with self.lock:
                self.problems.append(f"http: Content-Type {h.headers.get('Content-Type')!r}")
            return self._http_reply(h, 415, b"want application/x-protobuf")
        if h.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req_cls = SIGNALS[signal][0]
        request = req_cls()
        try:
            request.ParseFromString(body)
        except Exception as e:
            with self.lock:
                self.problems.append(f"http/{signal}: undecodable body: {e}")
            return self._http_reply(h, 400, b"bad protobuf")
        code, result = self._accept("http", signal, request, {k.lower(): v for k, v in h.headers.items()})
        if code:
            return self._http_reply(h, HTTP_CODES.get(code, 500), result.encode())
        self._http_reply(h, 200, result.SerializeToString(), "application/x-protobuf")

    @staticmethod
    def _http_reply(h, status: int, body: bytes, ctype: str = "text/plain") -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
