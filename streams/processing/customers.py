"""The customer side: contacts forwarded keyed by ``customer_id`` meet here, whatever
ticket partition they came from, and feed ACR and repeat-contact figures.

Tables (typed rows, ``streams.processing.stored_rows``; the bucket and watermark tables
work as in ``streams.processing.bucket_store``):

- ``customers``  customer_id -> ``CustomerRow`` (partition, last offset,
                                 {ticket_id: ((offset, contact row), ...)})
- ``cbuckets``, ``cmeta``: buckets and watermark of the contacts partitions.

Every version of a ticket's contact is kept with the offset that brought it, so a
redelivered record sees the customer as it was before it and writes the very
same delta (each bucket key skips what it already has). There is no lateness
rule here: contacts from ticket partitions that run at different speeds arrive
interleaved, and dropping any would make the figures depend on that interleaving.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from sys import intern
from typing import Any, NamedTuple, Protocol

import orjson

from streams.core.buckets import delta
from streams.core.contacts import Contact, customer_facts, latest_of
from streams.processing.bucket_store import BucketStore, Watermarks
from streams.processing.retention import ExpiryHeap
from streams.processing.settings import KpiSettings
from streams.processing.stored_rows import ContactRow, ContactVersions, CustomerRow

TABLES = ("customers", "cbuckets", "cmeta")


def encode_contact(customer_id: str, contact: Contact) -> bytes:
    return orjson.dumps({"customer_id": customer_id, **_row_dict(contact)})


class BadContactError(ValueError):
    """A contacts-topic record the workers did not write."""


class WatermarkMark(NamedTuple):
    """A ticket partition's bucketed watermark moved to ``watermark``: sent to every
    contacts partition, so the customer side's window end follows the input's."""

    watermark: float


def encode_mark(source_partition: int, watermark: float) -> bytes:
    return orjson.dumps({"watermark": watermark, "source_partition": source_partition})


def decode_forwarded(value: bytes | None) -> tuple[str, Contact] | WatermarkMark:
    """A contacts-topic record: a contact keyed by customer, or a watermark mark."""
    if value and value.startswith(b'{"watermark":'):
        try:
            at = orjson.loads(value)["watermark"]
        except (ValueError, TypeError, KeyError) as exc:
            msg = f"not a watermark mark: {exc}"
            raise BadContactError(msg) from exc
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            msg = f"not a watermark mark: watermark {at!r}"
            raise BadContactError(msg)
        return WatermarkMark(float(at))
    return decode_contact(value)


def decode_contact(value: bytes | None) -> tuple[str, Contact]:
    try:
        doc = orjson.loads(value or b"")
        customer_id = doc.pop("customer_id")
        doc["reopens"] = tuple(doc["reopens"])
        contact = Contact(**doc)
        float(contact.opened_at)
        float(contact.latest)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        msg = f"not a contact record: {exc}"
        raise BadContactError(msg) from exc
    if not isinstance(customer_id, str) or not isinstance(contact.version, int):
        msg = "not a contact record: customer_id must be a string and version an integer"
        raise BadContactError(msg)
    return customer_id, contact


def _row_dict(c: Contact) -> dict[str, Any]:
    return {
        "ticket_id": c.ticket_id,
        "version": c.version,
        "opened_at": c.opened_at,
        "queue": c.queue,
        "channel": c.channel,
        "resolved_at": c.resolved_at,
        "resolved_queue": c.resolved_queue,
        "resolved_channel": c.resolved_channel,
        "reopens": list(c.reopens),
        "resolved_agent": c.resolved_agent,
    }


def _row(c: Contact) -> ContactRow:
    """Its names shared (``sys.intern``): every version of every contact a customer row
    keeps repeats a few queues, channels and agents, each decoded afresh from its record."""
    return (
        c.version,
        c.opened_at,
        _shared(c.queue),
        _shared(c.channel),
        c.resolved_at,
        _shared(c.resolved_queue),
        _shared(c.resolved_channel),
        c.reopens,
        _shared(c.resolved_agent),
    )


def _shared(text: Any) -> Any:
    return intern(text) if isinstance(text, str) else text


def _contact(ticket_id: str, row: ContactRow) -> Contact:
    version, opened_at, queue, channel, resolved_at, rq, rc, reopens, agent = row
    return Contact(
        ticket_id, version, opened_at, queue, channel, resolved_at, rq, rc, tuple(reopens), agent
    )


def contacts_before(value: CustomerRow | None, offset: int | None = None) -> list[Contact]:
    """The customer's contacts, newest version of each ticket (below ``offset`` when given)."""
    out = []
    for ticket_id, versions in (value.tickets if value is not None else {}).items():
        rows = [row for off, row in versions if offset is None or off < offset]
        if rows:
            out.append(_contact(ticket_id, rows[-1]))
    return out


@dataclass
class CustomerTables:
    customers: MutableMapping[str, Any] = field(default_factory=dict)
    cbuckets: MutableMapping[str, Any] = field(default_factory=dict)
    cmeta: MutableMapping[str, Any] = field(default_factory=dict)


