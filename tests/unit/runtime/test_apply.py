"""Step 1 of both commits (``streams.runtime.apply``): what a batch collects and counts."""

from __future__ import annotations

from typing import NamedTuple

import orjson

from streams.processing.customers import CustomerProcessor, CustomerTables, encode_mark
from streams.processing.kpi import KpiProcessor, Tables
from streams.processing.settings import KpiSettings
from streams.processing.table_cache import TableCache
from streams.runtime.apply import ContactApply, TicketApply
from streams.runtime.state import PipelineState

PARTITIONS = 3
HOUR_LATER = 1_767_607_200.0  # 2026-01-05T10:00:00Z, an hour after the contact opened


class Message(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def _event(event_id: str, kind: str, at: str, **more: object) -> bytes:
    doc = {"event_id": event_id, "type": kind, "ticket_id": "T-1", "occurred_at": at,
           "queue": "billing", "channel": "email", "customer_id": "C-1", **more}  # fmt: skip
    return orjson.dumps(doc)


def test_a_ticket_batch_applies_the_accepted_dead_letters_the_rest_and_forwards() -> None:
    state = PipelineState()
    apply = TicketApply(
        TableCache(), KpiProcessor(Tables(), KpiSettings()), state, PARTITIONS, 300.0, 65_536
    )
    records = [
        Message(1, 10, b"T-1", _event("e1", "opened", "2026-01-05T09:00:00Z")),
        Message(1, 11, b"T-1", b"{not json"),
        Message(1, 12, b"T-1", _event("e2", "resolved", "2026-01-05T09:20:00Z", agent_id="a")),
    ]
    batch = apply(records)
    assert [(m.offset, r.reason) for m, r in batch.dead_letters] == [(11, "not_json")]
    assert sum(state.accepted.values()) == 2 and state.rejected["not_json"] == 1
    assert state.next_offset == {1: 13} and state.applied == 1
    contacts = [f for f in batch.contacts if f.partition is None]
    assert contacts and all(f.key == b"C-1" for f in contacts)  # keyed by customer
    marks = [f for f in batch.contacts if f.partition is not None]
    assert sorted(f.partition for f in marks) == list(range(PARTITIONS))  # one per partition
    assert batch.contacts[-PARTITIONS:] == marks  # after the batch's contacts


def test_a_contact_batch_applies_contacts_and_marks_and_dead_letters_foreign_records() -> None:
    state = PipelineState()
    customers = CustomerProcessor(CustomerTables(), KpiSettings())
    tickets = TicketApply(
        TableCache(), KpiProcessor(Tables(), KpiSettings()), state, 1, 300.0, 65_536
    )
    forwarded = tickets([Message(0, 0, b"T-1", _event("e1", "opened", "2026-01-05T09:00:00Z"))])
    contact = next(f for f in forwarded.contacts if f.partition is None)
    apply = ContactApply(TableCache(), customers, state)
    batch = apply([
        Message(0, 0, b"C-1", contact.value),
        Message(0, 1, b"~watermark", encode_mark(0, HOUR_LATER)),
        Message(0, 2, b"C-1", b'{"customer_id": 7}'),
    ])  # fmt: skip
    assert [(m.offset, r.reason) for m, r in batch.dead_letters] == [(2, "bad_contact")]
    assert state.contacts_received == 2  # the contact and the foreign record, not the mark
    assert "C-1" in customers.tables.customers
    assert customers.clock.clock(0) == HOUR_LATER  # the mark, not the contact, moved it
