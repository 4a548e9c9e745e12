"""The ingest boundary: raw Kafka record bytes in, a typed event or a rejection out.

Every record ends as exactly one of ``Accepted`` or ``Rejected``; nothing raises,
so a poison pill can never crash the worker. Rejection reasons are a small,
documented, closed set (see docs/events.md).
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal, get_args

import jsonschema_rs
import msgspec
import orjson

from streams.core.events import TicketEvent, shared_event

SCHEMA_FILE: Final = "ticket-event.v1.json"
MAX_RECORD_BYTES: Final = 64 * 1024
NON_FINITE: Final = "number is infinity"  # orjson's message for a number past float range

RejectReason = Literal[
    "not_json",
    "not_object",
    "schema",
    "too_large",
    "future_timestamp",
    "key_mismatch",
    "bad_contact",
]
REJECT_REASONS: Final[tuple[str, ...]] = get_args(RejectReason)


class Accepted(msgspec.Struct, frozen=True, gc=False):  # one per record: built in C
    event: TicketEvent


class Rejected(msgspec.Struct, frozen=True, gc=False):
    reason: RejectReason
    detail: str


def schema_dir() -> Path:
    """``$TICKETPULSE_SCHEMA_DIR``, else the package's ``schemas/``: in a checkout a link to
    the repository's ``schemas/`` folder (the source of truth), in a wheel a copy of it
    (package data), so an installed worker finds its schema from any directory."""
    override = os.environ.get("TICKETPULSE_SCHEMA_DIR")
    return Path(override) if override else Path(__file__).resolve().parent / "schemas"


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    path = schema_dir() / SCHEMA_FILE
    schema: dict[str, Any] = orjson.loads(path.read_bytes())
    jsonschema_rs.meta.validate(schema)  # a broken schema fails at startup, not per record
    return schema


@lru_cache(maxsize=1)
def validator() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(load_schema(), validate_formats=True)


def parse_time(value: str) -> float:
    """RFC 3339 (already checked by the schema) to epoch seconds."""
    return datetime.fromisoformat(value.upper()).timestamp()


def _first_error(doc: dict[str, Any]) -> str | None:
    check = validator()
    if check.is_valid(doc):  # the common case, without building an error iterator
        return None
    for error in check.iter_errors(doc):
        path = "/".join(str(p) for p in error.instance_path) or "(root)"
        return f"{path}: {error.message}"[:400]
    return None


def to_event(doc: dict[str, Any]) -> TicketEvent:
    """Build the typed event from a schema-valid document (extra properties ignored).

    Positional, in ``TicketEvent``'s field order, with its repeating strings shared
    (``shared_event``)."""
    get = doc.get
    return shared_event(
        doc["event_id"],
        doc["type"],
        doc["ticket_id"],
        parse_time(doc["occurred_at"]),
        doc["queue"],
        doc["channel"],
        get("customer_id"),
        get("agent_id"),
        get("priority"),
        tuple(get("tags", ())),
        get("handle_seconds"),
        get("author"),
        get("to_queue"),
        get("to_agent"),
        bool(get("escalation", False)),
        get("survey_kind"),
        get("score"),
    )


def classify(
    key: bytes | None,
    value: bytes | None,
    *,
    now: float,
    future_tolerance_s: float,
    max_bytes: int = MAX_RECORD_BYTES,
) -> Accepted | Rejected:
    """Decide what one record is. ``now`` is passed in so tests control the clock."""
    if value is not None and len(value) > max_bytes:
        return Rejected("too_large", f"record value is {len(value)} bytes, limit {max_bytes}")
    if not value:
        return Rejected("not_json", "record value is empty or null")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if NON_FINITE in str(exc):  # valid JSON syntax, but no float can hold the number
            return Rejected("schema", f"a number is not finite: {exc}"[:400])
        return Rejected("not_json", f"not valid UTF-8 JSON: {exc}"[:400])
    if not isinstance(doc, dict):
        return Rejected("not_object", f"JSON value is a {type(doc).__name__}, not an object")
    problem = _first_error(doc)
    if problem is not None:
        return Rejected("schema", problem)
    try:
        event = to_event(doc)
    except ValueError as exc:  # a date the format check let through but Python cannot read
        return Rejected("schema", f"occurred_at: {exc}"[:400])
    key_text = key.decode("utf-8", "replace") if key is not None else None
    if key_text != event.ticket_id:
        return Rejected(
            "key_mismatch", f"record key {key_text!r} is not ticket_id {event.ticket_id!r}"
        )
    if event.occurred_at > now + future_tolerance_s:
        ahead = event.occurred_at - now
        return Rejected(
            "future_timestamp",
            f"occurred_at is {ahead:.0f}s ahead of the worker clock "
            f"(tolerance {future_tolerance_s:.0f}s)",
        )
    return Accepted(event)
