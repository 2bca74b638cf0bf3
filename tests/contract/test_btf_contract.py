"""Every field name Python reads from a probe's records exists in that probe's BTF.

Python reads numpy batches as `batch["field"]` (the convention in probe.py,
decode.py and tools); the names are collected from the source and checked
against the struct layouts clang wrote into each .bpf.o. No root needed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kernelscope.btf import Btf
from kernelscope.libbpf import BpfObject
from kernelscope.runtime.paths import PROBES_DIR, object_path, probe_names
from kernelscope.runtime.probe import load_spec

TOOLS_DIR = PROBES_DIR.parent / "tools"
PKG = PROBES_DIR.parent
# decoders that live outside the probe folder
EXTRA_SOURCES = {"tcp_flow": [PKG / "net" / "flows.py"]}


def batch_fields(path: Path) -> set[str]:
    """String subscripts of names called `batch` or `b` (or ending in `_batch`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and (node.value.id in ("batch", "b") or node.value.id.endswith("_batch"))
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            names.add(node.slice.value)
    return names


def struct_fields(btf: Btf, name: str) -> set[str]:
    return set(btf.dtype(name).names or ())


@pytest.mark.parametrize("probe", probe_names())
def test_probe_fields_exist_in_btf(probe):
    spec = load_spec(probe)
    path = object_path(probe)
    assert path.exists(), f"{path} not built: run python -m kernelscope.build"
    with BpfObject(path) as obj:
        btf = obj.btf
        known: set[str] = set()
        if spec.event:
            assert btf.has(spec.event), f"{spec.event} missing from BTF (KS_EXPORT_TYPE?)"
            known |= struct_fields(btf, spec.event)
        for t in btf.types:
            if t.kind == "struct" and t.name.startswith(probe):
                known |= struct_fields(btf, t.name)
    used = set()
    for py in (PROBES_DIR / probe).glob("*.py"):
        used |= batch_fields(py)
    for extra in EXTRA_SOURCES.get(probe, []):
        used |= batch_fields(extra)
    for tool in spec.tools:
        tp = TOOLS_DIR / f"{tool}.py"
        if tp.exists():
            used |= batch_fields(tp)
    missing = used - known
    assert not missing, f"{probe}: Python reads fields not in BTF: {sorted(missing)}"


def test_contract_catches_a_wrong_name(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("def f(batch):\n    return batch['no_such_field'], batch['pid']\n")
    assert batch_fields(src) == {"no_such_field", "pid"}


def test_every_probe_has_a_spec_and_object():
    for probe in probe_names():
        spec = load_spec(probe)
        assert spec.name == probe
        assert spec.doc
