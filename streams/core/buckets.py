"""Mergeable tumbling-bucket aggregates: (sum, count) per bucket, figure, queue and channel.

Everything is additive, so buckets from different partitions, workers or times
merge by addition, in any order and grouping; a rolling window is the merge of
the buckets it covers. A ticket's contribution changes by ``delta(old, new)``,
which retracts what was counted before; ``changes`` folds both sides into per-cell
sums and ``fold`` applies them. Distribution figures also count into
``<name>#<bound>`` entries (the smallest bound >= value, or ``#+Inf``), from
which cumulative histogram buckets are built at read time.

An entry is an ``Entry`` tuple, never a string to parse back: the figure, the ACR
period (``days``), the agent of a per-agent twin and the histogram bound (``le``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

import msgspec

from streams.core.facts import Fact

DISTRIBUTIONS = frozenset({"first_response", "reply_wait", "resolved", "abandoned"})


class Entry(msgspec.Struct, frozen=True, order=True, array_like=True, gc=False):
    """What a bucket sums: a figure, or one of its parts (an ACR period, an agent's
    twin, a histogram bucket). Empty strings mean "not that kind of part". Untracked by
    the garbage collector, like ``TicketEvent``; stored as a JSON array."""

    figure: str
    days: str = ""  # ACR period label ("3"), as exported in the ``days`` label
    agent: str = ""  # per-agent twins only
    le: str = ""  # histogram bucket upper bound ("30", "+Inf")


# (bucket start, entry, queue, channel) -> (sum of values, count)
BucketKey = tuple[int, Entry, str, str]
Buckets = dict[BucketKey, tuple[float, int]]
# (bucket start, queue, channel) -> {entry: [sum of values, count]}
Cell = tuple[int, str, str]
CellChanges = dict[Cell, dict[Entry, list[float]]]


def bucket_start(at: float, width: int) -> int:
    return int(at // width) * width


def bound_label(value: float, bounds: tuple[float, ...]) -> str:
    i = bisect_left(bounds, value)
    if i == len(bounds):
        return "+Inf"
    bound = bounds[i]
    label = _LABELS.get(bound)
    if label is None:
        label = _LABELS[bound] = _fmt(bound)
    return label


_LABELS: dict[float, str] = {}  # bound -> its label: a few per policy, read per fact


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def entries(fact: Fact, bounds: tuple[float, ...]) -> list[tuple[Entry, float]]:
    """The (entry, value) pairs one fact adds to its bucket."""
    name, value = fact.name, fact.value
    if name in DISTRIBUTIONS:
        le = bound_label(value, bounds)
        return [
            (Entry(name, fact.days, fact.agent), value),
            (Entry(name, fact.days, fact.agent, le), value),
        ]
    return [(Entry(name, fact.days, fact.agent), value)]


def changes(
    retract: Iterable[Fact],
    add: Iterable[Fact],
    width: int,
    bounds: tuple[float, ...],
    since: float = float("-inf"),
) -> CellChanges:
    """What moving a ticket from ``retract`` to ``add`` does to each bucket cell.

    Per cell, (sum, count) per entry, netted; an entry that nets to zero is kept, so
    the caller knows the cell was touched. Facts in buckets that start before
    ``since`` (expired ones) are left out. The worker's bucket store and the
    property tests both fold facts through this.
    """
    out: CellChanges = {}
    for sign, facts in ((-1, retract), (1, add)):
        for f in facts:
            start = bucket_start(f.at, width)
            if start < since:
                continue
            cell = out.get((start, f.queue, f.channel))
            if cell is None:
                cell = out[(start, f.queue, f.channel)] = {}
            for name, value in entries(f, bounds):
                acc = cell.get(name)
                if acc is None:
                    acc = cell[name] = [0.0, 0]
                acc[0] += sign * value
                acc[1] += sign
    return out


def fold(buckets: Buckets, cells: CellChanges) -> None:
    """Apply cell changes to a flat bucket map in place; keys whose count reaches 0 go."""
    for (start, queue, channel), sums in cells.items():
        for name, (total, count) in sums.items():
            key = (start, name, queue, channel)
            old_total, old_count = buckets.get(key, (0.0, 0))
            if old_count + count == 0:
                buckets.pop(key, None)
            else:
                buckets[key] = (old_total + total, int(old_count + count))


def delta(old: Iterable[Fact], new: Iterable[Fact]) -> tuple[list[Fact], list[Fact]]:
    """What to retract and what to add to move a ticket from ``old`` to ``new`` facts
    (multiset difference both ways: a fact may occur more than once)."""
    left: dict[Fact, int] = {}
    for f in old:
        left[f] = left.get(f, 0) + 1
    add = []
    for f in new:
        n = left.get(f, 0)
        if n:
            left[f] = n - 1
        else:
            add.append(f)
    retract = [f for f, n in left.items() for _ in range(n)]
    return retract, add


def merge(*parts: Mapping[BucketKey, tuple[float, int]]) -> Buckets:
    """Sum several bucket maps; associative and commutative."""
    out: Buckets = {}
    for part in parts:
        for key, (total, count) in part.items():
            t, c = out.get(key, (0.0, 0))
            out[key] = (t + total, c + count)
    return {k: v for k, v in out.items() if v[1] != 0}


K = TypeVar("K")
N = TypeVar("N", int, float)


def accumulate(into: dict[K, list[N]], pairs: Iterable[tuple[K, Sequence[N]]]) -> None:
    """Add (sum, count) pairs into ``into`` key by key, in place: the netting of a batch's
    writes in ``bucket_store``, and a new window's filling in ``window_totals``."""
    for key, (total, count) in pairs:
        acc = into.get(key)
        if acc is None:
            into[key] = [total, count]
        else:
            acc[0] += total
            acc[1] += count
