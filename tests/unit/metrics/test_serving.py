"""Scrape storms: one rendering shared, never older than the scrape, rendered in slices."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from streams.metrics.families import Family
from streams.metrics.serving import PAUSE, SharedRendering, run_in_pauses


class SlowCollector:
    """Each family costs ``cost_s`` of CPU; PAUSE between families, as the exporter does.
    Its values are the state ``version`` it was rendered at."""

    def __init__(self, families: int, cost_s: float, clock: list[float] | None = None) -> None:
        self.n, self.cost_s, self.built, self.state = families, cost_s, 0, 0
        self.began: list[float] = []  # when each rendering began reading it
        self.clock = clock  # a clock each family moves on by cost_s, instead of spinning

    def families(self):
        self.began.append(time.monotonic())
        for i in range(self.n):
            if self.clock is not None:
                self.clock[0] += self.cost_s
            else:
                end = time.perf_counter() + self.cost_s
                while time.perf_counter() < end:
                    pass
            self.built += 1
            family = Family(f"x_{i}", "doc", ["queue"])
            family.add(["q"], self.state)
            yield family
            yield PAUSE


def shared_for(collector: SlowCollector, **kwargs) -> SharedRendering:
    return SharedRendering([collector], version=lambda: collector.state, **kwargs)


async def test_concurrent_scrapes_share_one_rendering() -> None:
    collector = SlowCollector(families=10, cost_s=0.002)
    shared = shared_for(collector, min_interval_s=0.0)
    texts = await asyncio.gather(*(shared.get() for _ in range(20)))
    assert shared.renderings == 1
    assert collector.built == 10
    assert len(set(texts)) == 1 and b"x_9" in texts[0]


async def test_an_unchanged_state_is_served_again_and_a_changed_one_never_is() -> None:
    collector = SlowCollector(3, 0.0)
    shared = shared_for(collector, min_interval_s=0.05)
    first = await shared.get()
    assert await shared.get() == first and shared.renderings == 1
    collector.state = 1  # a batch was applied: the next scrape must show it
    began = time.monotonic()
    second = await shared.get()
    assert b'x_0{queue="q"} 1.0' in second and shared.renderings == 2
    assert time.monotonic() - began >= 0.04, "renderings begin at most every min_interval_s"


async def test_a_scrape_arriving_during_a_rendering_waits_for_the_next_one() -> None:
    """The rendering under way began before the state this scrape may already have seen."""
    collector = SlowCollector(10, 0.002)
    shared = shared_for(collector, min_interval_s=0.0)
    early = asyncio.ensure_future(shared.get())
    await asyncio.sleep(0.005)  # the first rendering is under way
    collector.state = 7
    late = await shared.get()
    assert b'x_9{queue="q"} 7.0' in late
    await early
    assert shared.renderings == 2


async def test_other_tasks_run_while_a_long_rendering_goes_on() -> None:
    """40 ms of rendering in 2 ms families: the loop gets control back between slices,
    every 3 families (6 ms, the first past 5). Timed by a clock the families move on, so a
    loaded machine that stalls the process mid-slice cannot fail it (the wall clock did)."""
    clock = [0.0]
    shared = shared_for(SlowCollector(20, 0.002, clock), slice_s=0.005, clock=lambda: clock[0])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    await shared.get()
    task.cancel()
    assert ticks >= 6  # a pause after families 3, 6, ..., 18
    assert shared.longest_slice_s == pytest.approx(0.006)
    assert shared.last_cost_s == pytest.approx(0.04)


async def test_a_rendering_the_partitions_changed_hands_during_is_begun_again() -> None:
    """A rebalance that begins while the figures are rendered: the families rendered
    before it and those after would speak of different partitions (an ownership gauge
    read first claiming figures left out later), so the text is rendered again whole."""
    collector = SlowCollector(10, 0.001)
    owner = {"partitions": 4}
    shared = SharedRendering(
        [collector], min_interval_s=0.0, slice_s=0.001, version=lambda: collector.state,
        ownership=lambda: owner["partitions"],
    )  # fmt: skip

    async def rebalance() -> None:
        while collector.built < 5:
            await asyncio.sleep(0)
        owner["partitions"], collector.state = 0, 1  # mid-rendering

    task = asyncio.ensure_future(rebalance())
    text = await shared.get()
    await task
    assert b'x_0{queue="q"} 1.0' in text and b'x_9{queue="q"} 1.0' in text
    assert shared.begun_again == 1 and collector.built == 20
    assert shared.renderings == 1  # one rendering as the scrapes see it, its cost counted whole
    assert await shared.get() == text and collector.built == 20  # kept as of the new state


async def test_a_failed_rendering_is_not_kept() -> None:
    class Broken:
        def collect(self):
            raise RuntimeError("boom")
            yield  # pragma: no cover

    shared = SharedRendering([Broken()], min_interval_s=0.0, version=lambda: 1)
    for _ in range(2):
        with contextlib.suppress(RuntimeError):
            await shared.get()
    assert shared.renderings == 2  # the error was not kept: the next scrape tried again


async def test_renderings_take_at_most_their_share_of_the_loop() -> None:
    """A 20 ms rendering with a 10 % share: the next begins 200 ms after, not after 1 ms."""
    collector = SlowCollector(10, 0.002)
    shared = shared_for(collector, min_interval_s=0.001, max_share=0.1)
    await shared.get()
    assert 0.02 <= shared.last_cost_s < 0.5  # 20 ms of work (more on a loaded machine)
    spacing = shared.spacing_s()  # the next rendering's cost will set the one after
    assert spacing == shared.last_cost_s / 0.1
    collector.state = 1
    await shared.get()
    # measured between the beginnings, as the spacing is: from the end of the first, the
    # wait also loses the first rendering's time, which a loaded machine stretches
    first, second = collector.began
    assert second - first >= spacing - 0.03
    assert shared.renderings == 2


async def test_the_share_counts_the_renderings_slices_not_the_batches_between_them() -> None:
    """Other tasks hold the loop between slices: that time is not the rendering's cost."""
    shared = shared_for(SlowCollector(10, 0.002), slice_s=0.001, max_share=0.5)

    held = [0.0]  # how long the neighbour held the loop

    async def busy_neighbour() -> None:
        while True:
            start = time.perf_counter()
            while time.perf_counter() < start + 0.01:
                pass
            held[0] += time.perf_counter() - start
            await asyncio.sleep(0)

    task = asyncio.ensure_future(busy_neighbour())
    began = time.perf_counter()
    await shared.get()
    wall = time.perf_counter() - began
    task.cancel()
    assert held[0] > 0.08  # ten 10 ms neighbours ran between the slices
    assert shared.last_cost_s < wall - held[0] + 0.01  # not one of them counted


