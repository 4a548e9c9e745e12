"""Repeat-contact counts per window, kept up to date as customers change.

Repeat figures are distinct counts (a customer counts once per window), so they are
not bucket sums: the exporter used to re-derive them from every customer at each
scrape, a quarter of a loaded worker's scrape. Here a customer's contribution to a
window is counted anew whenever a change of its contacts or retention alters it, and when a
window's range moves only the customers with a contact opened in the buckets entering or
leaving it are looked at again (an index by opened bucket).

A customer's contribution is always ``repeat_contacts(its contacts, window range)``,
the very function the full recomputation (``ticketpulse report``) uses. Most changes
leave it as it was (a contact resolved, a customer's only contact): the window is then
left alone, and the index changes only where a contact left or entered a bucket. Taking
every change away and adding it again cost 7 % of the core's time with the totals kept
live; 3 % now (2026-12-05, scratch profiles over the bench's log). Windows that move at one
read share the customers they touch: each is read once, and one with a single contact is
passed by. Sliding the four windows from the log's first batch to its end (a scrape after a
replay) took 626 ms when each window read every customer; 118-145 ms now (one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.core.buckets import bucket_start
from streams.core.contacts import Contact, repeat_contacts
from streams.core.windows import window_range
from streams.processing.customers import CustomerProcessor, contacts_before
from streams.processing.stored_rows import CustomerRow

RepeatKey = tuple[str, str, str]  # (figure, queue, channel)


@dataclass
class RepeatWindow:
    first: float  # [first, stop): the event-time range of the window's buckets
    stop: float
    fold: Callable[[str], str] = str  # queue -> exported label (kept per label)
    counts: dict[RepeatKey, int] = field(default_factory=dict)

    def add(self, contacts: list[Contact]) -> None:
        """A customer read by a build: what it adds to this window, counted."""
        self._count(repeat_contacts(contacts, self.first, self.stop), 1)

    def replace(self, before: list[Contact], after: list[Contact]) -> None:
        """A customer's contacts changed from ``before`` to ``after``: counted anew only
        when what it contributes to this window changed (most changes leave it as it was)."""
        old = repeat_contacts(before, self.first, self.stop) if len(before) > 1 else []
        new = repeat_contacts(after, self.first, self.stop) if len(after) > 1 else []
        self._recount(old, new)

    def move(self, customers: list[list[Contact]], first: float, stop: float) -> None:
        """The range becomes [first, stop): each of ``customers`` (every one with a contact
        opened where it changed) counted anew where what it adds changed."""
        before = [repeat_contacts(contacts, self.first, self.stop) for contacts in customers]
        self.first, self.stop = first, stop
        for old, contacts in zip(before, customers, strict=True):
            self._recount(old, repeat_contacts(contacts, first, stop))

    def _recount(self, old: list[tuple[str, str, str]], new: list[tuple[str, str, str]]) -> None:
        if old != new:
            self._count(old, -1)
            self._count(new, 1)

    def _count(self, repeats: list[tuple[str, str, str]], sign: int) -> None:
        for figure, queue, channel in repeats:
            key = (figure, self.fold(queue), channel)
            n = self.counts.get(key, 0) + sign
            if n:
                self.counts[key] = n
            else:
                del self.counts[key]


@dataclass
class PartitionRepeats:
    windows: dict[str, RepeatWindow] = field(default_factory=dict)
    opened: dict[int, set[str]] = field(default_factory=dict)  # bucket start -> customers

    def index(self, customer_id: str, contacts: list[Contact], width: int) -> None:
        for start in _starts(contacts, width):
            self.opened.setdefault(start, set()).add(customer_id)

    def reindex(
        self, customer_id: str, before: list[Contact], after: list[Contact], width: int
    ) -> None:
        """Only the buckets the customer's contacts left or entered change."""
        old, new = _starts(before, width), _starts(after, width)
        for start in old - new:
            held = self.opened.get(start)
            if held is not None:
                held.discard(customer_id)
                if not held:
                    del self.opened[start]
        for start in new - old:
            self.opened.setdefault(start, set()).add(customer_id)


def _starts(contacts: list[Contact], width: int) -> set[int]:
    """The buckets the contacts were opened in."""
    return {bucket_start(c.opened_at, width) for c in contacts}


