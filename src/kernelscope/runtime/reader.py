"""Read batches from one or more ring buffers until told to stop.

One epoll waits on every ring; each wakeup drains all of them, a numpy batch
per ring. Stop conditions (signal, duration, a child's exit) are checked at
least every `tick` seconds.
"""

from __future__ import annotations

import select
import time
from typing import Callable, Iterator

import numpy as np

from kernelscope.libbpf import RingBuffer


class Reader:
    def __init__(self, rings: dict[str, RingBuffer], tick: float = 0.1):
        self.rings = rings
        self.tick = tick
        self._ep = select.epoll()
        for rb in rings.values():
            self._ep.register(rb.fileno(), select.EPOLLIN)
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def drain(self) -> Iterator[tuple[str, np.ndarray]]:
        for name, rb in self.rings.items():
            batch = rb.read()
            if len(batch):
                yield name, batch

    def batches(self, until: Callable[[], bool] | None = None,
                deadline: float | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """Yield (ring name, batch) until stop(), `until()` is true, or the deadline passes.

        A final drain after the stop condition delivers what was already in the rings.
        """
        while not self.stopped and not (until and until()):
            timeout = self.tick
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                timeout = min(timeout, left)
            try:
                self._ep.poll(timeout)
            except InterruptedError:
                pass
            yield from self.drain()
        yield from self.drain()

    def close(self) -> None:
        self._ep.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
