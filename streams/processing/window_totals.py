"""Each window's totals kept up to date as buckets are written, so a scrape is O(series).

Re-summing every bucket of every window at each scrape cost about a second on a loaded
worker. Instead a ``WindowTotals`` listens to its ``BucketStore``: a written bucket
changes the totals of the windows whose range holds it, an expired one leaves them,
and when a window's end moves (the clock passed a bucket boundary) only the buckets
entering or leaving its range are added or taken away.

Sums are kept as exact integers (each stored bucket sum in units of 2**-64 s), so
adding a bucket and taking it away later leaves exactly nothing: no rounding drifts
in over months of sliding. A maximum cannot be taken away, so a window's maximum that
loses its top bucket is recomputed from that one series' buckets when next read; each
exported label's maximum (the largest of its queues') is kept too, and recomputed from its
queues' maxima only when the bucket that held it leaves, so a scrape reads one maximum per
label however many queue names the label holds (row 11 of docs/reliability.md).

Each window's sums over every partition held are kept too, changed with the partitions'
own (``merged``): a scrape reads those once instead of adding up eight partitions' sums
(a third of a steady scrape's time), less any partition held but not read, plus any
read and forgotten since (``add_into``).

The result equals the full recomputation (``streams.core.windows.window_sums`` over
``bucket_contents``), which ``ticketpulse report`` still does: a Hypothesis property
checks the two agree under any order of writes, expiries and clock moves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from streams.core.buckets import Entry, accumulate, bucket_start
from streams.core.windows import Sums, first_bucket
from streams.processing.bucket_store import BucketStore, EntryChange
from streams.processing.stored_rows import BucketRow

SCALE = 2.0**64  # exact-integer unit of the sums: 2**-64 of a second (of a value)

Key = tuple[Entry, str, str]  # (entry, queue, channel)
MaxKey = tuple[str, str, str]  # (figure, queue, channel)


def exact(value: float) -> int:
    """A bucket sum as an integer number of 2**-64 units (a power-of-two scale is exact)."""
    return int(value * SCALE)


@dataclass
class WindowState:
    """One window of one partition: its bucket range and what the buckets in it hold."""

    first: int  # oldest bucket start inside (inclusive)
    last: int  # newest bucket start inside (inclusive)
    sums: dict[Key, list[int]] = field(default_factory=dict)  # [exact sum, count]
    maxima: dict[MaxKey, float] = field(default_factory=dict)
    stale: set[MaxKey] = field(default_factory=set)  # maxima whose top bucket left
    # per (figure, queue label, channel): the largest of its queues' maxima, the keys of
    # those queues, and the labels whose top bucket left (recomputed when next read)
    label_maxima: dict[MaxKey, float] = field(default_factory=dict)
    members: dict[MaxKey, set[MaxKey]] = field(default_factory=dict)
    dirty: set[MaxKey] = field(default_factory=set)
    # the same window's sums over every partition held (``WindowTotals.merged``)
    merged: dict[Key, list[int]] = field(default_factory=dict)

    def holds(self, start: int) -> bool:
        return self.first <= start <= self.last

    def add_sums(self, pairs: Sequence[tuple[Key, tuple[int, int]]], sign: int = 1) -> None:
        add_signed(self.sums, pairs, sign)
        add_signed(self.merged, pairs, sign)

    def raise_max(self, key: MaxKey, label: MaxKey, value: float) -> None:
        """A bucket inside holds ``value`` for series ``key`` (exported as ``label``)."""
        held = self.maxima.get(key)
        if held is None:
            self.members.setdefault(label, set()).add(key)
        if key not in self.stale and (held is None or value > held):
            self.maxima[key] = value
        # any value inside bounds the label's maximum from below, its series stale or not
        if label not in self.dirty and value > self.label_maxima.get(label, float("-inf")):
            self.label_maxima[label] = value

    def lower_max(self, key: MaxKey, label: MaxKey, value: float) -> None:
        """A bucket whose maximum was ``value`` left or shrank: the window's may be lower."""
        if self.maxima.get(key) == value:
            self.stale.add(key)
        if self.label_maxima.get(label) == value:  # else another bucket holds the label's
            self.dirty.add(label)

    def relabel_maxima(self) -> None:
        """Each dirty label's maximum from its queues' (their own recomputed already)."""
        for label in self.dirty:
            keys = {key for key in self.members.get(label, ()) if key in self.maxima}
            if keys:
                self.members[label] = keys
                self.label_maxima[label] = max(self.maxima[key] for key in keys)
            else:
                self.members.pop(label, None)
                self.label_maxima.pop(label, None)
        self.dirty.clear()


