"""Where compiled probe objects live."""

from __future__ import annotations

import os
from pathlib import Path

PROBES_DIR = Path(__file__).resolve().parent.parent / "probes"


def object_path(name: str) -> Path:
    """probes/<name>/<name>.bpf.o, or $KERNELSCOPE_OBJECT_DIR/<name>.bpf.o when set."""
    override = os.environ.get("KERNELSCOPE_OBJECT_DIR")
    if override and (Path(override) / f"{name}.bpf.o").exists():
        return Path(override) / f"{name}.bpf.o"
    return PROBES_DIR / name / f"{name}.bpf.o"


def probe_names() -> list[str]:
    """Folders under probes/ that declare a probe (have probe.py)."""
    return sorted(p.parent.name for p in PROBES_DIR.glob("*/probe.py"))
