"""Repeat-contact counts per window, kept up to date as customers change.

Repeat figures are distinct counts (a customer counts once per window), so they are
not bucket sums: the exporter used to re-derive them from every customer at each
scrape, a quarter of a loaded worker's scrape. Here a customer's contribution to a
window is taken away and added again whenever its contacts change or retention drops
it, and when a window's range moves only the customers with a contact opened in the
buckets entering or leaving it are looked at again (an index by opened bucket).

A customer's contribution is always ``repeat_contacts(its contacts, window range)``,
the very function the full recomputation (``ticketpulse report``) uses.
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

    def add(self, contacts: list[Contact], sign: int) -> None:
        for figure, queue, channel in repeat_contacts(contacts, self.first, self.stop):
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

    def index(self, customer_id: str, contacts: list[Contact], width: int, sign: int) -> None:
        for start in {bucket_start(c.opened_at, width) for c in contacts}:
            if sign > 0:
                self.opened.setdefault(start, set()).add(customer_id)
            else:
                held = self.opened.get(start)
                if held is not None:
                    held.discard(customer_id)
                    if not held:
                        del self.opened[start]


@dataclass
class RepeatTotals:
    """Listens to a ``CustomerProcessor``; ``read`` gives each window's repeat counts."""

    processor: CustomerProcessor
    windows: Mapping[str, float | None]
    tz: str
    fold: Callable[[str], str] = str  # queue -> exported label (cap, allow-list)
    parts: dict[int, PartitionRepeats] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
            return  # built from the table when first read
        for row, sign in ((old, -1), (new, 1)):
            if row is not None:
                contacts = contacts_before(row)
                part.index(customer_id, contacts, self.width, sign)
                for window in part.windows.values():
                    window.add(contacts, sign)

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
        for name, (first, stop) in self._ranges(end).items():
            window = part.windows[name]
            if (window.first, window.stop) != (first, stop):
                self._move(part, window, first, stop)
        return part.windows

    def build(self, ends: Mapping[int, float]) -> None:
        """Build the partitions of ``ends`` not built yet (the first read after a rebalance
        or a start), their index and every window, in one scan of the customers: a scan
        decodes every packed row, of every partition, to read its partition. One scan per
        partition for the index and one per window took ~2 s at the end of `make bench`."""
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
                part.index(customer_id, contacts, self.width, 1)
                for window in part.windows.values():
                    window.add(contacts, 1)
        self.parts.update(parts)

    def _ranges(self, end: float) -> dict[str, tuple[float, float]]:
        return {
            name: window_range(name, span, end, self.width, self.tz)
            for name, span in self.windows.items()
        }

    def _move(
        self, part: PartitionRepeats, window: RepeatWindow, first: float, stop: float
    ) -> None:
        """Only customers with a contact opened where the range changed can count anew."""
        old_first, old_stop = window.first, window.stop
        touched: set[str] = set()
        for start in self._starts_between(part, (old_first, first), (old_stop, stop)):
            touched |= part.opened.get(start, set())
        rows = [(cid, self.customers.get(cid)) for cid in touched]
        contacts = [contacts_before(row) for _, row in rows if row is not None]
        for each in contacts:
            window.add(each, -1)
        window.first, window.stop = first, stop
        for each in contacts:
            window.add(each, 1)

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
