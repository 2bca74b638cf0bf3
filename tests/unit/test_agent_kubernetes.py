"""Pod UID -> name/namespace/labels from a Kubernetes API (a local fake API server)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from kernelscope.enrich.kubernetes import KubernetesPods, from_config

UID = "0c9d8e7f-1a2b-4c3d-8e9f-0123456789ab"


class _Api(BaseHTTPRequestHandler):
    calls = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        type(self).calls.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"items": [{"metadata": {"uid": UID, "name": "web-1", "namespace": "shop",
                                                   "labels": {"app": "web"}}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_lookup_from_api(tmp_path):
    srv = HTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        tok = tmp_path / "token"
        tok.write_text("s3cret\n")
        k = from_config({"enabled": True, "api_url": f"http://127.0.0.1:{srv.server_port}",
                         "token_file": str(tok), "node_name": "node-a"}, environ={})
        assert k.lookup(UID) == {"pod_name": "web-1", "pod_namespace": "shop",
                                 "pod_labels": '{"app": "web"}'}
        assert k.lookup(UID)["pod_name"] == "web-1"     # cached: one request
        assert len(_Api.calls) == 1
        path, auth = _Api.calls[0]
        assert path == "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a"
        assert auth == "Bearer s3cret"
        assert k.lookup(None) is None
    finally:
        srv.shutdown()


def test_skipped_outside_a_cluster():
    assert from_config({"enabled": "auto"}, environ={}) is None
    assert from_config({"enabled": False}, environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) is None


def test_unreachable_api_counts_errors():
    k = KubernetesPods("http://127.0.0.1:9", timeout=0.5)
    assert k.lookup(UID) is None
    assert k.errors == 1 and k.last_error
