"""Scrapes that never stall processing: one rendering shared, rendered in slices.

Every scrape used to rebuild every series on the event loop, so 20 clients scraping
at once (an HA Prometheus pair, wallboards, a heavy dashboard) stopped ingestion.
Now:

- concurrent scrapes await the one rendering in progress (single flight), and a
  rendering younger than ``max_age_s`` (``metrics_cache_seconds``, 1 s by default) is
  served again, so a storm costs one rendering per second at most;
- the rendering gives the loop back whenever it has run ``slice_s`` (5 ms), between
  families or between partitions (the KPI exporter yields ``PAUSE`` there), so the
  agents' batches interleave with it. Each family is built from one consistent read
  (the window totals are copied when a family set starts), so a slice boundary never
  splits a family.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from streams.metrics.exposition import TextRenderer

PAUSE = None  # yielded by a ``families()`` generator where the loop may run others


class SharedRendering:
    def __init__(
        self,
        collectors: Iterable[Any],
        max_age_s: float = 1.0,
        slice_s: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.collectors = list(collectors)
        self.max_age_s = max_age_s
        self.slice_s = slice_s
        self.clock = clock
        self.renderer = TextRenderer()
        self.renderings = 0  # how many times it rendered (the rest were shared or reused)
        self.longest_slice_s = 0.0
        self._text: bytes | None = None
        self._at = float("-inf")
        self._pending: asyncio.Future[bytes] | None = None

    async def get(self) -> bytes:
        if self._text is not None and self.clock() - self._at < self.max_age_s:
            return self._text
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._render())
            self._pending.add_done_callback(self._done)
        return await asyncio.shield(self._pending)

    def _done(self, future: asyncio.Future[bytes]) -> None:
        self._pending = None
        if not future.cancelled() and future.exception() is None:
            self._text, self._at = future.result(), self.clock()

    async def _render(self) -> bytes:
        self.renderings += 1
        out: list[str] = []
        started = time.perf_counter()
        for collector in self.collectors:
            fast = getattr(collector, "families", None)
            for family in fast() if fast is not None else collector.collect():
                if family is not PAUSE:
                    self.renderer.add(family, out)
                if time.perf_counter() - started >= self.slice_s:
                    self._note_slice(started)
                    await asyncio.sleep(0)
                    started = time.perf_counter()
        self._note_slice(started)
        return self.renderer.finish(out)

    def _note_slice(self, started: float) -> None:
        self.longest_slice_s = max(self.longest_slice_s, time.perf_counter() - started)
