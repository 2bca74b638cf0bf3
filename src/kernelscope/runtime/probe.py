"""What a probe declares (probes/<name>/probe.py defines PROBE = ProbeSpec(...)).

Programs are named `<hook>__<mechanism>`; variants of one hook are alternatives,
and `hooks` may give their order (otherwise kernelscope.host.MECHANISM_ORDER).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from kernelscope.errors import UsageError
from kernelscope.runtime.paths import probe_names


@dataclass
class ProbeSpec:
    name: str
    doc: str
    event: str | None = None            # struct sent through the `events` ring buffer
    hooks: dict[str, list[str]] = field(default_factory=dict)   # hook -> mechanism order
    optional_hooks: set[str] = field(default_factory=set)       # missing ones do not fail the probe
    # (loaded probe, decoded records) -> records with probe-specific fields added
    decode: Callable | None = None
    # attach programs libbpf cannot attach from the section alone (uprobes, perf events)
    attach: Callable | None = None
    # called after open, before load: set map sizes, etc. (obj, config)
    prepare: Callable | None = None
    tools: list[str] = field(default_factory=list)   # classic tool names served
    # the compiled object; None means probes/<name>/<name>.bpf.o (tests and benchmarks
    # point elsewhere)
    object: str | None = None


def load_spec(name: str) -> ProbeSpec:
    if name not in probe_names():
        raise UsageError(f"unknown probe {name!r} (known: {', '.join(probe_names())})")
    mod = importlib.import_module(f"kernelscope.probes.{name}.probe")
    return mod.PROBE


def all_specs() -> list[ProbeSpec]:
    return [load_spec(n) for n in probe_names()]
