"""Mergeable tumbling-bucket aggregates: sums and counts keyed by bucket, figure, queue, channel.

Everything here is additive, so buckets from different partitions, workers or
times merge by addition, in any order and grouping, and a rolling window is just
the merge of the buckets it covers. A ticket's contribution changes by applying
``delta(old_facts, new_facts)``, which retracts what was counted before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from streams.core.facts import Fact

# (bucket start in epoch seconds, figure name, queue, channel) -> (sum of values, count)
BucketKey = tuple[int, str, str, str]
Buckets = dict[BucketKey, tuple[float, int]]


def bucket_start(at: float, width: int) -> int:
    return int(at // width) * width


def add(buckets: Buckets, facts: Iterable[Fact], width: int, sign: int = 1) -> None:
    """Fold facts into ``buckets`` in place (``sign=-1`` retracts them); drops emptied keys."""
    for f in facts:
        key = (bucket_start(f.at, width), f.name, f.queue, f.channel)
        total, count = buckets.get(key, (0.0, 0))
        total, count = total + sign * f.value, count + sign
        if count == 0:
            buckets.pop(key, None)
        else:
            buckets[key] = (total, count)


def delta(old: Iterable[Fact], new: Iterable[Fact]) -> tuple[list[Fact], list[Fact]]:
    """What to retract and what to add to move a ticket from ``old`` to ``new`` facts."""
    before, after = Counter(old), Counter(new)
    return list((before - after).elements()), list((after - before).elements())


def merge(*parts: Mapping[BucketKey, tuple[float, int]]) -> Buckets:
    """Sum several bucket maps; associative and commutative."""
    out: Buckets = {}
    for part in parts:
        for key, (total, count) in part.items():
            t, c = out.get(key, (0.0, 0))
            out[key] = (t + total, c + count)
    return {k: v for k, v in out.items() if v[1] != 0}
