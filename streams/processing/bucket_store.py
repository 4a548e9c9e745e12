"""Tumbling-bucket and watermark tables shared by the ticket and customer processors.

Both tables are plain ``MutableMapping``s (Faust tables in the worker) with JSON values:

- buckets  "p|start|queue|channel" -> {"o": last offset, "v": {entry: [sum, count]},
                                        "m": {figure: [values...]}}   ("m" only for maxima)
- meta     "p" -> {"o": last offset, "h": [[offset, watermark bucket], ...]}

Every key remembers the offset of the record that last changed it, so a
redelivered record (offset <= that) changes nothing twice. ``meta`` records the
offset at which the watermark moved, so a replayed record sees the watermark it
saw the first time.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.core.buckets import Cell, bucket_start, changes
from streams.core.facts import Fact

HISTORY = 500  # watermark moves remembered; far more than records between two commits
MAXIMA = frozenset({"first_response"})  # figures whose per-bucket maximum is exported

Row = tuple[int, str, str, str, float, int]  # (start, entry, queue, channel, sum, count)
MaxRow = tuple[int, str, str, str, float]  # (start, figure, queue, channel, max)


def watermark_before(meta: dict[str, Any] | None, offset: int) -> float:
    """The partition's bucketed watermark just before the record at ``offset``.

    History entries are in offset order; a record that is not a replay comes after all
    of them (one comparison), a replayed one is found by bisection, not a scan.
    """
    history = (meta or {}).get("h")
    if not history:
        return float("-inf")
    if history[-1][0] < offset:
        return float(history[-1][1])
    i = bisect_left(history, offset, key=lambda entry: entry[0])
    return float(history[i - 1][1]) if i else float("-inf")


@dataclass
class Watermarks:
    """Per-partition event-time watermark (max event time seen), bucketed and replay-safe."""

    meta: MutableMapping[str, Any]
    bucket_s: int
    high: dict[int, float] = field(default_factory=dict)  # exact watermark per partition

    def before(self, partition: int, offset: int) -> float:
        return watermark_before(self.meta.get(str(partition)), offset)

    def advance(self, partition: int, offset: int, at: float) -> float | None:
        """Record event time ``at``; returns the new bucketed watermark when it moved."""
        key = str(partition)
        meta = self.meta.get(key)
        history = meta["h"] if meta is not None else []  # copied only when the mark moves
        last_wmb = history[-1][1] if history else float("-inf")
        high = self.high.get(partition, last_wmb)
        if at > high:
            high = self.high[partition] = at
        new_wmb = bucket_start(high, self.bucket_s)
        if new_wmb <= last_wmb or (meta is not None and meta["o"] >= offset):
            return None
        self.meta[key] = {"o": offset, "h": [*history[-(HISTORY - 1) :], [offset, new_wmb]]}
        return float(new_wmb)

    def current(self, partition: int) -> float:
        """The newest bucketed watermark, whatever record is being (re)processed: what
        retention is measured from, so a replayed old record cannot revive what expired."""
        value = self.meta.get(str(partition))
        return float(value["h"][-1][1]) if value and value["h"] else float("-inf")

    def clock(self, partition: int) -> float | None:
        """The bucketed watermark: where event-clock windows end."""
        value = self.meta.get(str(partition))
        if not value or not value["h"]:
            return None
        return float(value["h"][-1][1])

    def forget(self, partition: int) -> None:
        self.high.pop(partition, None)


@dataclass
class BucketStore:
    """Writes fact deltas into buckets exactly once per record, and expires them in event time."""

    buckets: MutableMapping[str, Any]
    bucket_s: int
    bounds: tuple[float, ...]
    retention_s: float
    _index: dict[int, dict[int, set[str]]] = field(default_factory=dict)

    def write(
        self,
        partition: int,
        offset: int,
        retract: Sequence[Fact],
        add: Sequence[Fact],
        watermark: float,
    ) -> None:
        """``watermark``: the partition's current one (``Watermarks.current``)."""
        horizon = watermark - self.retention_s  # expired buckets are never resurrected
        cells = changes(retract, add, self.bucket_s, self.bounds, since=horizon)
        maxima: dict[Cell, list[tuple[str, int, float]]] = defaultdict(list)
        for sign, facts in ((-1, retract), (1, add)):
            for f in facts:
                if f.name in MAXIMA:
                    start = bucket_start(f.at, self.bucket_s)
                    if start >= horizon:
                        maxima[(start, f.queue, f.channel)].append((f.name, sign, f.value))
        for cell, sums in cells.items():  # a maximum's fact always has entries in its cell
            start, queue, channel = cell
            key = f"{partition}|{start}|{queue}|{channel}"
            current = self.buckets.get(key) or {"o": -1, "v": {}}
            if current["o"] >= offset:
                continue  # this record already reached this key before a crash or rebalance
            stored: dict[str, Any] = {"o": offset, "v": _add_sums(current["v"], sums)}
            m = _add_values(current.get("m", {}), maxima.get(cell, []))
            if m:
                stored["m"] = m
            self.buckets[key] = stored
            self.keys(partition).setdefault(start, set()).add(key)

    def keys(self, partition: int) -> dict[int, set[str]]:
        """Bucket keys of a partition by bucket start (built from the table on first use)."""
        index = self._index.get(partition)
        if index is None:
            index = {}
            prefix = f"{partition}|"
            for key in list(self.buckets.keys()):
                if key.startswith(prefix):
                    index.setdefault(int(key.split("|", 2)[1]), set()).add(key)
            self._index[partition] = index
        return index

    def expire(self, partition: int, watermark: float) -> None:
        index = self.keys(partition)
        horizon = watermark - self.retention_s
        for start in [s for s in index if s < horizon]:
            for key in index.pop(start):
                self.buckets.pop(key, None)

    def forget(self, partition: int) -> None:
        self._index.pop(partition, None)


