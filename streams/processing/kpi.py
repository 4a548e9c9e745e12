"""Apply accepted events to the KPI tables, exactly once in effect under at-least-once delivery.

The tables are plain ``MutableMapping``s (Faust tables behind a write-back cache in
the worker, dicts in tests and ``ticketpulse report``). Every key a record changes
remembers that record's offset, so a redelivered record changes nothing twice:

- ``tickets``  ticket_id -> ``TicketRecord`` (stored as a ``TicketRow``: partition, last
               offset, and each event with its offset; ``streams.processing.stored_rows``),
               or ``ShelvedTicket`` / ``PackedTicket`` once closed and quiet
               (``streams.processing.held_tickets``)
- ``buckets`` and ``meta``: see ``streams.processing.bucket_store``.

Whether a ticket is open, and its facts, are functions of its events: the record
carries both in memory (never stored), so an event computes the facts of the new event
set only, and the Now gauges read the open tickets kept by series as they are stored
(``streams.processing.open_tickets``).

Lateness and the event-time clock use the partition's watermark rounded down to
a bucket. A change to what the customer side needs of a ticket (its ``Contact``)
is returned to the caller, which forwards it keyed by customer (``streams.processing.customers``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import msgspec

from streams.core.buckets import Entry, entries
from streams.core.contacts import Contact
from streams.core.events import TicketEvent
from streams.core.facts import Fact
from streams.core.now import NowFigures, OpenTicket, now_figures
from streams.core.policy import Policy
from streams.core.ticket import Outcome, step
from streams.processing.bucket_store import Watermarks
from streams.processing.held_tickets import HeldCounts, TicketRecord, packing, unpacked
from streams.processing.open_tickets import OpenTickets
from streams.processing.retention import ExpiryHeap
from streams.processing.settings import KpiSettings

TABLES = ("tickets", "buckets", "meta")


@dataclass
class Tables:
    tickets: MutableMapping[str, Any] = field(default_factory=dict)
    buckets: MutableMapping[str, Any] = field(default_factory=dict)
    meta: MutableMapping[str, Any] = field(default_factory=dict)


class Processed(msgspec.Struct, frozen=True, gc=False):
    """One record's result for the worker (a msgspec struct, built in C: one per record)."""

    outcome: Outcome
    contact: tuple[str, Contact] | None = None  # forward to the customer side when set
    watermark: float | None = None  # the partition's new bucketed watermark, when it moved


