"""The one loader: pick each hook's variant for this kernel, configure, load, attach.

    with open_probe("proc_exec", config={"uid": 0}) as p:
        for batch in p.reader().batches():  ...

When no variant of a required hook fits, UnavailableError says why and nothing
stays loaded. Closing the probe detaches and frees everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernelscope import host
from kernelscope.errors import UnavailableError
from kernelscope.libbpf import BpfObject, LibbpfError, RingBuffer
from kernelscope.runtime.paths import object_path
from kernelscope.runtime.probe import ProbeSpec, load_spec


@dataclass
class Choice:
    hook: str
    mechanism: str | None
    program: str | None
    reason: str
    candidates: list[str]


def split_program_name(name: str, section_mechanism: str) -> tuple[str, str]:
    """`<hook>__<mechanism>` -> (hook, mechanism); plain names are their own hook."""
    if "__" in name:
        hook, mech = name.rsplit("__", 1)
        return hook, mech
    return name, section_mechanism


def plan(spec: ProbeSpec, obj: BpfObject, features=None) -> dict[str, Choice]:
    """Choose one program per hook; does not touch the kernel beyond feature probes."""
    features = features or host.features()
    groups: dict[str, dict[str, str]] = {}
    for prog in obj.programs.values():
        hook, mech = split_program_name(prog.name, prog.mechanism)
        groups.setdefault(hook, {})[mech] = prog.name
    choices = {}
    for hook, variants in groups.items():
        order = spec.hooks.get(hook) or [m for m in host.MECHANISM_ORDER if m in variants]
        order = [m for m in order if m in variants] + [m for m in variants if m not in order]
        why = []
        chosen = None
        for mech in order:
            st = features.check(mech)
            if st.available:
                chosen = mech
                break
            why.append(f"{mech}: {st.reason}")
        if chosen:
            skipped = f" (skipped {'; '.join(why)})" if why else ""
            reason = f"{chosen} is the first available of {', '.join(order)}{skipped}"
            choices[hook] = Choice(hook, chosen, variants[chosen], reason, order)
        else:
            choices[hook] = Choice(hook, None, None, "; ".join(why) or "no variant", order)
    return choices


class LoadedProbe:
    def __init__(self, spec: ProbeSpec, obj: BpfObject, choices: dict[str, Choice]):
        self.spec = spec
        self.obj = obj
        self.choices = choices
        self.maps = obj.maps
        self._readers: list[RingBuffer] = []
        self.btf = obj.btf
        self.event_dtype = self.btf.dtype(spec.event) if spec.event else None

    @property
    def name(self) -> str:
        return self.spec.name

    def program(self, hook: str):
        c = self.choices.get(hook)
        return self.obj.programs[c.program] if c and c.program else None

    def ring(self, map_name: str = "events", dtype=None) -> RingBuffer:
        rb = RingBuffer(self.maps[map_name], dtype if dtype is not None else self.event_dtype)
        self._readers.append(rb)
        return rb

    def lost(self) -> int:
        """Ring-buffer reservations that failed, summed over CPUs."""
        mp = self.maps.get("ks_lost")
        return mp.percpu_sum(0) if mp is not None else 0

    def map_dtype(self, map_name: str, key: str | None = None, value: str | None = None):
        """The map with key/value dtypes from BTF: the named types, or, for a side not
        named, the type the map was declared with (`__type(key, ...)`)."""
        mp = self.maps[map_name]
        key_tid, value_tid = self.btf.map_types(map_name)
        if key or key_tid is not None:
            mp.key_dtype = self.btf.dtype(key or key_tid)
        if value or value_tid is not None:
            mp.value_dtype = self.btf.dtype(value or value_tid)
        return mp

    def close(self) -> None:
        for r in self._readers:
            r.close()
        self._readers.clear()
        self.obj.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_AUTO_ATTACH = {"tracepoint", "raw_tp", "tp_btf", "kprobe", "fentry", "iter", "lsm"}
# A bare SEC("raw_tp") names no tracepoint: user space runs it on demand
# with BPF_PROG_TEST_RUN (kernelscope.net.flows does), so it is never attached.
_ON_DEMAND_SECTIONS = {"raw_tp", "raw_tracepoint"}


def open_probe(name_or_spec, config: dict | None = None, attach: bool = True,
               map_sizes: dict[str, int] | None = None, **attach_args) -> LoadedProbe:
    """Load a probe. `config` sets cfg_ globals; `map_sizes` overrides max_entries
    (a ring buffer's size must be a power of two multiple of the page size)."""
    host.require_privileges()   # first: nothing else is worth doing without them
    spec = name_or_spec if isinstance(name_or_spec, ProbeSpec) else load_spec(name_or_spec)
    host.ensure_tracefs()
    path = Path(spec.object) if spec.object else object_path(spec.name)
    if not path.exists():
        raise UnavailableError(f"probe {spec.name}: {path} is not built "
                               "(run: python -m kernelscope.build)")
    obj = BpfObject(path)
    try:
        choices = plan(spec, obj)
        missing = [c for c in choices.values() if c.program is None and c.hook not in spec.optional_hooks]
        if missing:
            raise UnavailableError(f"probe {spec.name} is unavailable on this kernel: hook "
                                   f"{missing[0].hook}: {missing[0].reason}")
        chosen = {c.program for c in choices.values() if c.program}
        for prog in obj.programs.values():
            prog.autoload = prog.name in chosen
        for map_name, size in (map_sizes or {}).items():
            if map_name not in obj.maps:
                raise UnavailableError(f"probe {spec.name} has no map {map_name}")
            obj.maps[map_name].max_entries = size
        if config:
            obj.set_config(**{k: v for k, v in config.items() if v is not None})
        if spec.prepare:
            spec.prepare(obj, config or {})
        try:
            obj.load()
        except LibbpfError as e:
            raise UnavailableError(f"probe {spec.name} failed to load: {e}") from e
        loaded = LoadedProbe(spec, obj, choices)
        if attach:
            for c in choices.values():
                # (a program that spec.prepare turned off, e.g. an optional hook whose
                # tracepoint this kernel lacks, is not loaded and not attached)
                if (c.program and c.mechanism in _AUTO_ATTACH
                        and obj.programs[c.program].autoload
                        and obj.programs[c.program].section not in _ON_DEMAND_SECTIONS):
                    obj.programs[c.program].attach()
            if spec.attach:
                spec.attach(loaded, **attach_args)
        return loaded
    except BaseException:
        obj.close()
        raise


def empty_batch(dtype) -> np.ndarray:
    return np.empty(0, dtype=dtype)
