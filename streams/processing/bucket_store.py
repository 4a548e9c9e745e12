"""Tumbling-bucket and watermark tables shared by the ticket and customer processors.

Both tables are plain ``MutableMapping``s (Faust tables in the worker) of typed rows
(``streams.processing.stored_rows``):

- buckets  "p|start|queue|channel" -> ``BucketRow`` (last offset, sums per entry, maxima)
- meta     "p" -> ``WatermarkRow`` (last offset, [(offset, watermark bucket), ...])

Every key remembers the offset of the record that last changed it, so a
redelivered record (offset <= that) changes nothing twice. ``meta`` records the
offset at which the watermark moved, so a replayed record sees the watermark it
saw the first time.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.core.buckets import Cell, Entry, accumulate, bucket_start, changes
from streams.core.facts import Fact
from streams.processing.stored_rows import BucketRow, EntrySum, WatermarkRow

HISTORY = 500  # watermark moves remembered; far more than records between two commits
MAXIMA = frozenset({"first_response"})  # figures whose per-bucket maximum is exported

# (entry, old sum, old count, new sum, new count) of one bucket's changed entry
EntryChange = tuple[Entry, float, int, float, int]
Maxima = dict[str, tuple[float, ...]]


class BucketListener(Protocol):
    """Kept in step with the bucket table (``streams.processing.window_totals``)."""

    def changed(
        self,
        partition: int,
        cell: Cell,
        sums: list[EntryChange],
        maxima: tuple[Maxima, Maxima],
    ) -> None: ...

    def removed(self, partition: int, start: int, key: str, row: BucketRow) -> None: ...

    def forget(self, partition: int) -> None: ...

    def forget_all(self) -> None: ...


Row = tuple[int, Entry, str, str, float, int]  # (start, entry, queue, channel, sum, count)
MaxRow = tuple[int, str, str, str, float]  # (start, figure, queue, channel, max)


def watermark_before(meta: WatermarkRow | None, offset: int) -> float:
    """The partition's bucketed watermark just before the record at ``offset``.

    History entries are in offset order; a record that is not a replay comes after all
    of them (one comparison), a replayed one is found by bisection, not a scan.
    """
    history = meta.history if meta is not None else ()
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

    def before_and_current(self, partition: int, offset: int) -> tuple[float, float]:
        """(the bucketed watermark just before the record at ``offset``, the newest one) from
        one read of the partition's row. The newest is what retention is measured from,
        whatever record is being (re)processed, so a replayed old record cannot revive what
        expired; the two differ only for a replay."""
        meta: WatermarkRow | None = self.meta.get(str(partition))
        history = meta.history if meta is not None else ()
        current = float(history[-1][1]) if history else float("-inf")
        if history and history[-1][0] < offset:  # not a replay: the newest (one comparison)
            return current, current
        return watermark_before(meta, offset), current

    def advance(self, partition: int, offset: int, at: float) -> float | None:
        """Record event time ``at``; returns the new bucketed watermark when it moved."""
        key = str(partition)
        meta: WatermarkRow | None = self.meta.get(key)
        history = meta.history if meta is not None else ()
        last_wmb = history[-1][1] if history else float("-inf")
        high = self.high.get(partition, last_wmb)
        if at > high:
            high = self.high[partition] = at
        new_wmb = bucket_start(high, self.bucket_s)
        if new_wmb <= last_wmb or (meta is not None and meta.offset >= offset):
            return None
        moved = (*history[-(HISTORY - 1) :], (offset, float(new_wmb)))
        self.meta[key] = WatermarkRow(offset, moved)
        return float(new_wmb)

    def clock(self, partition: int) -> float | None:
        """The bucketed watermark: where event-clock windows end."""
        value: WatermarkRow | None = self.meta.get(str(partition))
        if value is None or not value.history:
            return None
        return float(value.history[-1][1])

    def forget(self, partition: int) -> None:
        self.high.pop(partition, None)


@dataclass(slots=True)
class _Pending:
    """A bucket's changes since the last flush: what the store held when the first of
    them came (``base``), then the netted sums, the maxima's changes in record order, and
    the offset of the last record that changed it."""

    partition: int
    cell: Cell
    base: BucketRow
    sums: dict[Entry, list[float]]
    maxima: list[tuple[str, int, float]]
    offset: int


_EMPTY = BucketRow(-1, ())


@dataclass
class BucketStore:
    """Writes fact deltas into buckets exactly once per record, and expires them in event time.

    Inside ``deferred()`` (a batch) a bucket's changes are netted and the row is written
    once when it ends, however many of the batch's records touched it: a batch of 2,000
    records touches a hundred or so buckets. (A bucket that a watermark moving mid-batch
    expires is written then, and deleted.) Each record still skips the buckets whose
    stored offset is at or past its own, as the stored rows are at the batch's start;
    so a batch replayed after a crash that wrote some of its keys and not others
    changes each key exactly once, as written one record at a time would.
    """

    buckets: MutableMapping[str, Any]
    bucket_s: int
    bounds: tuple[float, ...]
    retention_s: float
    _index: dict[int, dict[int, set[str]]] = field(default_factory=dict)
    # told of every bucket written or expired (``streams.processing.window_totals``)
    listeners: list[BucketListener] = field(default_factory=list)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _deferring: bool = False

    def write(
        self,
        partition: int,
        offset: int,
        retract: Sequence[Fact],
        add: Sequence[Fact],
        watermark: float,
    ) -> None:
        """``watermark``: the partition's newest (``Watermarks.before_and_current``)."""
        horizon = watermark - self.retention_s  # expired buckets are never resurrected
        cells = changes(retract, add, self.bucket_s, self.bounds, since=horizon)
        maxima: dict[Cell, list[tuple[str, int, float]]] = {}  # most records have none
        for sign, facts in ((-1, retract), (1, add)):
            for f in facts:
                if f.name in MAXIMA:
                    start = bucket_start(f.at, self.bucket_s)
                    if start >= horizon:
                        cell = (start, f.queue, f.channel)
                        changed = maxima.get(cell)
                        if changed is None:
                            changed = maxima[cell] = []
                        changed.append((f.name, sign, f.value))
        for cell, sums in cells.items():  # a maximum's fact always has entries in its cell
            self._note(partition, offset, cell, sums, maxima.get(cell))
        if not self._deferring:
            self.flush()

    def _note(
        self,
        partition: int,
        offset: int,
        cell: Cell,
        sums: dict[Entry, list[float]],
        maxima: list[tuple[str, int, float]] | None,
    ) -> None:
        start, queue, channel = cell
        key = f"{partition}|{start}|{queue}|{channel}"
        pending = self._pending.get(key)
        if pending is None:
            base: BucketRow = self.buckets.get(key) or _EMPTY
            pending = self._pending[key] = _Pending(partition, cell, base, {}, [], base.offset)
        if pending.base.offset >= offset:
            return  # this record already reached this key before a crash or rebalance
        accumulate(pending.sums, sums.items())
        if maxima:
            pending.maxima.extend(maxima)
        pending.offset = offset

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Write each changed bucket once, when the block ends; nothing on an error (the
        batch failed: its records come again)."""
        self._deferring = True
        try:
            yield
        except BaseException:
            self._pending.clear()
            raise
        finally:
            self._deferring = False
        self.flush()

    def flush(self) -> None:
        """Write every bucket changed since the last flush, and tell the listeners."""
        pending, self._pending = self._pending, {}
        self._write(pending)

    def _flush_expiring(self, partition: int, horizon: float) -> None:
        """Write the batch's changes to the buckets of ``partition`` that start before
        ``horizon`` (they go next). The batch's other buckets stay pending until the batch
        ends, or until a later move of the watermark expires them in turn."""
        going = {
            key: p
            for key, p in self._pending.items()
            if p.partition == partition and p.cell[0] < horizon
        }
        for key in going:
            del self._pending[key]
        self._write(going)

    def _write(self, pending: dict[str, _Pending]) -> None:
        for key, p in pending.items():
            if p.offset == p.base.offset:
                continue  # every record that reached it was a replay
            base = p.base
            m = _add_values(base.maxima, p.maxima)
            new_sums, changed = _add_sums(base.sums, p.sums)
            self.buckets[key] = BucketRow(p.offset, new_sums, m)
            index = self.keys(p.partition)
            held = index.get(p.cell[0])
            if held is None:
                held = index[p.cell[0]] = set()
            held.add(key)
            for listener in self.listeners:
                listener.changed(p.partition, p.cell, changed, (base.maxima, m))

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
        horizon = watermark - self.retention_s
        self._flush_expiring(partition, horizon)  # a bucket the batch changed may go now
        index = self.keys(partition)
        for start in [s for s in index if s < horizon]:
            for key in index.pop(start):
                row = self.buckets.pop(key, None)
                for listener in self.listeners:
                    if row is not None:
                        listener.removed(partition, start, key, row)

    def forget(self, partition: int) -> None:
        self._pending = {k: p for k, p in self._pending.items() if p.partition != partition}
        self._index.pop(partition, None)
        for listener in self.listeners:
            listener.forget(partition)

    def forget_all(self) -> None:
        """Tables were recovered: indexes built from a copy read meanwhile are incomplete."""
        self._pending.clear()
        self._index.clear()
        for listener in self.listeners:
            listener.forget_all()


def _add_sums(
    current: tuple[EntrySum, ...], delta: dict[Entry, list[float]]
) -> tuple[tuple[EntrySum, ...], list[EntryChange]]:
    """The bucket's new sums, and each changed entry's (entry, old sum, old count, new
    sum, new count) for the listeners. The row's triples are reused as they are (a write
    changes a few of a bucket's entries): no unpacking and repacking of the others."""
    values = {triple[0]: triple for triple in current}
    changed: list[EntryChange] = []
    for entry, (total, count) in delta.items():
        old = values.get(entry)
        old_total, old_count = (old[1], old[2]) if old is not None else (0.0, 0)
        new_count = int(old_count + count)
        if new_count == 0:
            values.pop(entry, None)
            changed.append((entry, old_total, old_count, 0.0, 0))
        else:
            new_total = old_total + total
            values[entry] = (entry, new_total, new_count)
            changed.append((entry, old_total, old_count, new_total, new_count))
    return tuple(values.values()), changed


