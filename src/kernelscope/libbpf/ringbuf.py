"""BPF ring buffer read straight from its mapping, a batch of records at a time.

The kernel maps the data area twice back to back, so every span of unread
records is contiguous in memory: a batch of fixed-size records is one strided
numpy view, decoded with no Python work per record. Records of another size
(variable-length output) take a slower walk. libbpf's callback reader
(ring_buffer__poll) is kept for comparison in `CallbackRingBuffer`.
"""

from __future__ import annotations

import ctypes
import mmap
import select

import numpy as np

from kernelscope.libbpf._lib import c_int, c_void_p, check_ptr, lib
from kernelscope.libbpf.maps import Map

BUSY = 1 << 31
DISCARD = 1 << 30
HDR = 8
PAGE = mmap.PAGESIZE


def _round8(n: int) -> int:
    return (n + 7) & ~7


class RingBuffer:
    """Consumer of one BPF_MAP_TYPE_RINGBUF map, decoding to `dtype` records."""

    def __init__(self, map_: Map, dtype: np.dtype):
        if map_.type != "ringbuf":
            raise TypeError(f"{map_.name} is a {map_.type} map, not a ring buffer")
        self.map = map_
        self.dtype = np.dtype(dtype)
        self.size = map_.max_entries
        self.mask = self.size - 1
        fd = map_.fd
        self._cons_mm = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod_mm = mmap.mmap(fd, PAGE + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
        self._cons = np.frombuffer(self._cons_mm, dtype="<u8", count=1)
        self._prod = np.frombuffer(self._prod_mm, dtype="<u8", count=1)
        self._data = np.frombuffer(self._prod_mm, dtype=np.uint8, offset=PAGE)
        rec = self.dtype.itemsize
        self.stride = _round8(HDR + rec)
        self._framed = np.dtype({"names": ["len", "rec"], "formats": ["<u4", self.dtype],
                                 "offsets": [0, HDR], "itemsize": self.stride})
        self._len_only = np.dtype({"names": ["len"], "formats": ["<u4"], "offsets": [0],
                                   "itemsize": self.stride})
        self.records = 0
        self.discarded = 0
        self._poll = select.epoll()
        self._poll.register(fd, select.EPOLLIN)

    def fileno(self) -> int:
        return self.map.fd

    def pending(self) -> int:
        return int(self._prod[0]) - int(self._cons[0])

    def wait(self, timeout: float) -> bool:
        """Block until the ring has data or `timeout` seconds pass."""
        if self.pending():
            return True
        return bool(self._poll.poll(timeout))

    def read(self, max_records: int | None = None) -> np.ndarray:
        """Take every complete record now in the ring, as one array of `dtype`."""
        parts = []
        cons = int(self._cons[0])
        prod = int(self._prod[0])
        rec_size = self.dtype.itemsize
        taken = 0
        short: list[bytes] = []   # records shorter than the struct (variable-size output)
        while cons < prod:
            start = cons & self.mask
            avail = prod - cons
            n_fixed = avail // self.stride
            if max_records is not None:
                n_fixed = min(n_fixed, max_records - taken)
            if n_fixed and not short:
                lens = np.ndarray((n_fixed,), dtype=self._len_only, buffer=self._data,
                                  offset=start)["len"]
                if (lens == rec_size).all():
                    good = n_fixed
                else:
                    good = int(np.argmax(lens != rec_size))
                if good:
                    # one contiguous copy of the frames; the records are a strided
                    # view into it (no per-field or per-record work)
                    raw = self._data[start:start + good * self.stride].copy()
                    parts.append(raw.view(self._framed)["rec"])
                    cons += good * self.stride
                    taken += good
                    if good == n_fixed and (max_records is None or taken < max_records):
                        continue
                    if max_records is not None and taken >= max_records:
                        break
            # a record of another size, or one not yet committed
            hdr = int(np.ndarray((1,), dtype="<u4", buffer=self._data, offset=cons & self.mask)[0])
            if hdr & BUSY:
                break
            length = hdr & ~(BUSY | DISCARD)
            if not hdr & DISCARD:
                body = (cons & self.mask) + HDR
                short.append(self._data[body:body + min(length, rec_size)].tobytes())
                taken += 1
            else:
                self.discarded += 1
            cons += _round8(HDR + length)
            if max_records is not None and taken >= max_records:
                break
            if len(short) >= 4096 or cons >= prod:
                parts.append(self._pad(short))
                short = []
        if short:
            parts.append(self._pad(short))
        if cons != int(self._cons[0]):
            self._cons[0] = cons  # x86 stores are ordered: the copy above is complete
        self.records += taken
        if not parts:
            return np.empty(0, dtype=self.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _pad(self, raws: list[bytes]) -> np.ndarray:
        """Variable-size records -> one array of `dtype`, the missing tail zeroed."""
        out = np.zeros(len(raws), dtype=self.dtype)
        flat = out.view(np.uint8).reshape(len(raws), self.dtype.itemsize)
        for i, raw in enumerate(raws):
            flat[i, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        return out

    def close(self) -> None:
        if self._poll is not None:
            self._poll.close()
            self._poll = None
            del self._cons, self._prod, self._data
            self._cons_mm.close()
            self._prod_mm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


SAMPLE_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, ctypes.c_size_t)


class CallbackRingBuffer:
    """libbpf's ring_buffer__poll with one Python callback per record (the slow path)."""

    def __init__(self, map_: Map, callback):
        def _cb(ctx, data, size):
            callback(ctypes.string_at(data, size))
            return 0

        self._cb = SAMPLE_FN(_cb)
        self._ptr = check_ptr(lib.ring_buffer__new(map_.fd, ctypes.cast(self._cb, c_void_p), None, None),
                              f"ring_buffer__new({map_.name})")

    def poll(self, timeout_ms: int) -> int:
        return lib.ring_buffer__poll(self._ptr, timeout_ms)

    def consume(self) -> int:
        return lib.ring_buffer__consume(self._ptr)

    def close(self) -> None:
        if self._ptr:
            lib.ring_buffer__free(self._ptr)
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
