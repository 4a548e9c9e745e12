"""Event-time retention of keyed table values (tickets, customers).

A per-partition heap of (newest event time, key), built from the table on first
use, finds the keys whose values no window or correction can reach any more.
A popped entry is stale when the value has had newer events since: it was pushed
again with the newer time, so only the entry carrying the newest time deletes.
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
    _heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)

    def _heap(self, partition: int) -> list[tuple[float, str]]:
        heap = self._heaps.get(partition)
        if heap is None:
            heap = [
                (self.newest(value), key)
                for key, value in list(self.table.items())
                if self.partition(value) == partition
            ]
            heapq.heapify(heap)
            self._heaps[partition] = heap
        return heap

    def push(self, partition: int, newest: float, key: str) -> None:
        heapq.heappush(self._heap(partition), (newest, key))

    def expire(self, partition: int, cutoff: float) -> None:
        """Delete the keys of this partition whose newest event is older than ``cutoff``."""
        heap = self._heap(partition)
        while heap and heap[0][0] < cutoff:
            newest, key = heapq.heappop(heap)
            value = self.table.get(key)
            if value is None or self.keep(value):
                continue
            if self.newest(value) <= newest:
                del self.table[key]

    def forget(self, partition: int) -> None:
        self._heaps.pop(partition, None)
