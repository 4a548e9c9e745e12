"""Scrape storms: one rendering shared, reused while young, and rendered in slices."""

from __future__ import annotations

import asyncio
import contextlib
import time

from streams.metrics.families import Family
from streams.metrics.serving import PAUSE, SharedRendering


class SlowCollector:
    """Each family costs ``cost_s`` of CPU; PAUSE between families, as the exporter does."""

    def __init__(self, families: int, cost_s: float) -> None:
        self.n, self.cost_s, self.built = families, cost_s, 0

    def families(self):
        for i in range(self.n):
            end = time.perf_counter() + self.cost_s
            while time.perf_counter() < end:
                pass
            self.built += 1
            family = Family(f"x_{i}", "doc", ["queue"])
            family.add(["q"], self.built)
            yield family
            yield PAUSE


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_scrapes_share_one_rendering() -> None:
    collector = SlowCollector(families=10, cost_s=0.002)
    shared = SharedRendering([collector], max_age_s=1.0, clock=Clock())
    texts = await asyncio.gather(*(shared.get() for _ in range(20)))
    assert shared.renderings == 1
    assert collector.built == 10
    assert len(set(texts)) == 1 and b"x_9" in texts[0]


async def test_a_young_rendering_is_served_again_and_an_old_one_is_not() -> None:
    clock = Clock()
    shared = SharedRendering([SlowCollector(3, 0.0)], max_age_s=1.0, clock=clock)
    first = await shared.get()
    clock.now = 0.9
    assert await shared.get() == first and shared.renderings == 1
    clock.now = 1.0
    assert await shared.get() != first and shared.renderings == 2


async def test_other_tasks_run_while_a_long_rendering_goes_on() -> None:
    """40 ms of rendering in 2 ms families: the loop gets control back between slices."""
    shared = SharedRendering([SlowCollector(20, 0.002)], max_age_s=0.0, slice_s=0.005)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    await shared.get()
    task.cancel()
    assert ticks >= 5
    assert shared.longest_slice_s < 0.02


async def test_a_failed_rendering_is_not_kept() -> None:
    class Broken:
        def collect(self):
            raise RuntimeError("boom")
            yield  # pragma: no cover

    shared = SharedRendering([Broken()], max_age_s=10.0)
    for _ in range(2):
        with contextlib.suppress(RuntimeError):
            await shared.get()
    assert shared.renderings == 2  # the error was not cached: the next scrape tried again