async def test_the_share_never_spaces_renderings_past_the_longest_wait() -> None:
    """A 20 ms rendering with a 1 % share would be served for 2 s: capped at 60 ms, a
    scrape after a change waits for a rendering that begins 60 ms after, not 2 s."""
    collector = SlowCollector(10, 0.002)
    shared = shared_for(collector, min_interval_s=0.001, max_share=0.01, max_spacing_s=0.06)
    await shared.get()
    assert shared.last_cost_s >= 0.02 and shared.spacing_s() == 0.06
    collector.state = 1
    assert b'x_0{queue="q"} 1.0' in await shared.get()
    first, second = collector.began  # between the beginnings, as the spacing is
    assert 0.03 <= second - first < 1.0
    assert shared.renderings == 2


async def test_steps_run_in_pauses_let_others_run_and_stop_at_a_pause() -> None:
    """The worker's warm-up of the window totals: a partition per step, the loop free at
    every pause, and nothing more built once a rebalance begins."""
    done: list[int] = []
    seen: list[int] = []

    def steps():
        for i in range(3):
            yield PAUSE
            done.append(i)

    async def other() -> None:
        seen.append(len(done))

    waiting = asyncio.ensure_future(other())
    assert await run_in_pauses(steps(), stop=lambda: False)
    await waiting
    assert done == [0, 1, 2]
    assert seen == [0]  # it ran at the first pause, before any step
    done.clear()
    assert not await run_in_pauses(steps(), stop=lambda: len(done) == 1)
    assert done == [0]  # stopped at the pause before the second step
