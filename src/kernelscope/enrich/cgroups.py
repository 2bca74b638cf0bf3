"""cgroup -> container: parse runtime, container id, Kubernetes pod UID and QoS from a
cgroup path (pure functions), and map v2 cgroup ids to paths on this host.

Path shapes recognised (v1 and v2, systemd and cgroupfs drivers):
  /system.slice/docker-<id>.scope             docker (systemd driver, v2 or v1)
  /docker/<id>                                docker (cgroupfs driver)
  /system.slice/containerd.service/...        containerd daemon itself (systemd unit)
  .../cri-containerd-<id>.scope               containerd via CRI
  .../crio-<id>.scope, crio-conmon-<id>       CRI-O
  /machine.slice/libpod-<id>.scope, /libpod_parent/libpod-<id>   podman
  .../nerdctl-<id>.scope                      containerd (nerdctl)
  /kubepods/<qos>/pod<uid>/<id>               Kubernetes, cgroupfs driver
  /kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/<runtime>-<id>.scope
  /system.slice/nginx.service                 systemd service
The deepest container id wins (kind / docker-in-docker nest one in another).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")

_HEX64 = r"[0-9a-f]{64}"
# (regex on one path component, runtime)
_SCOPED = [
    (re.compile(rf"^docker-({_HEX64})\.scope$"), "docker"),
    (re.compile(rf"^cri-containerd-({_HEX64})\.scope$"), "containerd"),
    (re.compile(rf"^crio-conmon-({_HEX64})\.scope$"), "cri-o"),
    (re.compile(rf"^crio-({_HEX64})(?:\.scope)?$"), "cri-o"),
    (re.compile(rf"^libpod-conmon-({_HEX64})(?:\.scope)?$"), "podman"),
    (re.compile(rf"^libpod-({_HEX64})(?:\.scope)?(?:/container)?$"), "podman"),
    (re.compile(rf"^nerdctl-({_HEX64})\.scope$"), "containerd"),
    (re.compile(rf"^containerd-({_HEX64})\.scope$"), "containerd"),
]
_BARE = re.compile(rf"^({_HEX64})$")
_POD_V1 = re.compile(r"^pod([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_POD_SLICE = re.compile(
    r"^(?:kubelet-)?kubepods(?:-(burstable|besteffort))?-pod([0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12})\.slice$")
_QOS_V1 = {"burstable": "burstable", "besteffort": "besteffort"}
_QOS_SLICE = re.compile(r"^(?:kubelet-)?kubepods-(burstable|besteffort)\.slice$")
# a bare id directly under these parents names its runtime (cgroupfs drivers)
_BARE_PARENT = {"docker": "docker", "libpod_parent": "podman", "machine": "podman"}


@dataclass
class CgroupInfo:
    path: str
    container_id: str | None = None
    container_runtime: str | None = None    # docker, containerd, cri-o, podman, systemd
    pod_uid: str | None = None
    pod_qos: str | None = None              # guaranteed, burstable, besteffort
    systemd_unit: str | None = None

    def columns(self) -> dict:
        """The record columns (a shared dict: callers copy it with dict.update)."""
        cols = self.__dict__.get("_columns")
        if cols is None:
            cols = {"cgroup_path": self.path, "container_id": self.container_id,
                    "container_runtime": self.container_runtime, "pod_uid": self.pod_uid,
                    "pod_qos": self.pod_qos, "systemd_unit": self.systemd_unit}
            self.__dict__["_columns"] = cols
        return cols


def parse_cgroup_path(path: str) -> CgroupInfo:
    """Everything a cgroup path says about its container, pod and systemd unit."""
    info = CgroupInfo(path=path)
    parts = [p for p in path.split("/") if p]
    in_kubepods = False
    for i, part in enumerate(parts):
        if part in ("kubepods", "kubepods.slice") or part.endswith("-kubepods.slice"):
            in_kubepods = True
            info.pod_qos = info.pod_qos or "guaranteed"
            continue
        if in_kubepods:
            if part in _QOS_V1:
                info.pod_qos = _QOS_V1[part]
                continue
            m = _QOS_SLICE.match(part)
            if m:
                info.pod_qos = m.group(1)
                continue
            m = _POD_V1.match(part)
            if m:
                info.pod_uid = m.group(1)
                continue
            m = _POD_SLICE.match(part)
            if m:
                if m.group(1):
                    info.pod_qos = m.group(1)
                info.pod_uid = m.group(2).replace("_", "-")
                continue
        matched = False
        for rx, runtime in _SCOPED:
            m = rx.match(part)
            if m:
                info.container_id, info.container_runtime = m.group(1), runtime
                matched = True
                break
        if matched:
            continue
        m = _BARE.match(part)
        if m:
            info.container_id = m.group(1)
            parent = parts[i - 1] if i else ""
            # a bare id names its runtime only through its parent (cgroupfs drivers);
            # under kubepods/<qos>/pod<uid>/ the kubelet does not say which runtime
            info.container_runtime = _BARE_PARENT.get(parent)
            continue
        if part.endswith(".service"):
            info.systemd_unit = part
    if not info.container_id and not info.pod_uid and info.systemd_unit:
        info.container_runtime = "systemd"
    if not in_kubepods:
        info.pod_qos = None
    return info


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller or "unified": path} (v1 lines and the v2 0:: line)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, ctrls, path = parts
        if hid == "0" and ctrls == "":
            out["unified"] = path
            continue
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


def best_info(paths: dict[str, str]) -> CgroupInfo:
    """The most informative parse among several paths (v2 first, then v1 controllers)."""
    order = ["unified", "name=systemd", "memory", "pids", "cpu", "cpuacct", "blkio", "devices"]
    keys = [k for k in order if k in paths] + [k for k in paths if k not in order]
    best = None
    for k in keys:
        info = parse_cgroup_path(paths[k])
        score = (info.container_id is not None) * 4 + (info.pod_uid is not None) * 2 + \
            (info.systemd_unit is not None)
        if best is None or score > best[0]:
            best = (score, info)
    return best[1] if best else CgroupInfo(path="/")


def unified_root() -> Path | None:
    """The cgroup v2 mount: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return CGROUP_ROOT
    if (CGROUP_ROOT / "unified" / "cgroup.procs").exists():
        return CGROUP_ROOT / "unified"
    return None


