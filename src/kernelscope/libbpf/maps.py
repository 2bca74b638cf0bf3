"""BPF maps by fd: lookup, update, delete, iterate, batch lookup, per-CPU values.

Keys and values travel as numpy structured arrays when a dtype is given (from
BTF, see kernelscope.btf), else as bytes.
"""

from __future__ import annotations

import ctypes
import errno as _errno

import numpy as np

from kernelscope.libbpf._lib import LibbpfError, c_u32, lib

BPF_MAP_TYPE = {
    1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
    6: "percpu_array", 7: "stack_trace", 8: "cgroup_array", 9: "lru_hash",
    10: "lru_percpu_hash", 11: "lpm_trie", 12: "array_of_maps", 13: "hash_of_maps",
    27: "ringbuf", 21: "queue", 22: "stack", 29: "task_storage", 24: "sk_storage",
}
PERCPU_TYPES = {"percpu_hash", "percpu_array", "lru_percpu_hash"}
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2

_ncpus = None


def possible_cpus() -> int:
    global _ncpus
    if _ncpus is None:
        _ncpus = lib.libbpf_num_possible_cpus()
    return _ncpus


def _err(what: str) -> LibbpfError:
    return LibbpfError(what, ctypes.get_errno() or _errno.EINVAL)


class Map:
    def __init__(self, ptr: int):
        self._ptr = ptr
        self.name = lib.bpf_map__name(ptr).decode()
        self.type = BPF_MAP_TYPE.get(lib.bpf_map__type(ptr), str(lib.bpf_map__type(ptr)))
        self.key_dtype: np.dtype | None = None
        self.value_dtype: np.dtype | None = None

    def _invalidate(self):
        self._ptr = None

    @property
    def fd(self) -> int:
        return lib.bpf_map__fd(self._ptr)

    @property
    def key_size(self) -> int:
        return lib.bpf_map__key_size(self._ptr)

    @property
    def value_size(self) -> int:
        return lib.bpf_map__value_size(self._ptr)

    @property
    def max_entries(self) -> int:
        return lib.bpf_map__max_entries(self._ptr)

    @max_entries.setter
    def max_entries(self, n: int) -> None:
        if lib.bpf_map__set_max_entries(self._ptr, n) < 0:
            raise _err(f"set max_entries of {self.name}")

    @property
    def percpu(self) -> bool:
        return self.type in PERCPU_TYPES

    def _value_len(self) -> int:
        # per-CPU values are rounded up to 8 bytes per CPU by the kernel
        if self.percpu:
            return ((self.value_size + 7) & ~7) * possible_cpus()
        return self.value_size

    # -- conversions -----------------------------------------------------------
    def _key_bytes(self, key) -> bytes:
        if isinstance(key, (bytes, bytearray)):
            return bytes(key)
        if isinstance(key, np.ndarray) or isinstance(key, np.void):
            return key.tobytes()
        if isinstance(key, int):
            return key.to_bytes(self.key_size, "little", signed=key < 0)
        if self.key_dtype is not None:
            return np.asarray(key, dtype=self.key_dtype).tobytes()
        raise TypeError(f"cannot convert {type(key).__name__} to a key of {self.name}")

    def _value_out(self, raw: bytes):
        if self.percpu:
            stride = (self.value_size + 7) & ~7
            rows = [raw[i * stride:i * stride + self.value_size] for i in range(possible_cpus())]
            if self.value_dtype is not None:
                return np.frombuffer(b"".join(rows), dtype=self.value_dtype)
            return rows
        if self.value_dtype is not None:
            return np.frombuffer(raw, dtype=self.value_dtype)[0]
        return raw

    # -- element ops ------------------------------------------------------------
    def lookup(self, key, default=None):
        k = self._key_bytes(key)
        buf = ctypes.create_string_buffer(self._value_len())
        if lib.bpf_map_lookup_elem(self.fd, k, buf) < 0:
            if ctypes.get_errno() == _errno.ENOENT:
                return default
            raise _err(f"lookup in {self.name}")
        return self._value_out(buf.raw)

    def percpu_sum(self, key=0):
        """A per-CPU value summed over CPUs: an int for a plain integer value, or a
        dict field -> int when value_dtype is a struct (counters kept per CPU)."""
        vals = self.lookup(key)
        if self.value_dtype is not None and self.value_dtype.names:
            names = self.value_dtype.names
            if vals is None:
                return {n: 0 for n in names}
            return {n: int(vals[n].sum()) for n in names}
        if vals is None:
            return 0
        if self.value_dtype is not None:
            return int(np.asarray(vals).sum())
        return sum(int.from_bytes(v, "little") for v in vals)

    def update(self, key, value, flags: int = BPF_ANY) -> None:
        k = self._key_bytes(key)
        if isinstance(value, int):
            v = value.to_bytes(self.value_size, "little", signed=value < 0)
        elif isinstance(value, (bytes, bytearray)):
            v = bytes(value)
        else:
            v = np.asarray(value, dtype=self.value_dtype).tobytes()
        if lib.bpf_map_update_elem(self.fd, k, v, flags) < 0:
            raise _err(f"update of {self.name}")

    def delete(self, key) -> bool:
        if lib.bpf_map_delete_elem(self.fd, self._key_bytes(key)) < 0:
            if ctypes.get_errno() == _errno.ENOENT:
                return False
            raise _err(f"delete in {self.name}")
        return True

    def keys(self):
        """Iterate keys with get_next_key (raw bytes)."""
        size = self.key_size
        prev = None
        nxt = ctypes.create_string_buffer(size)
        while True:
            if lib.bpf_map_get_next_key(self.fd, prev, nxt) < 0:
                if ctypes.get_errno() == _errno.ENOENT:
                    return
                raise _err(f"iterate {self.name}")
            key = nxt.raw
            yield key
            prev = ctypes.create_string_buffer(key, size)

    def items(self):
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                yield k, v

    def clear(self) -> int:
        n = 0
        for k in list(self.keys()):
            n += self.delete(k)
        return n

    def lookup_batch(self, delete: bool = False, chunk: int = 4096):
        """All entries with BPF_MAP_LOOKUP_BATCH: (keys bytes array, values bytes array).

        Returns numpy arrays: keys shaped (n,) of key_dtype (or raw 'V' bytes),
        values (n,) or (n, ncpus) for per-CPU maps. Falls back to iteration on
        map types without batch support.
        """
        ksz, vlen = self.key_size, self._value_len()
        kdt = self.key_dtype or np.dtype(f"V{ksz}")
        fn = lib.bpf_map_lookup_and_delete_batch if delete else lib.bpf_map_lookup_batch
        keys_out, vals_out = [], []
        in_batch = None
        out_batch = ctypes.create_string_buffer(max(ksz, 8))
        kbuf = ctypes.create_string_buffer(ksz * chunk)
        vbuf = ctypes.create_string_buffer(vlen * chunk)
        while True:
            count = c_u32(chunk)
            ret = fn(self.fd, in_batch, out_batch, kbuf, vbuf, ctypes.byref(count), None)
            err = ctypes.get_errno() if ret < 0 else 0
            if ret < 0 and err not in (_errno.ENOENT,):
                if err in (_errno.EINVAL, _errno.ENOTSUPP if hasattr(_errno, "ENOTSUPP") else 524,
                           524, _errno.EOPNOTSUPP) and not keys_out:
                    return self._lookup_by_iteration(kdt, delete)
                raise LibbpfError(f"batch lookup in {self.name}", err)
            n = count.value
            if n:
                keys_out.append(kbuf.raw[:n * ksz])
                vals_out.append(vbuf.raw[:n * vlen])
            if ret < 0:  # ENOENT: no more entries
                break
            in_batch = ctypes.create_string_buffer(out_batch.raw, len(out_batch))
        return self._arrays(b"".join(keys_out), b"".join(vals_out), kdt)

    def _lookup_by_iteration(self, kdt, delete: bool):
        ks, vs = [], []
        for k in list(self.keys()):
            buf = ctypes.create_string_buffer(self._value_len())
            if lib.bpf_map_lookup_elem(self.fd, k, buf) == 0:
                ks.append(k)
                vs.append(buf.raw)
                if delete:
                    lib.bpf_map_delete_elem(self.fd, k)
        return self._arrays(b"".join(ks), b"".join(vs), kdt)

    def _arrays(self, kraw: bytes, vraw: bytes, kdt):
        keys = np.frombuffer(kraw, dtype=kdt)
        if self.percpu:
            stride = (self.value_size + 7) & ~7
            vdt = self.value_dtype or np.dtype(f"V{self.value_size}")
            padded = np.dtype({"names": ["v"], "formats": [vdt], "offsets": [0], "itemsize": stride})
            vals = np.frombuffer(vraw, dtype=padded)["v"].reshape(len(keys), possible_cpus())
        else:
            vdt = self.value_dtype or np.dtype(f"V{self.value_size}")
            vals = np.frombuffer(vraw, dtype=vdt)
        return keys, vals

    def __repr__(self):
        return f"<Map {self.name} {self.type}>"


def stack_ips(stack_map: Map, stack_id: int) -> list[int]:
    """Instruction pointers of one stack in a stack-trace map (zero-terminated)."""
    if stack_id < 0:
        return []
    raw = stack_map.lookup(stack_id)
    if raw is None:
        return []
    ips = np.frombuffer(raw if isinstance(raw, bytes) else raw.tobytes(), dtype="<u8")
    nz = np.flatnonzero(ips == 0)
    return ips[: nz[0] if len(nz) else len(ips)].tolist()