def _add_sums(
    current: dict[str, list[float]], delta: dict[str, list[float]]
) -> dict[str, list[float]]:
    values = dict(current)
    for name, (total, count) in delta.items():
        old_total, old_count = values.get(name, (0.0, 0))
        if old_count + count == 0:
            values.pop(name, None)
        else:
            values[name] = [old_total + total, old_count + count]
    return values


def _add_values(
    current: dict[str, list[float]], changes: list[tuple[str, int, float]]
) -> dict[str, list[float]]:
    """Keep every value of a maximum figure (sorted), so a retraction can remove the top.

    Stored values are never changed in place (a batch that fails is re-read from them):
    without changes the current lists are shared, else the changed figure's list is copied.
    """
    if not changes:
        return current
    out = dict(current)
    copied: set[str] = set()
    for name, sign, value in changes:
        if name not in copied:
            out[name] = list(out.get(name, ()))
            copied.add(name)
        values = out[name]
        if sign > 0:
            insort(values, value)
        else:
            i = bisect_left(values, value)
            if i < len(values) and values[i] == value:
                values.pop(i)
    for name in copied:
        if not out[name]:
            del out[name]
    return out


def bucket_contents(
    buckets: MutableMapping[str, Any], partitions: set[int]
) -> tuple[dict[int, list[Row]], dict[int, list[MaxRow]]]:
    """One pass over the table (a scrape's main cost): sum rows and maxima per owned partition."""
    rows: dict[int, list[Row]] = defaultdict(list)
    maxima: dict[int, list[MaxRow]] = defaultdict(list)
    for key, value in list(buckets.items()):
        p_text, start_text, queue, channel = key.split("|", 3)
        p = int(p_text)
        if p not in partitions:
            continue
        start = int(start_text)
        out = rows[p]
        for entry, (total, count) in value["v"].items():
            out.append((start, entry, queue, channel, float(total), int(count)))
        for name, values in value.get("m", {}).items():
            maxima[p].append((start, name, queue, channel, float(values[-1])))
    return rows, maxima
