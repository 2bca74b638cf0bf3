"""The agent with [exporters.otlp]: exec records reach an OTLP/HTTP receiver as logs, the
agent's metrics as OTLP metrics, and SIGTERM delivers everything before exit."""

import gzip
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent_support import AgentProc, unique_binary, wait_for

pytestmark = pytest.mark.e2e
logs_pb = pytest.importorskip("opentelemetry.proto.collector.logs.v1.logs_service_pb2")
metrics_pb = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")


class Receiver(BaseHTTPRequestHandler):
    logs: list = []
    metrics: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/logs":
            req = logs_pb.ExportLogsServiceRequest()
            req.ParseFromString(body)
            type(self).logs.append(req)
            out = logs_pb.ExportLogsServiceResponse()
        elif self.path == "/v1/metrics":
            req = metrics_pb.ExportMetricsServiceRequest()
            req.ParseFromString(body)
            type(self).metrics.append(req)
            out = metrics_pb.ExportMetricsServiceResponse()
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = out.SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _exec_logs(name: str) -> list:
    out = []
    for req in Receiver.logs:
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                for lr in sl.log_records:
                    attrs = {a.key: a.value for a in lr.attributes}
                    if "comm" in attrs and attrs["comm"].string_value == name:
                        out.append(attrs)
    return out


def test_exec_records_and_metrics_reach_otlp(tmp_path, no_leaks):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    name = "kso" + uuid.uuid4().hex[:10]
    binary = unique_binary(tmp_path, name)
    extra = (f'[exporters.otlp]\nprotocol = "http/protobuf"\nendpoint = "http://127.0.0.1:{srv.server_port}"\n'
             'interval = 0.5\ntables = ["proc_exec"]\n')
    try:
        with AgentProc(tmp_path, extra=extra) as agent:
            st = agent.status()
            assert "otlp" in st["sinks"], st["sinks"]
            for _ in range(12):
                subprocess.run([str(binary)], check=True)
            assert wait_for(lambda: len(_exec_logs(name)) == 12, timeout=15), len(_exec_logs(name))
            for _ in range(5):       # these go out at shutdown
                subprocess.run([str(binary)], check=True)
            assert agent.stop() == 0, agent.stderr
        logs = _exec_logs(name)
        assert len(logs) == 17
        assert {a["exe"].string_value for a in logs if "exe" in a} <= {str(binary)}
        assert all(a["retval"].int_value == 0 and a["pid"].int_value > 0 for a in logs)
        names = {m.name for req in Receiver.metrics for rm in req.resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics}
        assert "kernelscope_exec" in names or "kernelscope_exec_total" in names, sorted(names)[:20]
        assert any(n.startswith("kernelscope_events_received") for n in names)
    finally:
        srv.shutdown()