class CustomerListener(Protocol):
    """Kept in step with the customers table (``streams.processing.repeat_totals``)."""

    def changed(
        self, partition: int, customer_id: str, old: CustomerRow | None, new: CustomerRow | None
    ) -> None: ...

    def forget(self, partition: int) -> None: ...

    def forget_all(self) -> None: ...


@dataclass
class CustomerProcessor:
    tables: CustomerTables
    settings: KpiSettings = field(default_factory=KpiSettings)
    listeners: list[CustomerListener] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        retention = s.recontact_s + s.bucket_retention_s
        expiry = s.bucket_expiry(retention)
        self.store = BucketStore(self.tables.cbuckets, s.bucket_s, s.policy.bounds(), expiry)
        self.clock = Watermarks(self.tables.cmeta, s.bucket_s)
        self.retention_s = retention
        self.retention = ExpiryHeap(
            self.tables.customers,
            newest=_newest,
            partition=lambda value: value.partition,
            on_delete=self._deleted,
        )

    def _deleted(self, customer_id: str, row: CustomerRow) -> None:
        for listener in self.listeners:
            listener.changed(row.partition, customer_id, row, None)

    def process(self, partition: int, offset: int, customer_id: str, contact: Contact) -> bool:
        """Apply one forwarded contact; True when it changed the customer's figures."""
        raw: CustomerRow | None = self.tables.customers.get(customer_id)
        replaying = raw is not None and raw.offset >= offset
        before = contacts_before(raw, offset)
        current = next((c for c in before if c.ticket_id == contact.ticket_id), None)
        newer = current is None or contact.version > current.version
        changed = False
        if newer:
            after = [c for c in before if c.ticket_id != contact.ticket_id] + [contact]
            days, per_agent = self.settings.policy.recontact_days, self.settings.policy.per_agent
            retract, add = delta(
                customer_facts(before, days, per_agent), customer_facts(after, days, per_agent)
            )
            # the watermark this record saw, and the newest: equal unless it is a replay
            wm, newest_wm = self.clock.before_and_current(partition, offset)
            self.store.write(partition, offset, retract, add, newest_wm)
            changed = bool(retract or add)
            expired = raw is None and contact.latest < newest_wm - self.retention_s
            if not replaying and not expired:  # never revive a customer retention dropped
                self._store(partition, offset, customer_id, raw, contact, wm)
        moved = self.clock.advance(partition, offset, contact.latest)
        if moved is not None:
            self._expire(partition, moved)
        return changed

    def batch(self) -> AbstractContextManager[None]:
        """Records processed inside write each bucket they change once, at the end."""
        return self.store.deferred()

    def advance(self, partition: int, offset: int, at: float) -> None:
        """A ticket partition's watermark reached ``at`` (a ``WatermarkMark``): with
        ``clock = event`` the customer figures end where the input's watermark is, not at
        the newest contact time, which lags it (docs/metrics.md, "Customer figures")."""
        moved = self.clock.advance(partition, offset, at)
        if moved is not None:
            self._expire(partition, moved)

    def _store(
        self,
        partition: int,
        offset: int,
        customer_id: str,
        raw: CustomerRow | None,
        contact: Contact,
        wm: float,
    ) -> None:
        cutoff = wm - self.retention_s
        tickets: dict[str, ContactVersions] = {
            ticket_id: versions
            for ticket_id, versions in (raw.tickets if raw is not None else {}).items()
            if _latest(versions[-1][1]) >= cutoff
        }
        ticket_id = intern(contact.ticket_id)  # the tickets table's key: one string for both
        tickets[ticket_id] = (*tickets.get(ticket_id, ()), (offset, _row(contact)))
        value = self.tables.customers[customer_id] = CustomerRow(partition, offset, tickets)
        self.retention.push(partition, customer_id, value)
        for listener in self.listeners:
            listener.changed(partition, customer_id, raw, value)

    def _expire(self, partition: int, wm: float) -> None:
        self.store.expire(partition, wm)
        self.retention.expire(partition, wm - self.retention_s)

    def forget_partition(self, partition: int) -> None:
        self.store.forget(partition)
        self.retention.forget(partition)
        self.clock.forget(partition)
        for listener in self.listeners:
            listener.forget(partition)

    def forget_indexes(self) -> None:
        """Tables were recovered: indexes and totals built from a copy read meanwhile are
        incomplete, so they are built again when next used."""
        self.store.forget_all()
        for listener in self.listeners:
            listener.forget_all()


def _latest(row: ContactRow) -> float:
    """``Contact.latest`` of a stored contact, read off its row (no ``Contact`` built: it
    runs for every ticket of a customer at each of its contacts)."""
    return latest_of(row[1], row[4], row[7])  # opened_at, resolved_at, reopens


def _newest(value: CustomerRow) -> float:
    return max(_latest(versions[-1][1]) for versions in value.tickets.values())


def customer_rows(
    customers: MutableMapping[str, Any], partitions: set[int]
) -> Iterator[tuple[int, list[Contact]]]:
    """(partition, contacts) of every customer on the given partitions."""
    for value in list(customers.values()):
        if value.partition in partitions:
            yield value.partition, contacts_before(value)