@dataclass
class KpiProcessor:
    tables: Tables
    settings: KpiSettings = field(default_factory=KpiSettings)
    # (entry, queue label, channel) -> [sum, count] of facts added since start (cumulative
    # counters), per exported label (``label_with``) so a scrape reads one per series
    cumulative: dict[tuple[Entry, str, str], list[float]] = field(default_factory=dict)
    label: Callable[[str], str] = str  # a queue's exported label (the same at every call)

    def __post_init__(self) -> None:
        self.store = self.settings.bucket_store(self.tables.buckets)
        self.clock = Watermarks(self.tables.meta, self.settings.bucket_s)
        # closed tickets go once no window or correction can reach them; open ones stay
        self.retention = ExpiryHeap(
            self.tables.tickets,
            newest=lambda record: record.newest,
            partition=lambda record: record.partition,
            keep=lambda record: record.open is not None,
        )
        self.held = HeldCounts()
        self.packing = packing(self.tables.tickets, self.held)  # closed tickets, once quiet
        self.open_now = OpenTickets(self.tables.tickets)  # what the Now gauges read

    # -- processing -----------------------------------------------------------
    def batch(self) -> AbstractContextManager[None]:
        """Records processed inside write each bucket they change once, at the end."""
        return self.store.deferred()

    def process(self, partition: int, offset: int, event: TicketEvent) -> Processed:
        """Apply one accepted event: "applied", "duplicate" or "late", and any contact change."""
        s = self.settings
        # the partition's watermark as this record saw it, and its newest (they differ only
        # for a replayed record)
        wmb, current = self.clock.before_and_current(partition, offset)
        held = self.tables.tickets.get(event.ticket_id)
        record: TicketRecord | None = None
        if held is not None:
            record = unpacked(held, event.ticket_id, self.tables.tickets, self.held)
        result = step(
            record.ticket if record is not None else None,
            event,
            offset,
            watermark=wmb,
            lateness_s=s.lateness_s,
            policy=s.policy,
            known=record.fold if record is not None else None,
        )
        if result.outcome != "applied":
            at = wmb if wmb > float("-inf") else event.occurred_at
            mark = Fact(at, f"{result.outcome}_events", event.queue, event.channel)
            self.store.write(partition, offset, [], [mark], current)
            contact = None
        elif record is None and event.occurred_at < current - s.ticket_retention_s:
            # a replayed record of a ticket that retention dropped since: leave it dropped
            # (its facts lie in expired buckets too; a new record this old would be late)
            contact = None
        else:
            self.store.write(partition, offset, result.retract, result.add, current)
            self._count(result.add)
            contact = result.contact
            if result.ticket is not None:
                record = TicketRecord(partition, result.ticket, result.open, result.fold)
                self.tables.tickets[event.ticket_id] = record
                if held is None or record.open != held.open or held.partition != partition:
                    self.open_now.stored(event.ticket_id, held, record)  # else as it was
                self.retention.push(partition, event.ticket_id, record)
                if record.open is None:
                    self.packing.push(partition, event.ticket_id, record)
        moved = None
        if result.outcome != "late":
            moved = self.clock.advance(partition, offset, event.occurred_at)
            if moved is not None:
                self._expire(partition, moved)
        return Processed(result.outcome, contact, moved)

    def label_with(self, label: Callable[[str], str]) -> None:
        """Keep the open tickets and count per ``label`` of each queue (the exporter's cap and
        allow-list) from now on, the counts so far merged so (the same ``label`` again changes
        nothing: its counts are labels already)."""
        if label is self.label:
            return
        self.open_now.label_with(label, self.settings.policy.queues)
        counted, self.cumulative, self.label = self.cumulative, {}, label
        for (name, queue, channel), (total, count) in counted.items():
            acc = self.cumulative.setdefault((name, label(queue), channel), [0.0, 0])
            acc[0] += total
            acc[1] += count

    def _count(self, facts: tuple[Fact, ...]) -> None:
        bounds, cumulative = self.store.bounds, self.cumulative
        for f in facts:
            if f.agent:  # a per-agent twin: windows only, no counter since start reads it
                continue
            label = self.label(f.queue)
            for name, value in entries(f, bounds):
                key = (name, label, f.channel)
                acc = cumulative.get(key)
                if acc is None:  # not ``setdefault``: that builds a default list every time
                    acc = cumulative[key] = [0.0, 0]
                acc[0] += value
                acc[1] += 1

    # -- retention, in event time --------------------------------------------
    def _expire(self, partition: int, wmb: float) -> None:
        """Drop buckets and closed tickets that no window or correction can reach again."""
        self.store.expire(partition, wmb)
        self.retention.expire(partition, wmb - self.settings.ticket_retention_s)
        self.packing.expire(partition, wmb - self.settings.pack_closed_s)

    def forget_partition(self, partition: int) -> None:
        """Drop in-memory indexes when a partition is revoked (tables are Faust's business)."""
        self.store.forget(partition)
        self.retention.forget(partition)
        self.packing.forget(partition)
        self.clock.forget(partition)
        self.open_now.forget()


def open_rows(
    tickets: MutableMapping[str, Any], partitions: set[int]
) -> Iterator[tuple[int, OpenTicket]]:
    """(partition, summary) of every open ticket on the given partitions."""
    for record in list(tickets.values()):
        if record.open is not None and record.partition in partitions:
            yield record.partition, record.open


def figures_by_pass(
    tickets: MutableMapping[str, Any], ends: dict[int, float], policy: Policy
) -> dict[int, dict[tuple[str, str], NowFigures]]:
    """The Now figures of each partition of ``ends`` by a pass over every held ticket: what
    ``OpenTickets`` keeps up to date instead, and what ``/selfcheck`` and ``report`` read."""
    by_partition: dict[int, list[OpenTicket]] = {p: [] for p in ends}
    for p, ticket in open_rows(tickets, set(ends)):
        by_partition[p].append(ticket)
    return {p: now_figures(open_now, ends[p], policy) for p, open_now in by_partition.items()}
