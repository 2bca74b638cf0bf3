"""biolatency and biosnoop against a loop device this test creates: N O_DIRECT reads of a
known size, counted and sized exactly (other disks' I/O is filtered out by device)."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import start_ks, wait_attached

N_READS = 12
READ_SIZE = 16384


@pytest.fixture
def loopdev():
    if not shutil.which("losetup") or not os.path.exists("/dev/loop-control"):
        pytest.skip("no loop device support (losetup or /dev/loop-control missing)")
    fd, backing = tempfile.mkstemp(prefix="ks_loop_", dir="/tmp")
    os.ftruncate(fd, 8 << 20)
    os.close(fd)
    r = subprocess.run(["losetup", "-f", "--show", backing], capture_output=True, text=True)
    if r.returncode:
        os.unlink(backing)
        pytest.skip(f"loop devices unavailable: {r.stderr.strip()}")
    dev = r.stdout.strip()
    try:
        if shutil.which("udevadm"):
            subprocess.run(["udevadm", "settle", "-t", "5"], capture_output=True)
        time.sleep(0.3)
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
        os.unlink(backing)


def direct_reads(dev: str, n: int = N_READS, size: int = READ_SIZE) -> None:
    buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT needs
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        for i in range(n):
            assert os.preadv(fd, [buf], i * size * 2) == size
    finally:
        os.close(fd)
        buf.close()


def stop(proc) -> tuple[str, str]:
    proc.send_signal(2)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


def json_lines(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_biosnoop_counts_and_sizes_direct_reads(loopdev, no_leaks, tmp_path):
    out_file = tmp_path / "bio.json"
    name = os.path.basename(loopdev)
    proc = start_ks("biosnoop", "--json", "-d", name, "-o", str(out_file))
    wait_attached(proc)
    direct_reads(loopdev)
    time.sleep(0.5)
    stop(proc)
    recs = json_lines(out_file)
    bios = [r for r in recs if r["type"] == "bio"]
    assert [r for r in recs if r["type"] == "summary"][0]["lost"] == 0
    assert len(bios) == N_READS, bios
    assert all(r["disk"] == name for r in bios)
    assert all(r["bytes"] == READ_SIZE for r in bios)
    assert all(r["rw"] == "R" for r in bios)
    assert sorted(r["sector"] for r in bios) == [i * READ_SIZE * 2 // 512 for i in range(N_READS)]
    assert all(0 < r["latency_ms"] < 1000 for r in bios)
    # issued by this test process (blk-mq issues directly in the submitter's context)
    assert {r["pid"] for r in bios} == {os.getpid()}


def test_biosnoop_text_output(loopdev, no_leaks):
    name = os.path.basename(loopdev)
    proc = start_ks("biosnoop", "-d", name)
    wait_attached(proc)
    direct_reads(loopdev, n=3)
    time.sleep(0.5)
    out, _ = stop(proc)
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["TIME(s)", "COMM", "PID"]
    rows = [ln.split() for ln in lines[1:]]
    assert len(rows) == 3
    for row in rows:
        assert row[3] == name and row[4] == "R" and row[6] == str(READ_SIZE)


def test_biolatency_per_disk_total(loopdev, no_leaks, tmp_path):
    out_file = tmp_path / "lat.json"
    name = os.path.basename(loopdev)
    proc = start_ks("biolatency", "-D", "-F", "--json", "-o", str(out_file))
    wait_attached(proc)
    direct_reads(loopdev)
    time.sleep(0.5)
    stop(proc)
    recs = json_lines(out_file)
    mine = [r for r in recs if r["type"] == "histogram" and r.get("disk") == name]
    assert sum(r["total"] for r in mine) == N_READS, mine
    assert {r["flags"] for r in mine} == {"Sync-Read"}
    for r in mine:
        assert r["unit"] == "usecs"
        assert sum(b["count"] for b in r["buckets"]) == r["total"]


def test_biolatency_queued_and_filter_text(loopdev, no_leaks):
    name = os.path.basename(loopdev)
    proc = start_ks("biolatency", "-Q", "-m", "-d", name)
    wait_attached(proc)
    direct_reads(loopdev)
    time.sleep(0.5)
    out, _ = stop(proc)
    assert "Tracing block device I/O" in out
    assert "msecs" in out
    counts = [int(line.split(":")[1].split()[0]) for line in out.splitlines() if "->" in line]
    assert sum(counts) == N_READS


def test_biolatency_interval_count(loopdev, no_leaks, tmp_path):
    out_file = tmp_path / "iv.json"
    name = os.path.basename(loopdev)
    proc = start_ks("biolatency", "-d", name, "--json", "-o", str(out_file), "0.5", "3")
    wait_attached(proc)
    direct_reads(loopdev)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    hists = [r for r in json_lines(out_file) if r["type"] == "histogram"]
    assert len(hists) == 3
    assert sum(h["total"] for h in hists) == N_READS


def test_bad_disk_is_one_line_error():
    from conftest import run_ks
    r = run_ks("biolatency", "-d", "nosuchdisk0")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "nosuchdisk0" in r.stderr


@pytest.mark.parametrize("mechanism", ["tp_btf", "raw_tp", "tracepoint"])
def test_every_variant_sees_the_reads(loopdev, no_leaks, mechanism):
    """Each hook variant (request pointer or dev+sector keys) gives the same answer."""
    import dataclasses

    from kernelscope.enrich.disks import disk_dev
    from kernelscope.runtime.decode import Decoder
    from kernelscope.runtime.loader import open_probe
    from kernelscope.runtime.probe import load_spec
    from kernelscope.tools._histtool import read_hists

    base = load_spec("block_io_latency")
    spec = dataclasses.replace(base, hooks={h: [mechanism] for h in base.hooks})
    dev = disk_dev(os.path.basename(loopdev))
    with open_probe(spec, config={"hist": 1, "events": 1, "per_disk": 1, "dev": dev}) as p:
        assert {c.mechanism for c in p.choices.values() if c.program} == {mechanism}
        ring = p.ring()
        direct_reads(loopdev)
        time.sleep(0.3)
        recs = Decoder(p.btf, p.spec.event).to_dicts(ring.read())
        _keys, hists = read_hists(p.maps["hists"])
    assert len(recs) == N_READS
    assert all(r["dev"] == dev and r["bytes"] == READ_SIZE for r in recs)
    from kernelscope.tools.biolatency import flag_names
    assert {flag_names(r["cmd_flags"]) for r in recs} == {"Sync-Read"}
    assert sum(sum(slots) for slots in hists) == N_READS


def test_queued_time_with_an_io_scheduler(loopdev, no_leaks):
    """With mq-deadline, requests are inserted before issue: -Q measures from insert."""
    from kernelscope.enrich.disks import disk_dev
    from kernelscope.runtime.decode import Decoder
    from kernelscope.runtime.loader import open_probe
    from kernelscope.tools._histtool import read_hists

    name = os.path.basename(loopdev)
    sched = f"/sys/block/{name}/queue/scheduler"
    try:
        with open(sched, "w") as f:
            f.write("mq-deadline")
    except OSError:
        pytest.skip("mq-deadline is not available")
    dev = disk_dev(name)
    with open_probe("block_io_latency",
                    config={"hist": 1, "events": 1, "queued": 1, "dev": dev}) as p:
        ring = p.ring()
        direct_reads(loopdev)
        time.sleep(0.3)
        recs = Decoder(p.btf, p.spec.event).to_dicts(ring.read())
        _keys, hists = read_hists(p.maps["hists"])
    assert len(recs) == N_READS
    assert all(r["queue_ns"] > 0 for r in recs)
    # measured from insert: the whole latency includes the queued part
    assert all(r["latency_ns"] > r["queue_ns"] for r in recs)
    assert sum(sum(s) for s in hists) == N_READS


def test_without_block_io_start(loopdev, no_leaks):
    """Kernels before 6.5 have no block_io_start: the probe loads without it and takes
    the submitting process at issue (here, direct issue in this process)."""
    import dataclasses

    from kernelscope.enrich.disks import disk_dev
    from kernelscope.probes.block_io_latency.probe import skip_missing_tracepoints
    from kernelscope.runtime.decode import Decoder
    from kernelscope.runtime.loader import open_probe
    from kernelscope.runtime.probe import load_spec

    def prepare(obj, config):
        skip_missing_tracepoints(obj, config, exists=lambda cat, name: name != "block_io_start")

    spec = dataclasses.replace(load_spec("block_io_latency"), prepare=prepare)
    dev = disk_dev(os.path.basename(loopdev))
    with open_probe(spec, config={"hist": 0, "events": 1, "dev": dev}) as p:
        assert not p.obj.programs[p.choices["block_io_start"].program].autoload
        attached = {link.program.name for link in p.obj.links()}
        assert not any(name.startswith("block_io_start") for name in attached)
        ring = p.ring()
        direct_reads(loopdev)
        time.sleep(0.3)
        recs = Decoder(p.btf, p.spec.event).to_dicts(ring.read())
    assert len(recs) == N_READS
    assert all(r["bytes"] == READ_SIZE and r["pid"] == os.getpid() for r in recs)