class CgroupResolver:
    """v2 cgroup id -> CgroupInfo: the id is the inode number of the cgroup's directory.

    Ids are cached; an unknown id triggers a rescan of the hierarchy (at most every
    `rescan_interval` seconds) since new cgroups appear as containers start.
    """

    def __init__(self, root: Path | None = None, rescan_interval: float = 0.1, max_entries: int = 65536,
                 forget_missing_after: float = 60.0):
        self.root = root if root is not None else unified_root()
        self.rescan_interval = rescan_interval
        self.max_entries = max_entries
        self.forget_missing_after = forget_missing_after
        self._ids: dict[int, CgroupInfo] = {}
        self._missing: set[int] = set()     # not found by a scan: gone before we looked
        self._missing_since = time.monotonic()
        self._last_scan = 0.0
        self._lock = threading.Lock()
        self.scans = 0

    def _scan(self) -> None:
        self.scans += 1
        self._last_scan = time.monotonic()
        if self.root is None:
            return
        ids: dict[int, CgroupInfo] = {}
        root = str(self.root)
        for dirpath, dirnames, _files in os.walk(root):
            try:
                ino = os.stat(dirpath).st_ino
            except OSError:
                continue
            rel = dirpath[len(root):] or "/"
            ids[ino] = self._ids.get(ino) or parse_cgroup_path(rel)
            if len(ids) >= self.max_entries:
                break
        self._ids = ids

    def lookup(self, cgroup_id: int) -> CgroupInfo | None:
        """The cgroup's info, rescanning (at most every rescan_interval) for new ids."""
        info = self._ids.get(cgroup_id)
        if info is not None or not cgroup_id:
            return info
        with self._lock:
            now = time.monotonic()
            if now - self._missing_since > self.forget_missing_after:
                self._missing.clear()
                self._missing_since = now
            if cgroup_id in self._missing:
                return None
            info = self._ids.get(cgroup_id)
            if info is None:
                wait = self.rescan_interval - (now - self._last_scan)
                if wait > 0:
                    time.sleep(wait)    # a burst of new cgroups costs at most 1/interval scans/s
                self._scan()
                info = self._ids.get(cgroup_id)
                if info is None:
                    self._missing.add(cgroup_id)
        return info


def proc_cgroups(pid: int) -> dict[str, str] | None:
    try:
        return parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
    except OSError:
        return None
