"""Pod UID -> pod name, namespace and labels from the Kubernetes API (in-cluster only).

In a cluster the agent finds KUBERNETES_SERVICE_HOST/PORT and the service-account
token; it lists the pods of its node (spec.nodeName=$NODE_NAME when set, else all
pods it may see) and caches them by UID, refreshing at most every `refresh_interval`
seconds and when an unknown UID shows up. Outside a cluster `from_config` returns
None and nothing is asked.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubernetesPods:
    def __init__(self, api_url: str, token: str | None = None, ca_file: str | None = None,
                 node_name: str | None = None, refresh_interval: float = 30.0, timeout: float = 3.0):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.node_name = node_name
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self._ctx = None
        if self.api_url.startswith("https"):
            self._ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        self._pods: dict[str, dict] = {}
        self._last = 0.0
        self._lock = threading.Lock()
        self.errors = 0
        self.last_error: str | None = None
        self.refreshes = 0

    def _fetch(self) -> None:
        q = {}
        if self.node_name:
            q["fieldSelector"] = f"spec.nodeName={self.node_name}"
        url = f"{self.api_url}/api/v1/pods" + (f"?{urllib.parse.urlencode(q)}" if q else "")
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        self.refreshes += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ctx) as r:
                doc = json.load(r)
        except (OSError, ValueError) as e:
            self.errors += 1
            self.last_error = str(e)
            return
        pods = {}
        for item in doc.get("items", []):
            md = item.get("metadata", {})
            if md.get("uid"):
                pods[md["uid"]] = {"pod_name": md.get("name"), "pod_namespace": md.get("namespace"),
                                   "pod_labels": json.dumps(md.get("labels") or {}, sort_keys=True)}
        self._pods = pods

    def lookup(self, pod_uid: str | None) -> dict | None:
        if not pod_uid:
            return None
        pod = self._pods.get(pod_uid)
        if pod is None and time.monotonic() - self._last >= self.refresh_interval / 10:
            with self._lock:
                if time.monotonic() - self._last >= self.refresh_interval / 10:
                    self._last = time.monotonic()
                    self._fetch()
            pod = self._pods.get(pod_uid)
        elif time.monotonic() - self._last >= self.refresh_interval:
            with self._lock:
                self._last = time.monotonic()
                self._fetch()
        return pod

    def stats(self) -> dict:
        return {"pods": len(self._pods), "refreshes": self.refreshes, "errors": self.errors}


def from_config(cfg: dict, environ=os.environ) -> KubernetesPods | None:
    """Build the client from `[enrich.kubernetes]`: enabled = "auto" | true | false,
    api_url, token_file, ca_file, node_name, refresh_interval."""
    enabled = cfg.get("enabled", "auto")
    if enabled is False:
        return None
    api_url = cfg.get("api_url")
    if not api_url:
        host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            return None          # not in a cluster: skipped cleanly
        if ":" in host:
            host = f"[{host}]"
        api_url = f"https://{host}:{port}"
    token_file = cfg.get("token_file", str(SA_DIR / "token"))
    token = None
    try:
        token = Path(token_file).read_text().strip()
    except OSError:
        if enabled is True and not cfg.get("api_url"):
            raise
    ca = cfg.get("ca_file", str(SA_DIR / "ca.crt"))
    return KubernetesPods(api_url, token, ca if Path(ca).exists() else None,
                          cfg.get("node_name") or environ.get("NODE_NAME"),
                          float(cfg.get("refresh_interval", 30.0)))