@dataclass
class RepeatTotals:
    """Listens to a ``CustomerProcessor``; ``read`` gives each window's repeat counts."""

    processor: CustomerProcessor
    windows: Mapping[str, float | None]
    tz: str
    fold: Callable[[str], str] = str  # queue -> exported label (cap, allow-list)
    parts: dict[int, PartitionRepeats] = field(default_factory=dict)
    listen: bool = True  # False: counted when read and never kept up to date (a self-check)

    def __post_init__(self) -> None:
        if self.listen:
            self.processor.listeners.append(self)

    @property
    def width(self) -> int:
        return self.processor.settings.bucket_s

    @property
    def customers(self) -> MutableMapping[str, Any]:
        return self.processor.tables.customers

    # -- notifications -----------------------------------------------------------
    def changed(
        self, partition: int, customer_id: str, old: CustomerRow | None, new: CustomerRow | None
    ) -> None:
        part = self.parts.get(partition)
        if part is None:
            return  # built from the table by the warm-up, or by the first read
        before, after = contacts_before(old), contacts_before(new)
        part.reindex(customer_id, before, after, self.width)
        if len(before) < 2 and len(after) < 2:
            return  # a customer with fewer than two contacts repeats in no window
        for window in part.windows.values():
            window.replace(before, after)

    def forget(self, partition: int) -> None:
        self.parts.pop(partition, None)

    def forget_all(self) -> None:
        self.parts.clear()

    # -- reading -------------------------------------------------------------------
    def read(self, partition: int, end: float) -> dict[str, RepeatWindow]:
        if partition not in self.parts:
            self.build({partition: end})  # its windows are built at these very ranges
            return self.parts[partition].windows
        part = self.parts[partition]
        moves = {
            name: edges
            for name, edges in self._ranges(end).items()
            if (part.windows[name].first, part.windows[name].stop) != edges
        }
        if moves:
            self._move(part, moves)
        return part.windows

    def build(self, ends: Mapping[int, float]) -> None:
        """Build the partitions of ``ends`` not built yet (by the warm-up after a rebalance or
        a start, or by the first read if it comes first), their index and every window, in
        one scan of the customers: a scan decodes every packed row, of every partition, to
        read its partition. One scan per partition for the index and one per window took
        ~2 s at the end of `make bench`."""
        parts = {
            p: PartitionRepeats(
                {name: RepeatWindow(*edges, self.fold) for name, edges in self._ranges(end).items()}
            )
            for p, end in ends.items()
            if p not in self.parts
        }
        if not parts:
            return
        for customer_id, row in self.customers.items():  # a packed table: one row at a time
            part = parts.get(row.partition)
            if part is not None:
                contacts = contacts_before(row)
                part.index(customer_id, contacts, self.width)
                if len(contacts) > 1:  # one contact repeats in no window
                    for window in part.windows.values():
                        window.add(contacts)
        self.parts.update(parts)

    def _ranges(self, end: float) -> dict[str, tuple[float, float]]:
        return {
            name: window_range(name, span, end, self.width, self.tz)
            for name, span in self.windows.items()
        }

    def _move(self, part: PartitionRepeats, moves: dict[str, tuple[float, float]]) -> None:
        """Only customers with a contact opened where a window's range changed can count
        anew there: each is read once however many windows moved, and one with a single
        contact counts in none (a long jump, as after a replay, read every customer once per
        window)."""
        touched: dict[str, set[str]] = {}
        for name, (first, stop) in moves.items():
            window = part.windows[name]
            touched[name] = set()
            for start in self._starts_between(part, (window.first, first), (window.stop, stop)):
                touched[name] |= part.opened.get(start, set())
        rows = {cid: self.customers.get(cid) for cid in set().union(*touched.values())}
        contacts = {cid: contacts_before(row) for cid, row in rows.items() if row is not None}
        repeating = {cid: each for cid, each in contacts.items() if len(each) > 1}
        for name, (first, stop) in moves.items():
            mine = [repeating[cid] for cid in touched[name] if cid in repeating]
            part.windows[name].move(mine, first, stop)

    def _starts_between(self, part: PartitionRepeats, *edges: tuple[float, float]) -> Iterable[int]:
        width = self.width
        steps = sum(abs(b - a) for a, b in edges) // width
        if steps >= len(part.opened):
            return list(part.opened)
        starts: set[int] = set()
        for a, b in edges:
            low, high = int(min(a, b)), int(max(a, b))
            starts.update(range(bucket_start(low, width), high, width))
        return starts
