"""Scrapes that never stall processing: one rendering shared, rendered in slices.

Every scrape used to rebuild every series on the event loop, so 20 clients scraping
at once (an HA Prometheus pair, wallboards, a heavy dashboard) stopped ingestion.
Now:

- a scrape never leaves out a batch applied before it arrived: a rendering is served
  again only while ``version`` is unchanged since it began (the worker's version moves
  with every batch applied, rebalance and broker up/down change, and every
  ``min_interval_s``), otherwise the scrape waits for one that begins after it arrived;
- scrapes arriving meanwhile share that one rendering (single flight), and renderings
  begin at most once per ``min_interval_s`` (``metrics_cache_seconds``, 1 s by
  default), so a storm costs one rendering per second however many clients there are;
- and at most ``max_share`` of the loop goes to rendering (``metrics_render_share``,
  5 % by default): after a rendering that took ``c`` seconds of the loop (its slices,
  not the batches between them), the next begins ``c / max_share`` after it at the
  earliest. A loaded worker's 80 ms rendering is then served for 1.6 s, and a storm
  takes no more than that share from ingestion;
- but never more than ``max_spacing_s`` (``metrics_max_spacing_seconds``, 2 s) apart, so
  a scrape waits at most that plus one rendering (two when the partitions change hands
  during one: below), far inside Prometheus' 10 s default
  scrape timeout: a rendering dearer than ``max_share * max_spacing_s`` (100 ms) takes
  more than the share rather than leave scrapes unanswered and wallboards stale;
- the rendering gives the loop back whenever it has run ``slice_s`` (5 ms), between
  families or between partitions (the KPI exporter yields ``PAUSE`` there), so the
  agents' batches interleave with it. Each family is built from one consistent read;
- and a rendering during which the partitions changed hands (``ownership``: which ones
  the worker owns, and whether their tables are recovered) is begun again, so the
  ownership gauge and the figures in one text always speak of the same partitions (the
  wallboard trusts a reading only when they cover the whole topic).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from streams.metrics.exposition import TextRenderer

PAUSE = None  # yielded by a ``families()`` generator where the loop may run others


async def run_in_pauses(steps: Iterator[None], stop: Callable[[], bool]) -> bool:
    """Run ``steps`` (a generator yielding ``PAUSE`` before each step), letting the loop run
    others at every pause, and give up there as soon as ``stop()`` is true: True when done."""
    for _ in steps:
        await asyncio.sleep(0)
        if stop():
            return False
    return True


class SharedRendering:
    def __init__(
        self,
        collectors: Iterable[Any],
        min_interval_s: float = 1.0,
        slice_s: float = 0.005,
        max_share: float = 1.0,
        max_spacing_s: float = float("inf"),
        version: Callable[[], object] = object,
        clock: Callable[[], float] = time.monotonic,
        ownership: Callable[[], object] = lambda: None,
    ) -> None:
        """``version``: changes whenever what the collectors read changed (the worker
        passes its batch and rebalance counts; the default never repeats).
        ``ownership``: the partitions whose figures the collectors export, in any form
        that compares equal while they stay the same (the default never changes).
        ``max_share``: the share of the loop renderings may take (1.0: no such limit),
        as long as that spaces them no more than ``max_spacing_s`` apart. ``clock``: what
        the spacing, a rendering's slices and its loop time are measured with."""
        self.collectors = list(collectors)
        self.min_interval_s = min_interval_s
        self.slice_s = slice_s
        self.max_share = max_share
        self.max_spacing_s = max_spacing_s
        self.version = version
        self.clock = clock
        self.ownership = ownership
        self.renderer = TextRenderer()
        self.renderings = 0  # renderings begun (the other scrapes shared or reused one)
        self.begun_again = 0  # renderings the partitions changed hands during
        self.longest_slice_s = 0.0
        self.last_cost_s = 0.0  # the loop time of the last rendering finished
        self._text: bytes | None = None
        self._text_version: object = None
        self._began = float("-inf")
        self._pending: asyncio.Future[bytes] | None = None
        self._pending_version: object = None

    async def get(self) -> bytes:
        """The exposition text, as of this call or later."""
        version = self.version()
        if self._text is not None and version == self._text_version:
            return self._text
        if self._pending is not None and version == self._pending_version:
            return await asyncio.shield(self._pending)  # begun on the state seen now
        wanted = self.renderings + 1  # the next rendering to begin, not the one under way
        while True:
            if self._pending is None:
                delay = self._began + self.spacing_s() - self.clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue  # another waiter may have begun one meanwhile
                self._begin()
            number, pending = self.renderings, self._pending
            assert pending is not None
            text = await asyncio.shield(pending)
            if number >= wanted:
                return text

    def stats(self) -> dict[str, float]:
        """For /stats: renderings begun, the last one's loop time, and the spacing now."""
        return {
            "renderings": self.renderings,
            "last_cost_s": self.last_cost_s,
            "spacing_s": self.spacing_s(),
            "longest_slice_s": self.longest_slice_s,
            "begun_again": self.begun_again,
        }

    def spacing_s(self) -> float:
        """The least time between the beginnings of two renderings: what keeps them
        within their share of the loop, capped so scrapes never wait long."""
        by_share = min(self.last_cost_s / self.max_share, self.max_spacing_s)
        return max(self.min_interval_s, by_share)

    def _begin(self) -> None:
        self.renderings += 1
        self._began = self.clock()
        self._pending_version = self.version()
        pending = self._pending = asyncio.ensure_future(self._render())

        def done(future: asyncio.Future[bytes]) -> None:
            self._pending = None
            if not future.cancelled() and future.exception() is None:
                # the state its last attempt began on (one begun again began later)
                self._text, self._text_version = future.result(), self._pending_version

        pending.add_done_callback(done)

    async def _render(self) -> bytes:
        """One text in which every collector saw the same partitions: begun again when
        they changed hands meanwhile (a rebalance lasts seconds, a rendering milliseconds)."""
        cost = 0.0
        while True:
            owned = self.ownership()
            text, spent = await self._render_once()
            cost += spent
            if self.ownership() == owned:
                self.last_cost_s = cost
                return text
            self.begun_again += 1
            self._pending_version = self.version()  # scrapes arriving now may share it

    async def _render_once(self) -> tuple[bytes, float]:
        """The text and the loop time of its slices (not the batches between them)."""
        out: list[str] = []
        cost = 0.0
        started = self.clock()
        for collector in self.collectors:
            fast = getattr(collector, "families", None)
            for family in fast() if fast is not None else collector.collect():
                if family is not PAUSE:
                    self.renderer.add(family, out)
                if self.clock() - started >= self.slice_s:
                    cost += self._note_slice(started)
                    await asyncio.sleep(0)
                    started = self.clock()
        text = self.renderer.finish(out)
        return text, cost + self._note_slice(started)

    def _note_slice(self, started: float) -> float:
        """The slice's length, noted as the longest when it is."""
        spent = self.clock() - started
        self.longest_slice_s = max(self.longest_slice_s, spent)
        return spent