def _add_values(
    current: dict[str, tuple[float, ...]], changes: list[tuple[str, int, float]]
) -> dict[str, tuple[float, ...]]:
    """Keep every value of a maximum figure (sorted), so a retraction can remove the top.

    Stored rows are never changed in place (a batch that fails is re-read from them):
    the changed figures get new tuples, the others are shared.
    """
    if not changes:
        return current
    lists: dict[str, list[float]] = {}
    for name, sign, value in changes:
        values = lists.get(name)
        if values is None:
            values = lists[name] = list(current.get(name, ()))
        if sign > 0:
            insort(values, value)
        else:
            i = bisect_left(values, value)
            if i < len(values) and values[i] == value:
                values.pop(i)
    out = dict(current)
    for name, values in lists.items():
        if values:
            out[name] = tuple(values)
        else:
            out.pop(name, None)
    return out


def bucket_contents(
    buckets: MutableMapping[str, Any], partitions: set[int]
) -> tuple[dict[int, list[Row]], dict[int, list[MaxRow]]]:
    """One pass over the table (a scrape's main cost): sum rows and maxima per owned partition."""
    rows: dict[int, list[Row]] = defaultdict(list)
    maxima: dict[int, list[MaxRow]] = defaultdict(list)
    for key, value in buckets.items():
        p_text, start_text, queue, channel = key.split("|", 3)
        p = int(p_text)
        if p not in partitions:
            continue
        start = int(start_text)
        out = rows[p]
        for entry, total, count in value.sums:
            out.append((start, entry, queue, channel, total, count))
        for name, values in value.maxima.items():
            maxima[p].append((start, name, queue, channel, values[-1]))
    return rows, maxima
