"""Apply accepted events to the KPI tables, exactly once in effect under at-least-once delivery.

The tables are plain ``MutableMapping``s (Faust tables in the worker, dicts in tests
and ``ticketpulse report``); all values are JSON-able. Every key a record changes
remembers that record's offset, so a redelivered record changes nothing twice:

- ``tickets``  ticket_id -> {"p": partition, "o": last offset, "e": [[event..., offset], ...]}
- ``buckets``  "p|start|queue|channel" -> {"o": last offset, "v": {entry: [sum, count]}}
- ``open``     ticket_id -> [partition, queue, channel, opened_at, answered]
- ``meta``     "p" -> {"o": last offset, "h": [[offset, watermark bucket], ...]}

Lateness and the event-time clock use the partition's watermark rounded down to
a bucket; ``meta`` records the offset at which it moved, so a replayed record
sees the watermark it saw the first time.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import defaultdict
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.config import Settings
from streams.core.buckets import bucket_start, entries
from streams.core.events import TicketEvent
from streams.core.facts import DAY, Fact
from streams.core.now import OpenTicket, open_summary
from streams.core.policy import Policy
from streams.core.ticket import StoredTicket, step

FIELDS = tuple(f.name for f in dataclasses.fields(TicketEvent))
_TAGS = FIELDS.index("tags")
HISTORY = 500  # watermark moves remembered; far more than records between two commits


def encode_event(event: TicketEvent, offset: int) -> list[Any]:
    row: list[Any] = [getattr(event, name) for name in FIELDS]
    row[_TAGS] = list(event.tags)
    row.append(offset)
    return row


def decode_event(row: list[Any]) -> tuple[TicketEvent, int]:
    values = dict(zip(FIELDS, row[:-1], strict=True))
    values["tags"] = tuple(values["tags"] or ())
    return TicketEvent(**values), int(row[-1])


def decode_ticket(value: dict[str, Any] | None) -> StoredTicket | None:
    if value is None:
        return None
    return StoredTicket(tuple(decode_event(r) for r in value["e"]), int(value["o"]))


@dataclass
class Tables:
    tickets: MutableMapping[str, Any] = field(default_factory=dict)
    buckets: MutableMapping[str, Any] = field(default_factory=dict)
    open: MutableMapping[str, Any] = field(default_factory=dict)
    meta: MutableMapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KpiSettings:
    policy: Policy = field(default_factory=Policy)
    bucket_s: int = 60
    lateness_s: float = 600.0
    window_retention_s: float = DAY  # the longest window ("24h", "today")

    @classmethod
    def from_settings(cls, settings: Settings) -> KpiSettings:
        """Keep buckets for the longest configured window ("today" needs a full day)."""
        longest = max((span for span in settings.windows.values() if span), default=DAY)
        return cls(
            policy=settings.policy(),
            bucket_s=settings.bucket_seconds,
            lateness_s=settings.lateness_seconds,
            window_retention_s=max(longest, DAY),
        )

    @property
    def bucket_retention_s(self) -> float:
        return self.window_retention_s + self.lateness_s + self.bucket_s

    @property
    def ticket_retention_s(self) -> float:
        longest = max((*self.policy.recontact_days, self.policy.fcr_days)) * DAY
        return max(longest, self.window_retention_s) + self.lateness_s


def watermark_before(meta: dict[str, Any] | None, offset: int) -> float:
    """The partition's bucketed watermark just before the record at ``offset``."""
    wm = float("-inf")
    for at_offset, wmb in (meta or {}).get("h", []):
        if at_offset < offset:
            wm = wmb
    return wm


