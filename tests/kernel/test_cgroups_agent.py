"""Real cgroups named as container runtimes name them: a process moved into each one
execs, and the agent's stored exec row carries the container id, runtime, pod UID and
QoS. v2 groups are found by cgroup id (inode) under the unified hierarchy; a v1-only
group (cgroupfs driver on a hybrid host) through /proc/PID/cgroup."""

import json
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from agent_support import AgentProc, unique_binary, wait_for
from kernelscope.enrich.cgroups import unified_root

pytestmark = pytest.mark.kernel


def _hex64():
    return uuid.uuid4().hex + uuid.uuid4().hex


def _cases():
    cid = [_hex64() for _ in range(6)]
    uid = [str(uuid.uuid4()) for _ in range(3)]
    return [
        # (v2 path below the unified root, container id, runtime, pod uid, qos)
        (f"system.slice/docker-{cid[0]}.scope", cid[0], "docker", None, None),
        (f"kubepods/burstable/pod{uid[0]}/{cid[1]}", cid[1], None, uid[0], "burstable"),
        (f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid[1].replace('-', '_')}.slice/"
         f"cri-containerd-{cid[2]}.scope", cid[2], "containerd", uid[1], "besteffort"),
        (f"kubepods.slice/kubepods-pod{uid[2].replace('-', '_')}.slice/crio-{cid[3]}.scope",
         cid[3], "cri-o", uid[2], "guaranteed"),
        (f"machine.slice/libpod-{cid[4]}.scope", cid[4], "podman", None, None),
    ], cid[5]


def _make(root: Path, rel: str) -> list[Path]:
    made = []
    p = root
    for part in rel.split("/"):
        p = p / part
        if not p.exists():
            p.mkdir()
            made.append(p)
    return made


def _rmdirs(dirs):
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass


def _fake_kubernetes_api(pods: dict):
    """A Kubernetes API server answering GET /api/v1/pods with `pods` (uid -> name)."""
    class Api(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            items = [{"metadata": {"uid": u, "name": n, "namespace": "shop", "labels": {"app": n}}}
                     for u, n in pods.items()]
            body = json.dumps({"items": items}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    srv = HTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.mark.skipif(unified_root() is None, reason="no cgroup v2 hierarchy")
def test_exec_rows_carry_container_context(tmp_path, no_leaks):
    root = unified_root()
    cases, v1_cid = _cases()
    pods = {c[3]: f"pod-{i}" for i, c in enumerate(cases) if c[3]}
    api = _fake_kubernetes_api(pods)
    token = tmp_path / "token"
    token.write_text("t0ken")
    k8s = (f'[enrich.kubernetes]\nenabled = true\napi_url = "http://127.0.0.1:{api.server_port}"\n'
           f'token_file = "{token}"\n')
    v1_root = Path("/sys/fs/cgroup/pids")
    created: list[Path] = []
    names = []
    try:
        with AgentProc(tmp_path, extra=k8s) as agent:
            for i, (rel, cid, runtime, pod, qos) in enumerate(cases):
                created += _make(root, rel)
                name = f"kscg{i}{uuid.uuid4().hex[:6]}"
                names.append(name)
                binary = unique_binary(tmp_path, name)
                # move this shell into the group, then exec the uniquely named binary
                subprocess.run(["sh", "-c", f'echo $$ > "{root / rel}/cgroup.procs" && exec "{binary}"'],
                               check=True)
            v1_name = None
            if (v1_root / "cgroup.procs").exists():
                created += _make(v1_root, f"docker/{v1_cid}")
                v1_name = f"kscgv1{uuid.uuid4().hex[:6]}"
                v1_bin = unique_binary(tmp_path, v1_name, "/bin/sleep")
                # alive while the agent reads /proc/PID/cgroup
                subprocess.run(["sh", "-c", f'echo $$ > "{v1_root}/docker/{v1_cid}/cgroup.procs" && '
                                f'exec "{v1_bin}" 2'], check=True)

            def rows():
                from kernelscope import store
                want = names + ([v1_name] if v1_name else [])
                t = store.query("SELECT comm, cgroup_path, container_id, container_runtime, pod_uid, pod_qos, "
                                "pod_name, pod_namespace, pod_labels "
                                "FROM proc_exec WHERE comm IN (" + ",".join(f"'{n}'" for n in want) + ")",
                                agent.store)
                got = {r["comm"]: r for r in t.to_pylist()}
                return got if len(got) == len(want) else None

            got = wait_for(rows, timeout=15)
            assert got, rows()
            assert agent.stop() == 0
        for name, (rel, cid, runtime, pod, qos) in zip(names, cases):
            r = got[name]
            assert r["cgroup_path"] == "/" + rel
            assert (r["container_id"], r["container_runtime"], r["pod_uid"], r["pod_qos"]) == \
                (cid, runtime, pod, qos), r
            if pod:   # name, namespace and labels from the (fake) Kubernetes API
                assert (r["pod_name"], r["pod_namespace"], json.loads(r["pod_labels"])) == \
                    (pods[pod], "shop", {"app": pods[pod]}), r
            else:
                assert r["pod_name"] is None
        if v1_name:
            r = got[v1_name]
            assert (r["container_id"], r["container_runtime"]) == (v1_cid, "docker"), r
    finally:
        api.shutdown()
        _rmdirs(created)
    assert not any(p.exists() for p in created)
