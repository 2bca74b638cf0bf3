"""The background batcher the push exporters share (OTLP, ClickHouse): a bounded queue,
one sender thread, batches per key, retries with exponential backoff, counted drops.

Memory stays bounded when the destination is down: the queue holds at most `max_queue`
records (in flight included); a record that does not fit is dropped and counted. A
batch that failed with a retryable error stays at the head of its queue and is tried
again after a backoff that doubles from `retry_initial` up to `retry_max` seconds.

Config helpers (`cfg_*`) turn a sink's config dict into checked values; a bad value
raises ConfigError, one line naming the key.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from typing import Callable, Hashable

from kernelscope.errors import UsageError
from kernelscope.export.base import SinkError

log = logging.getLogger("kernelscope.export")


class ConfigError(UsageError, SinkError):
    """A sink's config value is wrong; one line starting with the key ("batch_size: ...").

    The agent prefixes it with "config: exporters.<kind>: "."""


class RetryableError(Exception):
    """The destination is unavailable for now; keep the batch and try again later."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """The destination refused the batch for good (malformed, wrong type): drop it."""


# -- config helpers ----------------------------------------------------------------

class Config:
    """Reads one `[exporters.<kind>]` section; remembers which keys were read so that
    unknown keys (typos) are refused."""

    def __init__(self, section: str, values: dict | None):
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of settings, not {values!r}")
        self.section = section
        self.values = dict(values)
        self.known: set[str] = set()

    def error(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{key}: {what}")

    def get(self, key: str, default=None):
        self.known.add(key)
        return self.values.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.values

    def str(self, key: str, default: str | None = None, choices: tuple | None = None) -> str | None:
        v = self.get(key, default)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self.error(key, f"must be a string, not {v!r}")
        if choices and v not in choices:
            raise self.error(key, f"must be one of {', '.join(repr(c) for c in choices)}, not {v!r}")
        return v

    def int(self, key: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, str) and v.strip().isdigit():
                v = int(v)
            else:
                raise self.error(key, f"must be a whole number, not {v!r}")
        if v < minimum or (maximum is not None and v > maximum):
            rng = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise self.error(key, f"must be {rng}, not {v}")
        return v

    def seconds(self, key: str, default: float) -> float:
        """A positive duration: a number of seconds or a string like "250ms", "5s", "2m"."""
        v = self.get(key, default)
        if isinstance(v, str):
            v = parse_duration(v, lambda what: self.error(key, what))
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(key, f"must be a number of seconds, not {v!r}")
        if not 0 < v < 1e7:
            raise self.error(key, f"must be a positive number of seconds, not {v!r}")
        return float(v)

    def bool(self, key: str, default: bool | None) -> bool | None:
        v = self.get(key, default)
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "1", "0"):
            return v.lower() in ("true", "yes", "1")
        raise self.error(key, f"must be true or false, not {v!r}")

    def str_list(self, key: str) -> list[str] | None:
        v = self.get(key)
        if v is None:
            return None
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
            raise self.error(key, f"must be a list of names, not {v!r}")
        return list(v)

    def str_map(self, key: str) -> dict[str, str]:
        """A table of strings, or "k1=v1,k2=v2" (the OTEL_EXPORTER_OTLP_HEADERS form)."""
        v = self.get(key)
        if v is None:
            return {}
        if isinstance(v, str):
            out = {}
            for part in v.split(","):
                if not part.strip():
                    continue
                k, sep, val = part.partition("=")
                if not sep or not k.strip():
                    raise self.error(key, f"expected name=value pairs separated by commas, got {part!r}")
                out[k.strip()] = val.strip()
            return out
        if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, (str, int, float))
                                              for k, x in v.items()):
            raise self.error(key, f"must be a table of name = \"value\", not {v!r}")
        return {k: str(x) for k, x in v.items()}

    def check_unknown(self) -> None:
        extra = sorted(set(self.values) - self.known)
        if extra:
            raise self.error(extra[0], "unknown setting (accepted: " + ", ".join(sorted(self.known)) + ")")


def parse_duration(text: str, error: Callable[[str], Exception]) -> float:
    """'5', '5s', '250ms', '2m' -> seconds."""
    t = text.strip().lower()
    for suffix, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if t.endswith(suffix):
            t, scale = t[: -len(suffix)], mult
            break
    else:
        scale = 1.0
    try:
        return float(t) * scale
    except ValueError:
        raise error(f"must be a duration like 5, 5s or 250ms, not {text!r}")


# -- the batcher ---------------------------------------------------------------------

class Batcher:
    """Bounded per-key FIFO queues drained by one thread calling `send(key, items)`.

    `send` returns None (all accepted) or the number of items the destination rejected
    for good, raises RetryableError (keep, back off, retry) or PermanentError (drop the
    batch, count it rejected). `tick`, if given, runs once per `interval` in the sender
    thread (the OTLP sink pushes metrics there).
    """

    def __init__(self, name: str, send: Callable[[Hashable, list], int | None], *,
                 batch_size: int, max_queue: int, interval: float,
                 retry_initial: float = 1.0, retry_max: float = 30.0,
                 tick: Callable[[], None] | None = None, flush_timeout: float = 10.0):
        self.name = name
        self._send = send
        self._tick = tick
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.interval = interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.flush_timeout = flush_timeout
        self._queues: dict[Hashable, deque] = {}
        self._size = 0
        self._cv = threading.Condition()
        self._stop = False
        self._flush_gen = 0          # bumped by flush(): send what is queued now
        self._backoff = 0.0
        self._retry_at = 0.0         # monotonic time before which we do not send
        self._last_send = -1e18      # monotonic time of the last send attempt
        self._rr: deque = deque()    # round robin over keys
        self.counters = {"sent": 0, "dropped": 0, "rejected": 0, "retries": 0,
                         "errors": 0, "batches": 0}
        self.last_error: str | None = None
        self._logged_error = False
        self._thread = threading.Thread(target=self._run, name=f"ks-{name}", daemon=True)
        self._thread.start()

    # -- producer side --

    def put(self, key: Hashable, items: list) -> int:
        """Queue what fits; returns how many were accepted (the rest counted dropped)."""
        with self._cv:
            if self._stop:
                self.counters["dropped"] += len(items)
                return 0
            room = self.max_queue - self._size
            take = items if len(items) <= room else items[:max(room, 0)]
            if take:
                q = self._queues.get(key)
                if q is None:
                    q = self._queues[key] = deque()
                    self._rr.append(key)
                q.extend(take)
                self._size += len(take)
            self.counters["dropped"] += len(items) - len(take)
            if self._size >= self.batch_size:
                self._cv.notify_all()
            return len(take)

    def queued(self) -> int:
        with self._cv:
            return self._size

    def flush(self, timeout: float | None = None, force: bool = False) -> bool:
        """Without `force` (the agent's periodic flush): ask the sender thread to send
        what is queued if `interval` has passed since its last send, and return at once;
        a slow destination never holds up the caller, and `interval` is what sets the
        request rate a destination sees (ClickHouse wants few, large inserts).

        With `force`: send now and wait until it is out, an attempt failed, or `timeout`.
        Neither waits through a backoff (the destination is known to be down). Returns
        True when nothing is left queued."""
        deadline = time.monotonic() + (self.flush_timeout if timeout is None else timeout)
        with self._cv:
            if self._size == 0:
                return True
            now = time.monotonic()
            if now < self._retry_at:
                return False
            if not force:
                if now - self._last_send >= self.interval:
                    self._flush_gen += 1
                    self._cv.notify_all()
                return False
            self._flush_gen += 1
            errors = self.counters["errors"]
            self._cv.notify_all()
            while self._size and self.counters["errors"] == errors and not self._stop:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            return self._size == 0

    def close(self, timeout: float | None = None) -> None:
        """One last attempt to send everything (ignoring backoff), then stop; whatever is
        still queued is counted as dropped."""
        with self._cv:
            if self._stop and not self._thread.is_alive():
                return
            self._retry_at = 0.0
        self.flush(timeout, force=True)
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=(self.flush_timeout if timeout is None else timeout) + 1)
        with self._cv:
            self.counters["dropped"] += self._size
            self._queues.clear()
            self._size = 0

    def stats(self) -> dict:
        with self._cv:
            return {**self.counters, "queued": self._size, "max_queue": self.max_queue}

    # -- sender thread --

    def _run(self) -> None:
        next_tick = time.monotonic() + self.interval
        last_flush_gen = 0
        with self._cv:
            while True:
                now = time.monotonic()
                if self._stop:
                    return
                flush_asked = self._flush_gen != last_flush_gen
                due = now >= next_tick
                backing_off = now < self._retry_at
                ready = self._size > 0 and not backing_off and (
                    flush_asked or due or self._size >= self.batch_size)
                if not ready and not due:
                    waits = [next_tick - now]
                    if backing_off and self._size:
                        waits.append(self._retry_at - now)
                    self._cv.wait(max(0.001, min(waits)))
                    continue
                if due:
                    next_tick = now + self.interval
                    if self._tick is not None:
                        self._cv.release()
                        failed = None
                        try:
                            self._tick()
                        except Exception as e:  # a failing metric push must not stop events
                            failed = e
                        finally:
                            self._cv.acquire()
                        if failed is not None:
                            self.counters["errors"] += 1
                            self._note_error(f"metrics: {failed}")
                if ready:
                    last_flush_gen = self._flush_gen
                    self._drain()

    def _drain(self) -> None:
        """Send batches until the queue is empty or an attempt fails (lock held on entry)."""
        while self._size and not self._stop:
            key, batch = self._next_batch()
            if not batch:
                break
            self._last_send = time.monotonic()
            self._cv.release()
            outcome, info = "ok", None
            try:
                rejected = self._send(key, batch) or 0
            except RetryableError as e:
                outcome, info = "retry", e
            except PermanentError as e:
                outcome, info = "permanent", e
            except Exception as e:  # a bug or an unexpected library error: keep the data
                outcome, info = "retry", RetryableError(f"{type(e).__name__}: {e}")
            finally:
                self._cv.acquire()
            if outcome == "retry":
                self.counters["errors"] += 1
                self.counters["retries"] += 1
                self._backoff = min(self.retry_max, self._backoff * 2 if self._backoff else self.retry_initial)
                wait = self._backoff * random.uniform(0.8, 1.0)
                if info.retry_after:
                    wait = max(wait, min(info.retry_after, self.retry_max))
                self._retry_at = time.monotonic() + wait
                self._note_error(str(info))
                self._cv.notify_all()
                return
            self._pop(key, len(batch))
            self.counters["batches"] += 1
            if outcome == "permanent":
                self.counters["errors"] += 1
                self.counters["rejected"] += len(batch)
                self._note_error(str(info))
            else:
                self.counters["sent"] += len(batch) - rejected
                self.counters["rejected"] += rejected
                self._backoff = 0.0
                self._retry_at = 0.0
                self._logged_error = False
            self._cv.notify_all()

    def _next_batch(self):
        for _ in range(len(self._rr)):
            key = self._rr[0]
            self._rr.rotate(-1)
            q = self._queues.get(key)
            if q:
                n = min(self.batch_size, len(q))
                return key, [q[i] for i in range(n)]
        return None, []

    def _pop(self, key, n: int) -> None:
        q = self._queues[key]
        for _ in range(n):
            q.popleft()
        self._size -= n

    def _note_error(self, message: str) -> None:
        self.last_error = message
        if not self._logged_error:
            # once per outage, not once per retry
            log.warning("%s: %s", self.name, message)
            self._logged_error = True


class BatchedSinkMixin:
    """The flush every sink built on a Batcher shares (self.batcher)."""

    def flush(self, timeout: float | None = None, force: bool = False) -> None:
        """Ask the sender thread to send what is queued if `interval` has passed since
        its last send, without waiting (the agent's periodic flush). `force`: send now
        and wait until it is out, an attempt failed, or `timeout` (default: the request
        timeout). close() always sends everything it can."""
        self.batcher.flush(timeout, force=force)
