"""Apply accepted events to the KPI tables, exactly once in effect under at-least-once delivery.

The tables are plain ``MutableMapping``s (Faust tables in the worker, dicts in tests
and ``ticketpulse report``); all values are JSON-able. Every key a record changes
remembers that record's offset, so a redelivered record changes nothing twice:

- ``tickets``  ticket_id -> {"p": partition, "o": last offset, "e": [[event..., offset], ...]}
- ``open``     ticket_id -> [partition, queue, channel, opened_at, answered]
- ``buckets`` and ``meta``: see ``streams.bucket_store``.

Lateness and the event-time clock use the partition's watermark rounded down to
a bucket. A change to what the customer side needs of a ticket (its ``Contact``)
is returned to the caller, which forwards it keyed by customer (``streams.customers``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.bucket_store import BucketStore, Watermarks
from streams.config import Settings
from streams.core.buckets import entries
from streams.core.contacts import Contact
from streams.core.events import TicketEvent
from streams.core.facts import DAY, Fact
from streams.core.now import OpenTicket, open_summary
from streams.core.policy import Policy
from streams.core.ticket import Outcome, StoredTicket, step
from streams.retention import ExpiryHeap

FIELDS = tuple(f.name for f in dataclasses.fields(TicketEvent))
_TAGS = FIELDS.index("tags")
_AT = FIELDS.index("occurred_at")


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
    def recontact_s(self) -> float:
        return max((*self.policy.recontact_days, self.policy.fcr_days)) * DAY

    @property
    def ticket_retention_s(self) -> float:
        return max(self.recontact_s, self.window_retention_s) + self.lateness_s

    def bucket_store(self, buckets: MutableMapping[str, Any]) -> BucketStore:
        return BucketStore(buckets, self.bucket_s, self.policy.bounds(), self.bucket_retention_s)


@dataclass(frozen=True, slots=True)
class Processed:
    outcome: Outcome
    contact: tuple[str, Contact] | None = None  # forward to the customer side when set


@dataclass
class KpiProcessor:
    tables: Tables
    settings: KpiSettings = field(default_factory=KpiSettings)
    # (entry, queue, channel) -> [sum, count] of facts added since start (cumulative counters)
    cumulative: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = self.settings.bucket_store(self.tables.buckets)
        self.clock = Watermarks(self.tables.meta, self.settings.bucket_s)
        # closed tickets go once no window or correction can reach them; open ones stay
        self.retention = ExpiryHeap(
            self.tables.tickets, _newest_event, keep=lambda ticket_id: ticket_id in self.tables.open
        )

    # -- processing -----------------------------------------------------------
    def process(self, partition: int, offset: int, event: TicketEvent) -> Processed:
        """Apply one accepted event: "applied", "duplicate" or "late", and any contact change."""
        s = self.settings
        wmb = self.clock.before(partition, offset)
        raw = self.tables.tickets.get(event.ticket_id)
        result = step(
            decode_ticket(raw),
            event,
            offset,
            watermark=wmb,
            lateness_s=s.lateness_s,
            policy=s.policy,
        )
        current = self.clock.current(partition)  # == wmb unless this record is a replay
        if result.outcome != "applied":
            at = wmb if wmb > float("-inf") else event.occurred_at
            mark = Fact(at, f"{result.outcome}_events", event.queue, event.channel)
            self.store.write(partition, offset, [], [mark], current)
            contact = None
        elif raw is None and event.occurred_at < current - s.ticket_retention_s:
            # a replayed record of a ticket that retention dropped since: leave it dropped
            # (its facts lie in expired buckets too; a new record this old would be late)
            contact = None
        else:
            self.store.write(partition, offset, result.retract, result.add, current)
            self._count(result.add)
            contact = result.contact
            if result.ticket is not None:
                self._store_ticket(partition, event.ticket_id, result.ticket, raw, event, offset)
                self._update_open(partition, event.ticket_id, result.ticket)
        if result.outcome != "late":
            moved = self.clock.advance(partition, offset, event.occurred_at)
            if moved is not None:
                self._expire(partition, moved)
        return Processed(result.outcome, contact)

    def _count(self, facts: tuple[Fact, ...]) -> None:
        bounds = self.store.bounds
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
        self.retention.push(partition, max(e.occurred_at for e, _ in ticket.events), ticket_id)

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

    # -- retention, in event time --------------------------------------------
    def _expire(self, partition: int, wmb: float) -> None:
        """Drop buckets and closed tickets that no window or correction can reach again."""
        self.store.expire(partition, wmb)
        self.retention.expire(partition, wmb - self.settings.ticket_retention_s)

    def forget_partition(self, partition: int) -> None:
        """Drop in-memory indexes when a partition is revoked (tables are Faust's business)."""
        self.store.forget(partition)
        self.retention.forget(partition)
        self.clock.forget(partition)


def _newest_event(value: dict[str, Any]) -> float:
    return max(float(row[_AT]) for row in value["e"])


def open_rows(
    open_table: MutableMapping[str, Any], partitions: set[int]
) -> Iterator[tuple[int, OpenTicket]]:
    for value in list(open_table.values()):
        p, queue, channel, opened_at, answered = value
        if p in partitions:
            yield p, OpenTicket(queue, channel, float(opened_at), bool(answered))