def add_signed(
    sums: dict[Key, list[int]], pairs: Iterable[tuple[Key, Sequence[int]]], sign: int
) -> None:
    """Add ``sign`` (1 or -1) times each (key, (exact sum, count)) into ``sums``' [exact sum,
    count]; a key whose count falls to 0 is left out (counts of stored buckets are positive:
    nothing of it is inside any more). The one rule of every sum here that can go down, a
    scrape's hottest loop included (``WindowTotals.add_into``). Filling a new window, and
    adding its sums to ``merged``, adds positive counts only: ``accumulate`` does that."""
    for key, (total, count) in pairs:
        acc = sums.get(key)
        if acc is None:
            if count:
                sums[key] = [sign * total, sign * count]
            continue
        acc[0] += sign * total
        acc[1] += sign * count
        if acc[1] == 0:
            del sums[key]


class Labels(NamedTuple):
    """How a queue and an agent are exported (``WindowTotals.fold`` and ``fold_agent``)."""

    queue: Callable[[str], str]
    agent: Callable[[str], str]


@dataclass
class WindowTotals:
    """The live totals of every window of every partition one ``BucketStore`` holds."""

    store: BucketStore
    windows: Mapping[str, float | None]
    tz: str
    # the exported queue label of a queue (cap, allow-list): sums are kept per label, so a
    # scrape costs O(exported series) however many queue names arrive; maxima stay per queue
    fold: Callable[[str], str] = str
    # the same for the agent of a per-agent twin (its label: cap, allow-list, pseudonym)
    fold_agent: Callable[[str], str] = str
    parts: dict[int, dict[str, WindowState]] = field(default_factory=dict)
    # per window, its sums over every partition in ``parts``, kept as they change: a scrape
    # reads these once instead of merging every partition's (8x fewer steps on 8 partitions)
    merged: dict[str, dict[Key, list[int]]] = field(default_factory=dict)
    listen: bool = True  # False: built when read and never kept up to date (a self-check)
    labels: Labels = field(init=False)

    def __post_init__(self) -> None:
        self.labels = Labels(self.fold, self.fold_agent)  # both, for the row helpers below
        if self.listen:
            self.store.listeners.append(self)

    # -- notifications from the store ------------------------------------------
    def changed(
        self,
        partition: int,
        cell: tuple[int, str, str],
        sums: Iterable[EntryChange],
        maxima: tuple[dict[str, tuple[float, ...]], dict[str, tuple[float, ...]]],
    ) -> None:
        """A bucket was written: ``sums`` its changed entries, ``maxima`` (old, new)."""
        states = self.parts.get(partition)
        if states is None:
            return  # built from the table when first read
        start, queue, channel = cell
        inside = [w for w in states.values() if w.holds(start)]
        if not inside:
            return
        label, agent = self.fold(queue), self.fold_agent
        pairs = [
            (
                (labelled(entry, agent) if entry.agent else entry, label, channel),
                (exact(new_sum) - exact(old_sum), new_count - old_count),
            )
            for entry, old_sum, old_count, new_sum, new_count in sums
        ]
        for w in inside:
            w.add_sums(pairs)
        old, new = maxima
        for figure in old.keys() | new.keys():
            key, label_key = (figure, queue, channel), (figure, label, channel)
            before, after = old.get(figure), new.get(figure)
            for w in inside:
                if before and (not after or after[-1] < before[-1]):
                    w.lower_max(key, label_key, before[-1])
                if after:
                    w.raise_max(key, label_key, after[-1])

    def removed(self, partition: int, start: int, key: str, row: BucketRow) -> None:
        """A bucket expired."""
        for w in self.parts.get(partition, {}).values():
            if w.holds(start):
                _apply(w, key, row, -1, self.labels)

    def forget(self, partition: int) -> None:
        for state in self.parts.pop(partition, {}).values():
            add_signed(state.merged, state.sums.items(), -1)

    def forget_all(self) -> None:
        self.parts.clear()
        self.merged.clear()

    # -- reading ---------------------------------------------------------------
    def read(self, partition: int, end: float) -> dict[str, WindowState]:
        """Every window of ``partition`` ending at ``end``, its maxima up to date."""
        states = self.parts.setdefault(partition, {})
        width = self.store.bucket_s
        last = bucket_start(end, width)
        new: dict[str, WindowState] = {}
        for name, span in self.windows.items():
            first = first_bucket(name, span, end, width, self.tz)
            state = states.get(name)
            if state is None:
                merged = self.merged.setdefault(name, {})
                new[name] = WindowState(first, last, merged=merged)
            elif (state.first, state.last) != (first, last):
                self._move(partition, state, first, last)
        if new:
            self._fill(partition, list(new.values()))
            states.update(new)  # held, and in the running sums, only once filled
            for state in new.values():
                accumulate(state.merged, state.sums.items())
        for state in states.values():
            if state.stale:
                self._recompute_maxima(partition, state)
            if state.dirty:
                state.relabel_maxima()
        return states

    def add_into(
        self, sums: dict[Key, list[int]], name: str, read: Mapping[int, dict[str, WindowState]]
    ) -> None:
        """Add window ``name``'s sums over the partitions ``read`` (each with the states
        ``read()`` returned) into ``sums``: the running sums over every partition held, less
        those held but not read (its clock is unknown), plus those read and no longer held
        (forgotten by a rebalance since): one step per series, not per series and partition."""
        signed = [(1, self.merged.get(name, {}))]
        for p, states in self.parts.items():
            if read.get(p) is not states and name in states:
                signed.append((-1, states[name].sums))
        for p, states in read.items():
            if self.parts.get(p) is not states and name in states:
                signed.append((1, states[name].sums))
        for sign, source in signed:
            add_signed(sums, source.items(), sign)

    def _fill(self, partition: int, states: list[WindowState]) -> None:
        """Add every bucket inside the new windows' ranges to their own sums: one pass over
        the partition's buckets, each decoded and converted once however many windows hold
        it (a rebalance's first scrape did both once per window)."""
        index = self.store.keys(partition)
        buckets = self.store.buckets
        for start, keys in index.items():
            inside = [state for state in states if state.holds(start)]
            if not inside:
                continue
            for key in keys:
                row = buckets.get(key)
                if row is not None:
                    _fill_row(inside, key, row, self.labels)

    def _move(self, partition: int, state: WindowState, first: int, last: int) -> None:
        """Add the buckets entering the range, take away those leaving it."""
        index = self.store.keys(partition)
        width = self.store.bucket_s
        starts: Iterable[int]
        span = abs(first - state.first) + abs(last - state.last)
        if span // width < len(index):
            starts = {
                *range(min(first, state.first), max(first, state.first), width),
                *range(min(last, state.last) + width, max(last, state.last) + width, width),
            }
        else:
            starts = list(index)
        entering: list[int] = []
        leaving: list[int] = []
        for start in starts:
            was, now = state.holds(start), first <= start <= last
            if was != now:
                (entering if now else leaving).append(start)
        buckets = self.store.buckets
        for sign, chosen in ((-1, leaving), (1, entering)):
            for start in chosen:
                for key in index.get(start, ()):
                    row = buckets.get(key)
                    if row is not None:
                        _apply(state, key, row, sign, self.labels)
        state.first, state.last = first, last

    def _recompute_maxima(self, partition: int, state: WindowState) -> None:
        index = self.store.keys(partition)
        buckets = self.store.buckets
        for figure, queue, channel in state.stale:
            values = [
                row.maxima[figure][-1]
                for start in range(state.first, state.last + 1, self.store.bucket_s)
                if start in index
                for row in (buckets.get(f"{partition}|{start}|{queue}|{channel}"),)
                if row is not None and figure in row.maxima
            ]
            if values:
                state.maxima[(figure, queue, channel)] = max(values)
            else:  # none of its buckets is inside any more: nor is it among its label's
                state.maxima.pop((figure, queue, channel), None)
                members = state.members.get((figure, self.fold(queue), channel))
                if members is not None:
                    members.discard((figure, queue, channel))
        state.stale.clear()