@dataclass
class KpiProcessor:
    tables: Tables
    settings: KpiSettings = field(default_factory=KpiSettings)
    high: dict[int, float] = field(default_factory=dict)  # exact watermark per partition
    # (entry, queue, channel) -> [sum, count] of facts added since start (cumulative counters)
    cumulative: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    _bucket_index: dict[int, dict[int, set[str]]] = field(default_factory=dict)
    _ticket_heap: dict[int, list[tuple[float, str]]] = field(default_factory=dict)

    # -- processing -----------------------------------------------------------
    def process(self, partition: int, offset: int, event: TicketEvent) -> str:
        """Apply one accepted event; returns "applied", "duplicate" or "late"."""
        s = self.settings
        meta = self.tables.meta.get(str(partition))
        wmb = watermark_before(meta, offset)
        raw = self.tables.tickets.get(event.ticket_id)
        stored = decode_ticket(raw)
        result = step(
            stored, event, offset, watermark=wmb, lateness_s=s.lateness_s, policy=s.policy
        )
        if result.outcome != "applied":
            at = wmb if wmb > float("-inf") else event.occurred_at
            mark = Fact(at, f"{result.outcome}_events", event.queue, event.channel)
            self._write_buckets(partition, offset, [], [mark], wmb)
        else:
            self._write_buckets(partition, offset, result.retract, result.add, wmb)
            self._count(result.add)
            if result.ticket is not None:
                self._store_ticket(partition, event.ticket_id, result.ticket, raw, event, offset)
                self._update_open(partition, event.ticket_id, result.ticket)
        if result.outcome != "late":
            self._advance(partition, offset, event.occurred_at, meta)
        return result.outcome

    def _write_buckets(
        self,
        partition: int,
        offset: int,
        retract: tuple[Fact, ...] | list[Fact],
        add: tuple[Fact, ...] | list[Fact],
        wmb: float,
    ) -> None:
        s = self.settings
        horizon = wmb - s.bucket_retention_s
        changes: dict[str, dict[str, list[float]]] = defaultdict(dict)
        bounds = s.policy.bounds()
        for sign, facts in ((-1, retract), (1, add)):
            for f in facts:
                start = bucket_start(f.at, s.bucket_s)
                if start < horizon:
                    continue  # outside every window and already expired: never resurrect it
                key = f"{partition}|{start}|{f.queue}|{f.channel}"
                for name, value in entries(f, bounds):
                    acc = changes[key].setdefault(name, [0.0, 0])
                    acc[0] += sign * value
                    acc[1] += sign
        for key, delta in changes.items():
            current = self.tables.buckets.get(key) or {"o": -1, "v": {}}
            if current["o"] >= offset:
                continue  # this record already reached this key before a crash or rebalance
            values = dict(current["v"])
            for name, (total, count) in delta.items():
                old_total, old_count = values.get(name, (0.0, 0))
                if old_count + count == 0:
                    values.pop(name, None)
                else:
                    values[name] = [old_total + total, old_count + count]
            self.tables.buckets[key] = {"o": offset, "v": values}
            start = int(key.split("|", 2)[1])
            self._bucket_keys(partition).setdefault(start, set()).add(key)

    def _count(self, facts: tuple[Fact, ...]) -> None:
        bounds = self.settings.policy.bounds()
        for f in facts:
            for name, value in entries(f, bounds):
                acc = self.cumulative.setdefault((name, f.queue, f.channel), [0.0, 0])
                acc[0] += value
                acc[1] += 1

    def _store_ticket(
        self,
        partition: int,
        ticket_id: str,
        ticket: StoredTicket,
        raw: dict[str, Any] | None,
        event: TicketEvent,
        offset: int,
    ) -> None:
        rows = [*(raw["e"] if raw is not None else []), encode_event(event, offset)]
        self.tables.tickets[ticket_id] = {"p": partition, "o": ticket.last_offset, "e": rows}
        last = max(e.occurred_at for e, _ in ticket.events)
        heapq.heappush(self._tickets(partition), (last, ticket_id))

    def _update_open(self, partition: int, ticket_id: str, ticket: StoredTicket) -> None:
        summary = open_summary(e for e, _ in ticket.events)
        current = self.tables.open.get(ticket_id)
        if summary is None:
            if current is not None:
                del self.tables.open[ticket_id]
            return
        value = [partition, summary.queue, summary.channel, summary.opened_at, summary.answered]
        if current != value:
            self.tables.open[ticket_id] = value

    def _advance(self, partition: int, offset: int, at: float, meta: dict[str, Any] | None) -> None:
        history = list((meta or {}).get("h", []))
        last_wmb = history[-1][1] if history else float("-inf")
        high = max(self.high.get(partition, last_wmb), at)
        self.high[partition] = high
        new_wmb = bucket_start(high, self.settings.bucket_s)
        if new_wmb <= last_wmb or (meta is not None and meta["o"] >= offset):
            return
        history.append([offset, new_wmb])
        self.tables.meta[str(partition)] = {"o": offset, "h": history[-HISTORY:]}
        self._expire(partition, new_wmb)

    # -- retention, in event time --------------------------------------------
    def _bucket_keys(self, partition: int) -> dict[int, set[str]]:
        index = self._bucket_index.get(partition)
        if index is None:
            index = {}
            prefix = f"{partition}|"
            for key in list(self.tables.buckets.keys()):
                if key.startswith(prefix):
                    index.setdefault(int(key.split("|", 2)[1]), set()).add(key)
            self._bucket_index[partition] = index
        return index

    def _tickets(self, partition: int) -> list[tuple[float, str]]:
        heap = self._ticket_heap.get(partition)
        if heap is None:
            heap = []
            for ticket_id, value in list(self.tables.tickets.items()):
                if value["p"] == partition:
                    last = max(float(row[FIELDS.index("occurred_at")]) for row in value["e"])
                    heap.append((last, ticket_id))
            heapq.heapify(heap)
            self._ticket_heap[partition] = heap
        return heap

    def _expire(self, partition: int, wmb: float) -> None:
        """Drop buckets and closed tickets that no window or correction can reach again."""
        index = self._bucket_keys(partition)
        horizon = wmb - self.settings.bucket_retention_s
        for start in [s for s in index if s < horizon]:
            for key in index.pop(start):
                self.tables.buckets.pop(key, None)
        heap = self._tickets(partition)
        cutoff = wmb - self.settings.ticket_retention_s
        while heap and heap[0][0] < cutoff:
            last, ticket_id = heapq.heappop(heap)
            value = self.tables.tickets.get(ticket_id)
            if value is None or ticket_id in self.tables.open:
                continue  # gone already, or still open: backlog is kept
            newest = max(float(row[FIELDS.index("occurred_at")]) for row in value["e"])
            if newest <= last:
                del self.tables.tickets[ticket_id]

    def forget_partition(self, partition: int) -> None:
        """Drop in-memory indexes when a partition is revoked (tables are Faust's business)."""
        self._bucket_index.pop(partition, None)
        self._ticket_heap.pop(partition, None)
        self.high.pop(partition, None)


def bucket_rows(
    buckets: MutableMapping[str, Any], partitions: set[int]
) -> dict[int, list[tuple[int, str, str, str, float, int]]]:
    """Table contents as (start, entry, queue, channel, sum, count) rows per owned partition."""
    rows: dict[int, list[tuple[int, str, str, str, float, int]]] = defaultdict(list)
    for key, value in list(buckets.items()):
        p_text, start, queue, channel = key.split("|", 3)
        p = int(p_text)
        if p in partitions:
            out = rows[p]
            for entry, (total, count) in value["v"].items():
                out.append((int(start), entry, queue, channel, float(total), int(count)))
    return rows


def open_rows(
    open_table: MutableMapping[str, Any], partitions: set[int]
) -> Iterator[tuple[int, OpenTicket]]:
    for value in list(open_table.values()):
        p, queue, channel, opened_at, answered = value
        if p in partitions:
            yield p, OpenTicket(queue, channel, float(opened_at), bool(answered))


def event_clock(meta: MutableMapping[str, Any], partition: int) -> float | None:
    """The partition's bucketed watermark: where event-clock windows end."""
    value = meta.get(str(partition))
    if not value or not value["h"]:
        return None
    return float(value["h"][-1][1])
