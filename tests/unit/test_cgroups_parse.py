"""cgroup path -> container id, runtime, pod UID, QoS, systemd unit (pure parsing)."""

import pytest

from kernelscope.enrich.cgroups import best_info, parse_cgroup_path, parse_proc_cgroup

CID = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
CID2 = "a" * 64
UID = "0c9d8e7f-1a2b-4c3d-8e9f-0123456789ab"
UID_ = UID.replace("-", "_")


@pytest.mark.parametrize("path, cid, runtime, pod, qos, unit", [
    # docker, systemd cgroup driver (v2 and v1 name=systemd / memory)
    (f"/system.slice/docker-{CID}.scope", CID, "docker", None, None, None),
    # docker, cgroupfs driver (v1 controllers)
    (f"/docker/{CID}", CID, "docker", None, None, None),
    # rootless docker
    (f"/user.slice/user-1000.slice/user@1000.service/docker-{CID}.scope", CID, "docker", None, None,
     "user@1000.service"),
    # kubelet, systemd driver, containerd
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope",
     CID, "containerd", UID, "burstable", None),
    # kubelet, systemd driver, CRI-O, besteffort
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{CID}.scope",
     CID, "cri-o", UID, "besteffort", None),
    # guaranteed pods have no QoS level in the path
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope",
     CID, "containerd", UID, "guaranteed", None),
    # kubelet, cgroupfs driver: runtime not named in the path
    (f"/kubepods/burstable/pod{UID}/{CID}", CID, None, UID, "burstable", None),
    (f"/kubepods/pod{UID}/{CID}", CID, None, UID, "guaranteed", None),
    (f"/kubepods/besteffort/pod{UID}/{CID}", CID, None, UID, "besteffort", None),
    # the pod sandbox level only (no container yet)
    (f"/kubepods/burstable/pod{UID}", None, None, UID, "burstable", None),
    # CRI-O conmon beside the container
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{CID}.scope",
     CID, "cri-o", UID, "burstable", None),
    # podman rootful (systemd), rootless, cgroupfs
    (f"/machine.slice/libpod-{CID}.scope", CID, "podman", None, None, None),
    (f"/machine.slice/libpod-{CID}.scope/container", CID, "podman", None, None, None),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope", CID, "podman",
     None, None, "user@1000.service"),
    (f"/libpod_parent/libpod-{CID}", CID, "podman", None, None, None),
    # nerdctl (containerd without kubernetes)
    (f"/system.slice/nerdctl-{CID}.scope", CID, "containerd", None, None, None),
    # kind / docker-in-docker: a node container holding pods; the deepest id wins
    (f"/docker/{CID2}/kubepods/burstable/pod{UID}/{CID}", CID, None, UID, "burstable", None),
    (f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
     f"kubelet-kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope",
     CID, "containerd", UID, "burstable", None),
    # plain systemd services and sessions
    ("/system.slice/nginx.service", None, "systemd", None, None, "nginx.service"),
    ("/system.slice/containerd.service", None, "systemd", None, None, "containerd.service"),
    ("/user.slice/user-1000.slice/session-3.scope", None, None, None, None, None),
    ("/", None, None, None, None, None),
    # not a container id: wrong length
    ("/docker/abc123", None, None, None, None, None),
])
def test_parse_cgroup_path(path, cid, runtime, pod, qos, unit):
    info = parse_cgroup_path(path)
    assert (info.container_id, info.container_runtime, info.pod_uid, info.pod_qos, info.systemd_unit) == \
        (cid, runtime, pod, qos, unit)
    assert info.path == path


def test_columns_names():
    cols = parse_cgroup_path(f"/docker/{CID}").columns()
    assert cols["cgroup_path"] == f"/docker/{CID}"
    assert set(cols) == {"cgroup_path", "container_id", "container_runtime", "pod_uid", "pod_qos",
                         "systemd_unit"}


HYBRID = f"""12:pids:/docker/{CID}
11:memory:/docker/{CID}
10:cpu,cpuacct:/docker/{CID}
1:name=systemd:/system.slice/docker.service
0::/system.slice/docker.service
"""


def test_parse_proc_cgroup_hybrid():
    paths = parse_proc_cgroup(HYBRID)
    assert paths["unified"] == "/system.slice/docker.service"
    assert paths["cpu"] == paths["cpuacct"] == f"/docker/{CID}"
    assert paths["name=systemd"] == "/system.slice/docker.service"
    # the v2 path says only "docker.service"; the v1 controllers name the container
    info = best_info(paths)
    assert (info.container_id, info.container_runtime) == (CID, "docker")


def test_parse_proc_cgroup_v2_only():
    paths = parse_proc_cgroup(f"0::/system.slice/docker-{CID}.scope\n")
    assert paths == {"unified": f"/system.slice/docker-{CID}.scope"}
    assert best_info(paths).container_id == CID


def test_best_info_no_container_keeps_unit():
    info = best_info(parse_proc_cgroup("1:name=systemd:/system.slice/sshd.service\n0::/system.slice/sshd.service\n"))
    assert info.systemd_unit == "sshd.service" and info.container_id is None