def _apply(state: WindowState, key: str, row: BucketRow, sign: int, labels: Labels) -> None:
    """Add (``sign`` 1) or take away (-1) one stored bucket."""
    sums, tops = _series_of(key, row, labels)
    state.add_sums(sums, sign)
    for mkey, label_key, top in tops:
        if sign > 0:
            state.raise_max(mkey, label_key, top)
        else:
            state.lower_max(mkey, label_key, top)


def _fill_row(states: list[WindowState], key: str, row: BucketRow, labels: Labels) -> None:
    """Add one stored bucket to new windows' own sums (their counts only grow, as stored
    counts are positive; ``read`` adds the sums to the running ones once filled)."""
    sums, tops = _series_of(key, row, labels)
    for state in states:
        accumulate(state.sums, sums)
        for mkey, label_key, top in tops:
            state.raise_max(mkey, label_key, top)


def _series_of(
    key: str, row: BucketRow, labels: Labels
) -> tuple[list[tuple[Key, tuple[int, int]]], list[tuple[MaxKey, MaxKey, float]]]:
    """One stored bucket as its series: ((entry, queue label, channel), (exact sum, count))
    for each entry (an agent's twin under its agent's label), and ((figure, queue, channel),
    (figure, queue label, channel), top) for each maximum."""
    _, _, queue, channel = key.split("|", 3)
    label = labels.queue(queue)
    sums = [
        (
            (labelled(entry, labels.agent) if entry.agent else entry, label, channel),
            (exact(total), count),
        )
        for entry, total, count in row.sums
    ]
    tops = [
        ((figure, queue, channel), (figure, label, channel), values[-1])
        for figure, values in row.maxima.items()
    ]
    return sums, tops


def labelled(entry: Entry, agent: Callable[[str], str]) -> Entry:
    """A per-agent twin's entry as exported: its agent as its label (the cap, the
    allow-list, a pseudonym), so agents folded into ``other`` are summed as they are
    written, not at each scrape. Callers pass entries without an agent by (a call per
    entry written costs every record)."""
    return Entry(entry.figure, entry.days, agent(entry.agent), entry.le)


def as_sums(state: WindowState) -> Sums:
    """The window's totals in the exporter's form: (entry, queue, channel) -> (sum, count)."""
    return {key: (total / SCALE, count) for key, (total, count) in state.sums.items()}
