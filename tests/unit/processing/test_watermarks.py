"""The watermark a record saw is found in the history by offset: the newest move made by
an earlier record, whatever the history's length (a replay looks back by bisection)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.processing.bucket_store import Watermarks, watermark_before
from streams.processing.stored_rows import WatermarkRow


def scanned(history: tuple[tuple[int, float], ...], offset: int) -> float:
    """The definition, read straight: the last move recorded at an earlier offset."""
    before = [wmb for at, wmb in history if at < offset]
    return float(before[-1]) if before else float("-inf")


@given(st.sets(st.integers(0, 10_000), max_size=60), st.integers(-1, 10_100))
def test_watermark_before_is_the_newest_earlier_move(offsets: set[int], offset: int) -> None:
    history = tuple((at, float(i * 60)) for i, at in enumerate(sorted(offsets)))
    meta = WatermarkRow(max(offsets, default=-1), history)
    assert watermark_before(meta, offset) == scanned(history, offset)


def test_a_replayed_record_sees_the_watermark_it_saw_first() -> None:
    clock = Watermarks({}, 60)
    seen = {}
    for offset, at in enumerate([0, 30, 65, 10, 130, 200, 61]):
        seen[offset] = clock.before_and_current(0, offset)[0]
        clock.advance(0, offset, at)
    replay = Watermarks(dict(clock.meta), 60)  # a restarted worker, tables recovered
    assert {o: replay.before_and_current(0, o)[0] for o in seen} == seen
    assert seen[3] == 60 and seen[6] == 180  # late ones see the moves made before them


@given(st.sets(st.integers(0, 10_000), max_size=60), st.integers(-1, 10_100))
def test_one_read_gives_the_watermark_seen_and_the_newest(offsets: set[int], offset: int) -> None:
    history = tuple((at, float(i * 60)) for i, at in enumerate(sorted(offsets)))
    meta = {"0": WatermarkRow(max(offsets, default=-1), history)} if offsets else {}
    clock = Watermarks(meta, 60)
    newest = history[-1][1] if history else float("-inf")
    assert clock.before_and_current(0, offset) == (scanned(history, offset), newest)
