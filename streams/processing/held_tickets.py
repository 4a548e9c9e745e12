"""How the ticket processor holds each ticket in memory: decoded while it may still change,
let go of (left to its store) or packed into its stored bytes once it is closed and quiet.

A decoded ticket (its events as structs, its fold of facts and state) costs about four
times its stored row, and most tickets a worker holds are closed: kept for a day or more
only in case a late survey or a reopen comes (``closed_ticket_keep_seconds``). So a closed
ticket with no event for ``closed_ticket_pack_seconds`` of event time is held as
``ShelvedTicket`` where its table reads rows back from its store (the worker's RocksDB: its
partition and newest event time, what retention reads, and no row at all), else as
``PackedTicket`` (the very bytes its row is stored as, with the same two). An event for it
decodes the row again, exactly as a worker reads it back after a restart, and the ticket is
decoded from then on until it is quiet again. Neither writes anything: the stored row does
not change. So a worker's memory grows with its open and recently active tickets, and the
days of closed ones it keeps lie in its store.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from streams.core.events import with_shared_strings
from streams.core.facts import TicketFold
from streams.core.now import OpenTicket, open_summary
from streams.core.ticket import StoredTicket
from streams.processing.retention import ExpiryHeap
from streams.processing.stored_rows import TicketRow, encode_row, read_ticket_row


class TicketRecord(msgspec.Struct, frozen=True, gc=False):
    """A ticket as the processor holds it: its events, plus what derives from them."""

    partition: int
    ticket: StoredTicket
    open: OpenTicket | None  # None once resolved or abandoned
    fold: TicketFold | None = None  # its facts and state; None until first needed

    @property
    def newest(self) -> float:
        return self.ticket.newest


class PackedTicket(msgspec.Struct, frozen=True, gc=False):
    """A closed, quiet ticket: its stored row's bytes, and what retention reads of it."""

    partition: int
    newest: float
    row: bytes
    # closed (only closed tickets are packed): the Now gauges pass it by undecoded. A class
    # attribute, not a field (msgspec leaves ClassVars out) nor a property: the open-ticket
    # index's pass over the table (``streams.processing.open_tickets``) reads every held
    # ticket's ``open``
    open: ClassVar[None] = None


class ShelvedTicket(msgspec.Struct, frozen=True, gc=False):
    """A closed, quiet ticket whose row only its table's store holds, and what retention
    reads of it. Never written: a table lets a key go only once its store holds the row."""

    partition: int
    newest: float
    open: ClassVar[None] = None  # closed (only closed tickets are shelved): passed by unread


HeldTicket = TicketRecord | PackedTicket | ShelvedTicket


def ticket_row(record: TicketRecord) -> TicketRow:
    return TicketRow(record.partition, record.ticket.last_offset, record.ticket.events)


def encode_ticket(held: HeldTicket) -> bytes:
    """The stored row: a packed ticket is its bytes already."""
    if isinstance(held, PackedTicket):
        return held.row
    if isinstance(held, ShelvedTicket):  # a table lets go of stored keys only: a defect
        msg = "a shelved ticket was written: its row is in the store only"
        raise TypeError(msg)
    return encode_row(ticket_row(held))


def read_ticket(value: Any) -> TicketRecord:
    """A stored ticket (``TicketRow`` bytes) decoded, or ``BadRowError``."""
    row = read_ticket_row(value)
    events = tuple((with_shared_strings(e), offset) for e, offset in row.events)
    ticket = StoredTicket.of(events, row.offset)
    return TicketRecord(row.partition, ticket, open_summary(e for e, _ in ticket.events))


def read_held_ticket(value: Any) -> HeldTicket:
    """A stored ticket as the worker holds it once read back: packed when closed (checked
    by decoding it, so a bad row is refused here, never at its next event)."""
    record = read_ticket(value)
    if record.open is None and isinstance(value, bytes):
        return PackedTicket(record.partition, record.newest, value)
    return record


def read_shelved_ticket(value: Any) -> TicketRecord | ShelvedTicket:
    """A stored ticket as a worker whose table reads rows back holds it: shelved when
    closed (decoded first, so a bad row is refused here, never at its next event)."""
    record = read_ticket(value)
    return ShelvedTicket(record.partition, record.newest) if record.open is None else record


@dataclass
class HeldCounts:
    """Tickets shelved, packed and read back again since start (the worker's /stats)."""

    shelved: int = 0
    packed: int = 0
    read_back: int = 0


def unpacked(held: HeldTicket, key: str, tickets: Any, counts: HeldCounts) -> TicketRecord:
    """The decoded ticket ``key`` of ``tickets``, which holds it as ``held``."""
    if isinstance(held, TicketRecord):
        return held
    counts.read_back += 1
    if isinstance(held, PackedTicket):
        return read_ticket(held.row)
    return read_ticket(tickets.stored(held.partition, key))


def packing(tickets: MutableMapping[str, Any], counts: HeldCounts) -> ExpiryHeap:
    """Closed tickets, pushed as they are stored closed, shelved (or packed) once quiet past
    the cutoff given to ``expire``. Not a write: the worker's cache ``let_go``es of the row,
    or ``hold``s the packed form when its store does not hold the row yet. Tickets read back
    are shelved or packed already when closed, so the heap starts from the pushed ones."""
    hold = getattr(tickets, "hold", tickets.__setitem__)
    let_go = getattr(tickets, "let_go", None)

    def pack(key: str, record: TicketRecord) -> None:
        if let_go is not None and let_go(key, ShelvedTicket(record.partition, record.newest)):
            counts.shelved += 1
            return
        hold(key, PackedTicket(record.partition, record.newest, encode_ticket(record)))
        counts.packed += 1

    return ExpiryHeap(
        tickets,
        newest=lambda held: held.newest,
        partition=lambda held: held.partition,
        keep=lambda held: not isinstance(held, TicketRecord) or held.open is not None,
        instead=pack,
        prefill=False,
    )
