"""Rolling windows as sums of whole tumbling buckets, ending at a clock passed in.

A window of span S ending at ``end`` is the bucket holding ``end`` plus the
buckets before it, S/width in all (so "15m" covers between 14 and 15 minutes
of event time). "today" is every bucket from local midnight of ``end`` in the
configured time zone. Nothing here reads a clock: ``end`` is the wall clock
(live) or the partition's event-time watermark (replays, tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from streams.core.buckets import Entry, bucket_start

Sums = dict[tuple[Entry, str, str], tuple[float, int]]  # (entry, queue, channel) -> (sum, count)
TODAY = "today"


def first_bucket(window: str, span: float | None, end: float, width: int, tz: str) -> int:
    """Start of the oldest bucket the window includes."""
    if window == TODAY or span is None:
        local = datetime.fromtimestamp(end, ZoneInfo(tz))
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return bucket_start(midnight.timestamp(), width)
    return bucket_start(end, width) - int(span) + width


def window_sums(
    buckets: Iterable[tuple[int, Entry, str, str, float, int]],
    windows: Mapping[str, float | None],
    end: float,
    width: int,
    tz: str,
) -> dict[str, Sums]:
    """Sum (start, entry, queue, channel, sum, count) rows into each window ending at ``end``."""
    last = bucket_start(end, width)
    firsts = {w: first_bucket(w, span, end, width, tz) for w, span in windows.items()}
    out: dict[str, Sums] = {w: {} for w in windows}
    for start, entry, queue, channel, total, count in buckets:
        if start > last:
            continue
        for w, first in firsts.items():
            if start >= first:
                key = (entry, queue, channel)
                s, c = out[w].get(key, (0.0, 0))
                out[w][key] = (s + total, c + count)
    return out


def merge_sums(*parts: Sums) -> Sums:
    out: Sums = {}
    for part in parts:
        for key, (total, count) in part.items():
            s, c = out.get(key, (0.0, 0))
            out[key] = (s + total, c + count)
    return out


def window_range(
    window: str, span: float | None, end: float, width: int, tz: str
) -> tuple[int, int]:
    """[first, last) event-time range of the whole buckets a window covers."""
    return first_bucket(window, span, end, width, tz), bucket_start(end, width) + width


Maxima = dict[tuple[str, str, str], float]  # (figure, queue, channel) -> max


def window_maxima(
    rows: Iterable[tuple[int, str, str, str, float]],
    windows: Mapping[str, float | None],
    end: float,
    width: int,
    tz: str,
) -> dict[str, Maxima]:
    """The largest value per window of (start, figure, queue, channel, bucket max) rows."""
    ranges = {w: window_range(w, span, end, width, tz) for w, span in windows.items()}
    out: dict[str, Maxima] = {w: {} for w in windows}
    for start, name, queue, channel, value in rows:
        for w, (first, stop) in ranges.items():
            if first <= start < stop:
                key = (name, queue, channel)
                out[w][key] = max(out[w].get(key, value), value)
    return out
