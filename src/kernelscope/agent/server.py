"""The agent's HTTP API: /metrics, /api/status, /api/query, /healthz (threads, stdlib only)."""

from __future__ import annotations

import csv
import io
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kernelscope.errors import KernelscopeError
from kernelscope.export.prometheus import CONTENT_TYPE


def _json_default(o):
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if isinstance(o, (bytes, bytearray)):
        return o.decode("utf-8", "replace")
    return str(o)


def table_rows_json(table) -> bytes:
    return json.dumps({"columns": table.column_names, "rows": table.to_pylist()},
                      default=_json_default).encode()


def table_csv(table) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(table.column_names)
    for row in table.to_pylist():
        w.writerow([json.dumps(v, default=_json_default) if isinstance(v, (list, dict)) else
                    ("" if v is None else v) for v in row.values()])
    return buf.getvalue().encode()


def table_arrow(table) -> bytes:
    import pyarrow as pa
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


class _Handler(BaseHTTPRequestHandler):
    agent = None
    server_version = "kernelscope-agent"

    def log_message(self, fmt, *args):   # quiet: scrapes every second would flood stderr
        pass

    def _send(self, code: int, body: bytes, ctype: str):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, msg: str):
        self._send(code, json.dumps({"error": msg}).encode(), "application/json")

    def do_GET(self):
        self._route(None)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self._route(self.rfile.read(n).decode("utf-8", "replace") if n else "")

    def _route(self, body):
        url = urllib.parse.urlsplit(self.path)
        qs = urllib.parse.parse_qs(url.query)
        try:
            if url.path == "/metrics":
                self._send(200, self.agent.metrics_text().encode(), CONTENT_TYPE)
            elif url.path == "/api/status":
                self._send(200, json.dumps(self.agent.status(), default=_json_default).encode(),
                           "application/json")
            elif url.path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif url.path == "/api/query":
                sql = body if body else (qs.get("sql") or [""])[0]
                if not sql.strip():
                    return self._error(400, "query: no SQL given (POST it, or ?sql=)")
                fmt = (qs.get("format") or ["json"])[0]
                table = self.agent.query(sql)
                if fmt == "arrow":
                    self._send(200, table_arrow(table), "application/vnd.apache.arrow.stream")
                elif fmt == "csv":
                    self._send(200, table_csv(table), "text/csv")
                elif fmt == "json":
                    self._send(200, table_rows_json(table), "application/json")
                else:
                    self._error(400, f"query: unknown format {fmt!r} (json, csv, arrow)")
            else:
                self._error(404, f"no such endpoint {url.path} (/metrics, /api/status, /api/query)")
        except KernelscopeError as e:
            self._error(400, str(e))
        except BrokenPipeError:
            pass
        except Exception as e:   # an HTTP client must get an answer, not a dropped connection
            self._error(500, f"{type(e).__name__}: {e}")


class ApiServer:
    def __init__(self, agent, host: str, port: int):
        handler = type("Handler", (_Handler,), {"agent": agent})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise KernelscopeError(f"cannot listen on {host}:{port}: {e.strerror}")
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="ks-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self.httpd.server_address[:2]

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
