"""How the ticket processor holds each ticket in memory: decoded while it may still change,
packed into its stored bytes once it is closed and quiet.

A decoded ticket (its events as structs, its fold of facts and state) costs about four
times its stored row, and most tickets a worker holds are closed: kept for a day or more
only in case a late survey or a reopen comes (``closed_ticket_keep_seconds``). So a closed
ticket with no event for ``closed_ticket_pack_seconds`` of event time is held as
``PackedTicket``: the very bytes its row is stored as, its partition and its newest event
time (what retention reads). An event for it decodes the row again, exactly as a worker
reads it back after a restart, and the ticket is decoded from then on until it is quiet
again. Packing writes nothing: the stored row does not change.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from operator import attrgetter, itemgetter
from typing import Any

import msgspec

from streams.core.events import with_shared_strings
from streams.core.facts import TicketFold
from streams.core.now import OpenTicket, open_summary
from streams.core.ticket import StoredTicket
from streams.processing.retention import ExpiryHeap
from streams.processing.stored_rows import TicketRow, encode_row, read_ticket_row

_EVENT = itemgetter(0)  # of an (event, offset) pair
_OCCURRED_AT = attrgetter("occurred_at")


class TicketRecord(msgspec.Struct, frozen=True, gc=False):
    """A ticket as the processor holds it: its events, plus what derives from them."""

    partition: int
    ticket: StoredTicket
    open: OpenTicket | None  # None once resolved or abandoned
    fold: TicketFold | None = None  # its facts and state; None until first needed

    @property
    def newest(self) -> float:
        newest: float = max(map(_OCCURRED_AT, map(_EVENT, self.ticket.events)))  # in C
        return newest


class PackedTicket(msgspec.Struct, frozen=True, gc=False):
    """A closed, quiet ticket: its stored row's bytes, and what retention reads of it."""

    partition: int
    newest: float
    row: bytes

    @property
    def open(self) -> None:
        """Closed (only closed tickets are packed): the Now gauges pass it by undecoded."""
        return None


HeldTicket = TicketRecord | PackedTicket


def ticket_row(record: TicketRecord) -> TicketRow:
    return TicketRow(record.partition, record.ticket.last_offset, record.ticket.events)


def encode_ticket(held: HeldTicket) -> bytes:
    """The stored row: a packed ticket is its bytes already."""
    if isinstance(held, PackedTicket):
        return held.row
    return encode_row(ticket_row(held))


def read_ticket(value: Any) -> TicketRecord:
    """A stored ticket (``TicketRow`` bytes) decoded, or ``BadRowError``."""
    row = read_ticket_row(value)
    events = tuple((with_shared_strings(e), offset) for e, offset in row.events)
    ticket = StoredTicket(events, row.offset)
    return TicketRecord(row.partition, ticket, open_summary(e for e, _ in ticket.events))


def read_held_ticket(value: Any) -> HeldTicket:
    """A stored ticket as the worker holds it once read back: packed when closed (checked
    by decoding it, so a bad row is refused here, never at its next event)."""
    record = read_ticket(value)
    if record.open is None and isinstance(value, bytes):
        return PackedTicket(record.partition, record.newest, value)
    return record


def unpacked(held: HeldTicket) -> TicketRecord:
    return read_ticket(held.row) if isinstance(held, PackedTicket) else held


def packing(tickets: MutableMapping[str, Any]) -> ExpiryHeap:
    """Closed tickets, pushed as they are stored closed, packed once quiet past the cutoff
    given to ``expire``. Not a write: the worker's cache ``hold``s the packed form. Tickets
    read back are packed already when closed, so the heap starts from the pushed ones."""
    hold = getattr(tickets, "hold", tickets.__setitem__)

    def pack(key: str, record: TicketRecord) -> None:
        hold(key, PackedTicket(record.partition, record.newest, encode_ticket(record)))

    return ExpiryHeap(
        tickets,
        newest=lambda held: held.newest,
        partition=lambda held: held.partition,
        keep=lambda held: not isinstance(held, TicketRecord) or held.open is not None,
        instead=pack,
        prefill=False,
    )
