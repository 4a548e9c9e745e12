"""Checks of stored table rows as they are read back: a row that cannot be used is refused.

The worker's tables are read from RocksDB and the changelogs, which outlive any one
version of the code and can be written by hand. One row with ``null`` where a number
belongs (what JSON makes of an infinite sum) once put a worker into a crash loop: every
batch touching its bucket raised, every scrape answered 500, every restart read it again.
Each checker raises ``BadRowError`` for such a row; ``streams.processing.table_cache``
then leaves the row out, counts it and logs it once per table (docs/runbooks.md), and
the worker goes on.
"""

from __future__ import annotations

import math
from typing import Any

from streams.processing.kpi import TicketRecord, decode_ticket


class BadRowError(ValueError):
    """A stored row that does not have the shape its table's code writes."""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"{where} is {value!r}, not a finite number"
        raise BadRowError(msg)
    return value


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{where} is {value!r}, not an integer"
        raise BadRowError(msg)
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        msg = f"{where} is {type(value).__name__}, not an object"
        raise BadRowError(msg)
    return value


def _pairs(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(v, list) for v in value):
        msg = f"{where} is not a list of lists"
        raise BadRowError(msg)
    return value


def check_bucket(value: Any) -> Any:
    """``{"o": offset, "v": {entry: [sum, count]}, "m": {figure: [values...]}}``."""
    row = _mapping(value, "bucket")
    _integer(row.get("o"), "bucket offset")
    for entry, pair in _mapping(row.get("v"), "bucket sums").items():
        if not isinstance(pair, list) or len(pair) != 2:
            msg = f"bucket entry {entry!r} is {pair!r}, not [sum, count]"
            raise BadRowError(msg)
        _number(pair[0], f"sum of {entry!r}")
        _integer(pair[1], f"count of {entry!r}")
    for name, values in _mapping(row.get("m", {}), "bucket maxima").items():
        for v in values if isinstance(values, list) else [values]:
            _number(v, f"a value of maximum {name!r}")
    return value


def check_meta(value: Any) -> Any:
    """``{"o": offset, "h": [[offset, watermark bucket], ...]}``."""
    row = _mapping(value, "watermark")
    _integer(row.get("o"), "watermark offset")
    for entry in _pairs(row.get("h"), "watermark history"):
        if len(entry) != 2:
            msg = f"watermark history entry {entry!r} is not [offset, watermark]"
            raise BadRowError(msg)
        _integer(entry[0], "watermark history offset")
        _number(entry[1], "watermark")
    return value


def check_customer(value: Any) -> Any:
    """``{"p": partition, "o": offset, "t": {ticket_id: [[offset, contact row], ...]}}``."""
    row = _mapping(value, "customer")
    _integer(row.get("p"), "customer partition")
    _integer(row.get("o"), "customer offset")
    tickets = _mapping(row.get("t"), "customer tickets")
    if not tickets:
        msg = "a customer row without tickets"
        raise BadRowError(msg)
    for ticket_id, versions in tickets.items():
        for entry in _pairs(versions, f"versions of {ticket_id!r}") or [None]:
            if entry is None or len(entry) != 2 or not isinstance(entry[1], list):
                msg = f"a version of {ticket_id!r} is {entry!r}, not [offset, contact row]"
                raise BadRowError(msg)
            _check_contact_row(ticket_id, entry[1])
    return value


def _check_contact_row(ticket_id: str, row: list[Any]) -> None:
    if len(row) != 9:
        msg = f"the contact row of {ticket_id!r} has {len(row)} values, not 9"
        raise BadRowError(msg)
    _integer(row[0], "contact version")
    _number(row[1], "contact opened_at")
    if row[4] is not None:
        _number(row[4], "contact resolved_at")
    if not isinstance(row[7], list):
        msg = f"the reopens of {ticket_id!r} are not a list"
        raise BadRowError(msg)
    for at in row[7]:
        _number(at, "contact reopened_at")


def read_ticket(value: Any) -> TicketRecord:
    """``streams.processing.kpi.decode_ticket``, refusing rows with unusable times or numbers."""
    try:
        record = decode_ticket(_mapping(value, "ticket"))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, BadRowError):
            raise
        msg = f"ticket row: {exc!r}"
        raise BadRowError(msg) from exc
    for event, _ in record.ticket.events:
        _number(event.occurred_at, "occurred_at")
        if event.handle_seconds is not None:
            _number(event.handle_seconds, "handle_seconds")
        if event.score is not None:
            _integer(event.score, "score")
    return record
