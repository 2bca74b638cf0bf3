"""Compile every probes/<name>/<name>.bpf.c into <name>.bpf.o (CO-RE, clang -target bpf).

vmlinux.h is generated from the running kernel's BTF with bpftool into
probes/include/ (not committed). Run as `python -m kernelscope.build`; setup.py
runs it for wheel builds too. Extra source folders (tests, bench) can be
compiled with the same function.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PKG = Path(__file__).resolve().parent
PROBES = PKG / "probes"
INCLUDE = PROBES / "include"
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


def _arch() -> str:
    m = os.uname().machine
    return {"x86_64": "x86", "aarch64": "arm64", "s390x": "s390", "ppc64le": "powerpc"}.get(m, m)


def vmlinux_h(force: bool = False) -> Path:
    out = INCLUDE / "vmlinux.h"
    if out.exists() and not force and out.stat().st_size > 0:
        return out
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    if not VMLINUX_BTF.exists():
        raise SystemExit("kernelscope build: this kernel has no BTF (/sys/kernel/btf/vmlinux)")
    text = subprocess.run([bpftool, "btf", "dump", "file", str(VMLINUX_BTF), "format", "c"],
                          check=True, capture_output=True).stdout
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(text)
    tmp.replace(out)
    return out


def sources(root: Path = PROBES) -> list[Path]:
    """Each <dir>/<name>/<name>.bpf.c below root."""
    return sorted(p for p in root.glob("*/*.bpf.c") if p.stem == p.parent.name + ".bpf")


def compile_one(src: Path, out: Path | None = None, extra_includes=()) -> Path:
    out = out or src.with_suffix(".o")
    clang = shutil.which("clang") or "clang"
    cmd = [clang, "-O2", "-g", "-target", "bpf", f"-D__TARGET_ARCH_{_arch()}",
           "-Wall", "-Wno-unused-function", "-Wno-compare-distinct-pointer-types",
           "-I", str(INCLUDE), "-I", str(src.parent), *[f"-I{i}" for i in extra_includes],
           "-c", str(src), "-o", str(out) + ".tmp"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"clang failed for {src.name}:\n{r.stderr}")
    os.replace(str(out) + ".tmp", out)
    return out


def up_to_date(src: Path, out: Path) -> bool:
    if not out.exists():
        return False
    newest = max([src.stat().st_mtime] + [h.stat().st_mtime for h in INCLUDE.glob("*.h")]
                 + [h.stat().st_mtime for h in src.parent.glob("*.h")])
    return out.stat().st_mtime >= newest


def build(roots=(PROBES,), force: bool = False, quiet: bool = False) -> list[Path]:
    vmlinux_h()
    srcs = [s for r in roots for s in sources(Path(r))]
    todo = [s for s in srcs if force or not up_to_date(s, s.with_suffix(".o"))]
    errors = []

    def job(s):
        try:
            compile_one(s)
            if not quiet:
                print(f"  CC {s.relative_to(s.parent.parent.parent)}", file=sys.stderr)
        except Exception as e:  # collect all failures, report at the end
            errors.append(str(e))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        list(ex.map(job, todo))
    if errors:
        raise SystemExit("\n".join(errors))
    return [s.with_suffix(".o") for s in srcs]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kernelscope.build", description=__doc__)
    ap.add_argument("--force", action="store_true", help="rebuild everything")
    ap.add_argument("dirs", nargs="*", help="extra folders holding <name>/<name>.bpf.c")
    a = ap.parse_args(argv)
    build([PROBES, *map(Path, a.dirs)], force=a.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
