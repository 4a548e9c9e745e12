"""Step 1 of both commits (``streams.runtime.apply``): what a batch collects and counts."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import pytest

from streams.processing.customers import CustomerProcessor, CustomerTables, encode_mark
from streams.processing.kpi import TABLES as TICKET_TABLES
from streams.processing.kpi import KpiProcessor, Tables
from streams.processing.settings import KpiSettings
from streams.processing.table_cache import TableCache
from streams.processing.table_codecs import CODECS, PACKED
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


def _ticket_apply(state: PipelineState) -> tuple[TicketApply, dict[str, Any]]:
    """Over the worker's kind of table copies (codecs, packed rows), with dict stores."""
    cache = TableCache()
    tables = {
        name: cache.table({}, CODECS[name].encode, CODECS[name].decode, name,
                          packed=name in PACKED)
        for name in TICKET_TABLES
    }  # fmt: skip
    processor = KpiProcessor(Tables(**tables), KpiSettings())
    return TicketApply(cache, processor, state, PARTITIONS, 300.0, 65_536), tables


def test_accepted_events_no_figure_took_in_are_counted_by_outcome() -> None:
    """A duplicate event_id and an event past the lateness are accepted (valid) but applied
    to nothing: ``ticketpulse_events_not_applied_total`` says which, so a backfill that
    arrives too late is seen, not silently left out of every figure."""
    state = PipelineState()
    apply, _ = _ticket_apply(state)
    records = [
        Message(1, 10, b"T-1", _event("e1", "opened", "2026-01-05T09:00:00Z")),
        Message(1, 11, b"T-1", _event("e1", "opened", "2026-01-05T09:00:00Z")),  # again
        Message(1, 12, b"T-2", _event("e3", "opened", "2026-01-05T12:00:00Z", ticket_id="T-2")),
        Message(1, 13, b"T-3", _event("e4", "opened", "2026-01-05T11:00:00Z", ticket_id="T-3")),
    ]
    apply(records)
    assert sum(state.accepted.values()) == 4
    assert state.not_applied == {"duplicate": 1, "late": 1}


def test_a_ticket_batch_applies_the_accepted_dead_letters_the_rest_and_forwards() -> None:
    state = PipelineState()
    apply, _ = _ticket_apply(state)
    records = [
        Message(1, 10, b"T-1", _event("e1", "opened", "2026-01-05T09:00:00Z")),
        Message(1, 11, b"T-1", _event("e2", "resolved", "2026-01-05T09:20:00Z", agent_id="a")),
        Message(1, 12, b"T-1", b"{not json"),
    ]
    batch = apply(records)
    assert [(m.offset, r.reason) for m, r in batch.dead_letters] == [(12, "not_json")]
    assert sum(state.accepted.values()) == 2 and state.rejected["not_json"] == 1
    assert state.next_offset == {1: 13} and state.applied == 1  # the reject's offset too
    assert {(c.table, c.partition) for c in batch.changes} == {
        (name, 1) for name in TICKET_TABLES
    }  # every table's changed rows, of the records' partition
    contacts = [f for f in batch.contacts if f.partition is None]
    assert contacts and all(f.key == b"C-1" for f in contacts)  # keyed by customer
    marks = [f for f in batch.contacts if f.partition is not None]
    assert sorted(f.partition for f in marks) == list(range(PARTITIONS))  # one per partition
    assert batch.contacts[-PARTITIONS:] == marks  # after the batch's contacts
    watermark = apply.processor.clock.clock(1)
    assert {orjson.dumps(orjson.loads(f.value)) for f in marks} == {
        orjson.dumps({"watermark": watermark, "source_partition": 1})
    }  # the source partition's new watermark


def test_a_raise_inside_reaches_the_caller_and_leaves_no_copy_or_change() -> None:
    """What ``BatchCommit`` relies on: step 1 fails as a whole (ApplyFailedError there)."""
    state = PipelineState()
    apply, tables = _ticket_apply(state)
    apply([Message(0, 0, b"T-1", _event("e1", "opened", "2026-01-05T09:00:00Z"))])
    applied = apply.processor.process

    def fails_second(partition: int, offset: int, event: Any) -> Any:
        if offset == 2:
            raise RuntimeError("a defect")
        return applied(partition, offset, event)

    apply.processor.process = fails_second  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="a defect"):
        apply([
            Message(0, 1, b"T-1", _event("e2", "replied", "2026-01-05T09:05:00Z", author="agent")),
            Message(0, 2, b"T-1", _event("e3", "resolved", "2026-01-05T09:20:00Z")),
        ])  # fmt: skip
    assert all(table._data is None for table in tables.values())  # re-read from the store
    assert apply.cache.changes() == []  # nothing of the failed batch left to write


def test_a_contact_batch_applies_contacts_and_marks_and_dead_letters_foreign_records() -> None:
    state = PipelineState()
    customers = CustomerProcessor(CustomerTables(), KpiSettings())
    tickets, _ = _ticket_apply(state)
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
