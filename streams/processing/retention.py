"""Event-time ageing of keyed table values: retention (tickets, customers) deletes the
keys no window or correction can reach any more; packing (``held_tickets``) holds the
closed, quiet tickets in their stored form instead.

A per-partition heap of (newest event time, key), built from the table on first
use (or from the keys pushed only), finds the keys whose newest event is older than
a cutoff.
A key is in the heap at most once: a value that gained newer events since its
entry was pushed is pushed again with its newest time when the entry comes up,
instead of once per event, so the heap holds about one entry per key held.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExpiryHeap:
    table: MutableMapping[str, Any]
    newest: Callable[[Any], float]  # a stored value -> the newest event time it holds
    partition: Callable[[Any], int]  # a stored value -> its partition
    keep: Callable[[Any], bool] = lambda value: False  # e.g. open tickets stay
    on_delete: Callable[[str, Any], None] | None = None  # told of each key it deletes
    instead: Callable[[str, Any], None] | None = None  # done to an aged key, not deleting it
    prefill: bool = True  # queue the table's keys at first use (else the pushed ones only)
    _heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    _queued: dict[int, set[str]] = field(default_factory=dict)  # keys with an entry

    def _heap(self, partition: int) -> list[tuple[float, str]]:
        heap = self._heaps.get(partition)
        if heap is None:
            rows = self.table.items() if self.prefill else ()  # read once each, not copied
            heap = [(self.newest(v), key) for key, v in rows if self.partition(v) == partition]
            heapq.heapify(heap)
            self._heaps[partition] = heap
            self._queued[partition] = {key for _, key in heap}
        return heap

    def push(self, partition: int, key: str, value: Any) -> None:
        """``key`` was stored as ``value`` (a no-op when already queued: its newest event
        time is then read when its entry comes up)."""
        heap = self._heap(partition)
        queued = self._queued[partition]
        if key not in queued:
            queued.add(key)
            heapq.heappush(heap, (self.newest(value), key))

    def expire(self, partition: int, cutoff: float) -> None:
        """Delete (or ``instead``) the keys of this partition whose newest event is older
        than ``cutoff``."""
        heap = self._heap(partition)
        queued = self._queued[partition]
        while heap and heap[0][0] < cutoff:
            _, key = heapq.heappop(heap)
            queued.discard(key)
            value = self.table.get(key)
            if value is None or self.keep(value):
                continue  # gone already, or kept (queued again when it is next stored)
            newest = self.newest(value)
            if newest < cutoff:
                self._aged(key, value)
            else:  # newer events since this entry was pushed: look again at the newest
                queued.add(key)
                heapq.heappush(heap, (newest, key))

    def _aged(self, key: str, value: Any) -> None:
        if self.instead is not None:
            self.instead(key, value)
            return
        del self.table[key]
        if self.on_delete is not None:
            self.on_delete(key, value)

    def forget(self, partition: int) -> None:
        self._heaps.pop(partition, None)
        self._queued.pop(partition, None)
