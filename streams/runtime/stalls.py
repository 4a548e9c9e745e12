"""Say why the worker's event loop stood still.

Everything a worker does runs on one event loop, so anything that holds it (a long
collection of Python's garbage collector, a slow store write) also holds heartbeats,
fetches and scrapes; held long enough, the broker drops the worker from its group. The
2026-12-03 soak saw one 18.5 s stall and could not say what it was. Two witnesses:

- ``GcPauses`` times every collection of the garbage collector (``gc.callbacks``) and logs
  one over ``SLOW_GC_S``; ``/stats`` shows the longest and the total.
- ``stall_report_seconds`` turns on Faust's blocking detector, which logs where the loop
  was held (a traceback) once it has been held that long.
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
        }
