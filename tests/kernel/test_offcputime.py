"""offcputime attributes a child's known sleeps (4 x 250 ms in clock_nanosleep) to the
sleeping syscall's kernel stack, with the right total and count."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import start_ks, wait_attached

CHILD = """
import sys, time
sys.stdin.readline()
for _ in range(4):
    time.sleep(0.25)
print("done", flush=True)
sys.stdin.readline()
"""


def run_child_under(*tool_args):
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        proc = start_ks("offcputime", "-p", str(child.pid), *tool_args)
        wait_attached(proc)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        proc.send_signal(2)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return child.pid, out
    finally:
        child.kill()
        child.wait()


def is_sleep(kernel: list[str]) -> bool:
    return any(f in ("do_nanosleep", "hrtimer_nanosleep") for f in kernel)


def test_offcputime_sleep_attribution(no_leaks):
    pid, out = run_child_under("--json")
    recs = [json.loads(line) for line in out.splitlines() if line.strip()]
    stacks = [r for r in recs if r["type"] == "stack"]
    assert stacks and all(r["pid"] == pid for r in stacks)
    sleeps = [r for r in stacks if is_sleep(r["kernel_stack"])]
    assert sleeps, stacks
    total = sum(r["total_us"] for r in sleeps)
    assert 1_000_000 <= total <= 1_100_000, total
    assert sum(r["count"] for r in sleeps) == 4
    for r in sleeps:
        k = r["kernel_stack"]
        assert k[0] == "__schedule", k          # BPF/tracepoint frames are stripped
        assert any("clock_nanosleep" in f for f in k)
        assert r["user_stack"] and any("nanosleep" in f for f in r["user_stack"])
    assert [r for r in recs if r["type"] == "summary"][0]["lost"] == 0


def test_offcputime_folded(no_leaks):
    pid, out = run_child_under("-f", "--min-us", "100000")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines
    total = 0
    for ln in lines:
        stack, value = ln.rsplit(" ", 1)
        frames = stack.split(";")
        assert frames[0].startswith("python")
        # outermost first: the syscall entry comes before the sleep, __schedule last
        assert frames[-1] == "__schedule"
        if "do_nanosleep" in frames:
            assert frames.index("entry_SYSCALL_64_after_hwframe") < frames.index("do_nanosleep")
            total += int(value)
    assert 1_000_000 <= total <= 1_100_000


def test_offcputime_min_us_filters_everything(no_leaks):
    _pid, out = run_child_under("-f", "--min-us", "5000000")
    assert out.strip() == ""


def test_offcputime_bad_args():
    from conftest import run_ks
    r = run_ks("offcputime", "--min-us", "10", "--max-us", "5")
    assert r.returncode == 2 and "--max-us" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("mechanism", ["tp_btf", "raw_tp", "tracepoint"])
def test_every_variant_attributes_the_sleep(no_leaks, mechanism):
    import dataclasses

    from kernelscope.enrich.symbols import Symbolizer
    from kernelscope.libbpf import stack_ips
    from kernelscope.runtime.loader import open_probe
    from kernelscope.runtime.probe import load_spec
    from kernelscope.tools.offcputime import strip_tracing_frames

    base = load_spec("sched_offcpu")
    spec = dataclasses.replace(base, hooks={"sched_switch": [mechanism]})
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        with open_probe(spec, config={"tgid": child.pid}) as p:
            assert p.choices["sched_switch"].mechanism == mechanism
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "done"
            m = p.map_dtype("offcpu", key="sched_offcpu_key", value="sched_offcpu_value")
            key_batch, value_batch = m.lookup_batch()
            syms = Symbolizer()
            total = count = 0
            assert set(key_batch["pid"].tolist()) == {child.pid}
            for kid, ns, n in zip(key_batch["kern_stack_id"].tolist(),
                                  value_batch["total_ns"].tolist(), value_batch["count"].tolist()):
                kernel = strip_tracing_frames(
                    [syms.kernel(ip) for ip in stack_ips(p.maps["stacks"], kid)])
                if "do_nanosleep" in kernel:
                    assert kernel[0] == "__schedule", kernel
                    total += ns
                    count += n
    finally:
        child.kill()
        child.wait()
    assert count == 4
    assert 1.0e9 <= total <= 1.1e9


def test_user_stacks_of_exited_processes_resolve(no_leaks):
    """The tool notes the mappings of processes while they live: a child that exits
    before the report still has its user frame (libc's clock_nanosleep) named."""
    proc = start_ks("offcputime", "--json", "-c", "ks_exiter", "--duration", "2.5")
    wait_attached(proc)
    child = subprocess.run([sys.executable, "-c",
                            "import ctypes, time\n"
                            "ctypes.CDLL(None).prctl(15, b'ks_exiter', 0, 0, 0)\n"
                            "time.sleep(0.2)\ntime.sleep(1.2)\n"], timeout=30)
    assert child.returncode == 0
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    stacks = [json.loads(line) for line in out.splitlines() if line.strip()]
    sleeps = [r for r in stacks if r["type"] == "stack" and is_sleep(r["kernel_stack"])]
    assert sleeps and all(r["comm"] == "ks_exiter" for r in sleeps)
    assert any("clock_nanosleep" in r["user_stack"][0] for r in sleeps), sleeps
    assert 1_400_000 <= sum(r["total_us"] for r in sleeps) <= 1_500_000
