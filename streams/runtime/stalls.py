"""Say why the worker's event loop stood still.

Everything a worker does runs on one event loop, so anything that holds it (a long
collection of Python's garbage collector, a slow store write) also holds heartbeats,
fetches and scrapes; held long enough, the broker drops the worker from its group. The
2026-12-03 soak saw one 18.5 s stall and could not say what it was. Two witnesses:

- ``GcPauses`` times every collection of the garbage collector (``gc.callbacks``) and logs
  one over ``SLOW_GC_S``; ``/stats`` shows the longest and the total.
- ``stall_report_seconds`` turns on Faust's blocking detector, which logs where the loop
  was held (a traceback) once it has been held that long.

The next soak named it: full collections (generation 2) of 18.1, 17.6 and 16.0 s in a row
at ~250,000 tickets and ~280,000 customers held, the group session expired, the worker
rejoined (docs/reliability.md). A full collection walks every object the collector tracks,
and the tables' rows are millions of them. So ``freeze_long_lived`` runs every
``gc_freeze_seconds``: it collects the young generations (cheap) and moves every surviving
object into the collector's permanent generation (``gc.freeze``), which later collections
skip. A frozen row that is replaced or dropped is still freed at once by reference
counting; only a reference cycle that was alive at a freeze and dies later stays
unreclaimed, which the soak's RSS slope measures.

The young collection before each freeze still took 1-2 s: each minute's new rows brought
hundreds of thousands of tracked tuples, events and facts. The rows are now msgspec structs
the collector does not track (docs/architecture.md), a fold's facts a tuple, and the next
hour's longest collection took 0.53 s. So freezing is off by default now
(``gc_freeze_seconds`` 0): a full collection walks tens of thousands of objects, and a
cycle frozen alive would never be reclaimed.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

SLOW_GC_S = 0.5


class GcPauses:
    """A ``gc.callbacks`` entry: how long the collector held the process."""

    def __init__(self, slow_s: float = SLOW_GC_S) -> None:
        self.slow_s = slow_s
        self.longest_s = 0.0
        self.total_s = 0.0
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return
        took, self._started = time.perf_counter() - self._started, None
        self.total_s += took
        self.longest_s = max(self.longest_s, took)
        if took >= self.slow_s:
            log.warning(
                "Python's garbage collector held the worker for %.2f s (generation %s, "
                "%s objects freed)",
                took, info.get("generation"), info.get("collected"),
            )  # fmt: skip

    def install(self) -> GcPauses:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def stats(self) -> dict[str, float]:
        return {
            "gc_longest_pause_s": round(self.longest_s, 3),
            "gc_pause_s": round(self.total_s, 3),
            "gc_frozen": gc.get_freeze_count(),  # objects in the permanent generation
        }


def freeze_long_lived() -> int:
    """Collect the young generations, then freeze what survives; how many objects the
    permanent generation holds now."""
    gc.collect(1)
    gc.freeze()
    return gc.get_freeze_count()
