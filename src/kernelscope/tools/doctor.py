"""doctor: what this kernel offers kernelscope, and which variant each probe uses and why."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from kernelscope.errors import KernelscopeError

NAME = "doctor"
HELP = "check the kernel, privileges and every probe's chosen hook variant"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document")


def _lockdown() -> str | None:
    p = Path("/sys/kernel/security/lockdown")
    if not p.exists():
        return None
    text = p.read_text()
    for word in text.split():
        if word.startswith("["):
            return word.strip("[]")
    return text.strip()


def gather() -> dict:
    from kernelscope import host, libbpf
    from kernelscope.libbpf import BpfObject
    from kernelscope.runtime.loader import plan
    from kernelscope.runtime.paths import object_path
    from kernelscope.runtime.paths import probe_names
    from kernelscope.runtime.probe import load_spec

    report = {
        "kernel": platform.release(),
        "arch": platform.machine(),
        "btf": host.has_btf(),
        "libbpf": libbpf.version(),
        "lockdown": _lockdown(),
        "privileges": host.privileges(),
    }
    ok, why = host.bpf_syscall_works()
    report["bpf_syscall"] = {"works": ok, "reason": why}
    was_mounted = host.tracefs_mounted()
    try:
        host.ensure_tracefs()
        report["tracefs"] = {"path": str(host.TRACEFS), "mounted": True,
                             "mounted_by_kernelscope": not was_mounted}
    except KernelscopeError as e:
        report["tracefs"] = {"path": str(host.TRACEFS), "mounted": False, "error": str(e)}
    feats = host.features()
    report["mechanisms"] = {m.name: {"available": m.available, "reason": m.reason}
                            for m in feats.check_all().values()}
    probes = []
    for name in probe_names():
        try:
            spec = load_spec(name)
        except Exception as e:  # one broken probe must not hide the others
            probes.append({"name": name, "doc": "", "tools": [], "available": False,
                           "reason": f"probe.py failed: {e}"})
            continue
        entry = {"name": spec.name, "doc": spec.doc, "tools": spec.tools}
        path = object_path(spec.name)
        if not path.exists():
            entry.update(available=False, reason=f"{path.name} not built")
            probes.append(entry)
            continue
        try:
            with BpfObject(path) as obj:
                choices = plan(spec, obj, feats)
        except KernelscopeError as e:
            entry.update(available=False, reason=str(e))
            probes.append(entry)
            continue
        missing = [c for c in choices.values()
                   if c.program is None and c.hook not in spec.optional_hooks]
        entry["hooks"] = {c.hook: {"mechanism": c.mechanism, "program": c.program,
                                   "reason": c.reason} for c in choices.values()}
        entry["available"] = not missing
        entry["reason"] = (f"hook {missing[0].hook}: {missing[0].reason}" if missing else "ok")
        probes.append(entry)
    report["probes"] = probes
    return report


def blocking_problem(report: dict) -> str | None:
    if not report["btf"]:
        return "this kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE probes cannot load"
    if not report["bpf_syscall"]["works"]:
        return f"the bpf() syscall does not work here ({report['bpf_syscall']['reason']})"
    if not report["mechanisms"].get("ringbuf", {}).get("available"):
        return "BPF ring buffers are not supported (kernel older than 5.8)"
    return None


def run(args) -> int:
    from kernelscope import host
    host.require_privileges()
    report = gather()
    problem = blocking_problem(report)
    report["ok"] = problem is None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(report)
    if problem:
        raise KernelscopeError(problem)
    return 0


def _mark(ok: bool) -> str:
    return "yes" if ok else "no "


def _print_text(r: dict) -> None:
    p = r["privileges"]
    print(f"kernel      {r['kernel']} ({r['arch']})")
    print(f"BTF         {_mark(r['btf'])} /sys/kernel/btf/vmlinux")
    print(f"libbpf      {r['libbpf']}")
    print(f"lockdown    {r['lockdown'] or 'unknown'}")
    print(f"privileges  euid={p['euid']} root={p['root']} CAP_BPF={p['cap_bpf']} "
          f"CAP_PERFMON={p['cap_perfmon']} CAP_SYS_ADMIN={p['cap_sys_admin']}")
    t = r["tracefs"]
    note = " (mounted by kernelscope)" if t.get("mounted_by_kernelscope") else ""
    print(f"tracefs     {_mark(t['mounted'])} {t['path']}{note}{' ' + t.get('error', '') if not t['mounted'] else ''}")
    print(f"bpf()       {_mark(r['bpf_syscall']['works'])} {r['bpf_syscall']['reason']}")
    print("\nhook mechanisms")
    for name, m in r["mechanisms"].items():
        print(f"  {name:<11} {_mark(m['available'])} {m['reason'] if not m['available'] else ''}".rstrip())
    print("\nprobes")
    for pr in r["probes"]:
        print(f"  {pr['name']:<20} {_mark(pr['available'])} {pr.get('reason', '')}"
              + (f"  [{', '.join(pr['tools'])}]" if pr["tools"] else ""))
        for hook, h in pr.get("hooks", {}).items():
            print(f"      {hook:<26} {h['mechanism'] or '-':<11} {h['reason']}")
