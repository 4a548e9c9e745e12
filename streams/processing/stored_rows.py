"""The typed rows of the worker's tables, and how they are stored and read back.

Each table's value is a msgspec ``Struct`` stored as a JSON array (field order, no
names): typed in the code, compact in RocksDB and the changelogs, and decoded with its
types checked in one C pass. msgspec earns its place here: the hand-written checkers it
replaces were slower and could drift from the shapes the code writes.

The rows outlive any one version of the code and can be written by hand. One row with
``null`` where a number belongs (what JSON makes of an infinite sum) once put a worker
into a crash loop: every batch touching its bucket raised, every scrape answered 500,
every restart read it again. Every ``read_*`` function raises ``BadRowError`` for a row
that does not decode to its type (a wrong shape, a wrong type, ``null`` or a non-finite
number where a number belongs); ``streams.processing.table_cache`` then leaves the row
out, counts it and logs it once per table (docs/runbooks.md), and the worker goes on.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec

from streams.core.buckets import Entry
from streams.core.events import TicketEvent

Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
EntrySum = tuple[Entry, Finite, int]  # (entry, sum of values, count)
# a contact as the customer side stores it (streams.processing.customers._row)
ContactRow = tuple[int, Finite, str, str, Finite | None, str, str, tuple[Finite, ...], str | None]
ContactVersions = Annotated[tuple[tuple[int, ContactRow], ...], msgspec.Meta(min_length=1)]


class BucketRow(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One tumbling bucket of one queue x channel: the offset of the record that last
    changed it (replays skip it), the sums per entry, and the values of each maximum
    figure (sorted, so a retraction can remove the largest)."""

    offset: int
    sums: tuple[EntrySum, ...]
    maxima: dict[str, tuple[Finite, ...]] = {}


class WatermarkRow(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A partition's bucketed watermark: (offset at which it moved, bucket) pairs."""

    offset: int
    history: tuple[tuple[int, Finite], ...]


class CustomerRow(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A customer's contacts: every version of each ticket's contact with its offset."""

    partition: int
    offset: int
    tickets: Annotated[dict[str, ContactVersions], msgspec.Meta(min_length=1)]


class TicketRow(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A ticket's events, each with the offset that brought it."""

    partition: int
    offset: int
    events: tuple[tuple[TicketEvent, int], ...]


class BadRowError(ValueError):
    """A stored row that does not have the shape its table's code writes."""


_encoder = msgspec.json.Encoder()
Row = TypeVar("Row")


def encode_row(row: Any) -> bytes:
    return _encoder.encode(row)


def reader(row_type: type[Row]) -> Callable[[Any], Row]:
    """A function turning stored bytes into a ``row_type``, or raising ``BadRowError``."""
    decoder = msgspec.json.Decoder(row_type)

    def read(value: Any) -> Row:
        if isinstance(value, row_type):  # a table that holds rows, not bytes
            return value
        try:
            return decoder.decode(value)
        except (msgspec.DecodeError, TypeError) as exc:
            msg = f"{row_type.__name__}: {exc}"
            raise BadRowError(msg) from exc

    return read


read_bucket = reader(BucketRow)
read_watermark = reader(WatermarkRow)
read_customer = reader(CustomerRow)
_read_ticket_row = reader(TicketRow)


def read_ticket_row(value: Any) -> TicketRow:
    """``TicketRow``, also refusing non-finite event times and handle times (the
    event's own types are the core's, which know nothing of storage)."""
    row = _read_ticket_row(value)
    for event, _ in row.events:
        numbers = (event.occurred_at, event.handle_seconds or 0.0)
        if not all(math.isfinite(n) for n in numbers):
            msg = f"TicketRow: event {event.event_id!r} has a non-finite time"
            raise BadRowError(msg)
    return row
