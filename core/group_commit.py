"""Group commit: concurrent callers in one process share one flush (one statement, one commit).

The first caller to arrive leads: it flushes its own item together with whatever other
threads queued meanwhile, in its own thread, then hands the lead to the next waiting caller.
Nothing waits on purpose: alone, a caller flushes at once (no added latency); under load,
batches form by themselves while the previous flush runs. Each caller returns only after the
flush that carried its item finished, so whatever the flush made durable is durable when the
caller returns.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("item", "event", "result", "error", "lead")

    def __init__(self, item: T) -> None:
        self.item = item
        self.event = threading.Event()
        self.result: R | None = None
        self.error: BaseException | None = None
        self.lead = False


class GroupCommit(Generic[T, R]):
    """`flush(items) -> results` (one result per item, in order) for a batch of concurrent
    `submit(item)` calls. If the flush raises, every caller of that batch gets the error."""

    def __init__(self, flush: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: deque[_Slot[T, R]] = deque()
        self._busy = False

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            if self._busy:
                self._waiting.append(slot)
            else:
                self._busy = slot.lead = True
        if not slot.lead:
            slot.event.wait()  # until our batch is flushed, or we are handed the lead
        if slot.lead:
            self._lead(slot)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _lead(self, own: _Slot[T, R]) -> None:
        with self._lock:
            batch = [own]
            while self._waiting and len(batch) < self._max_batch:
                batch.append(self._waiting.popleft())
        try:
            results = self._flush([slot.item for slot in batch])
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except BaseException as exc:
            for slot in batch:
                slot.error = exc
        finally:
            with self._lock:
                if self._waiting:
                    successor = self._waiting.popleft()
                    successor.lead = True
                    successor.event.set()
                else:
                    self._busy = False
            for slot in batch[1:]:
                slot.event.set()
