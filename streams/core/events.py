"""The ticket event as the core sees it: typed, immutable, time as epoch seconds.

Field names mirror ``schemas/ticket-event.v1.json`` exactly (a test enforces it);
the schema is the single source of truth and this is its typed mirror.
"""

from __future__ import annotations

from sys import intern
from typing import Literal, get_args

import msgspec

EventType = Literal[
    "opened", "assigned", "replied", "transferred", "resolved", "reopened", "abandoned", "survey"
]
Channel = Literal["phone", "chat", "email", "messaging", "social", "web", "other"]
Author = Literal["agent", "bot", "customer"]
SurveyKind = Literal["csat", "nps", "ces"]
Priority = Literal["low", "normal", "high", "urgent"]

EVENT_TYPES: tuple[str, ...] = get_args(EventType)
CHANNELS: tuple[str, ...] = get_args(Channel)


class TicketEvent(msgspec.Struct, frozen=True, order=True, array_like=True, gc=False):
    """One validated lifecycle event. ``occurred_at`` is event time in epoch seconds.

    A msgspec struct: built for every record and rebuilt from the tickets table, so cheap
    construction matters, and a worker holds millions of them, so it is invisible to the
    garbage collector (``gc=False``: it holds only strings and numbers, so it can be in no
    reference cycle). A tracked object costs every young collection a visit, and the
    soak's collections grew to 2 s (docs/reliability.md). Stored as a JSON array, as the
    named tuple it replaces was.
    """

    event_id: str
    type: EventType
    ticket_id: str
    occurred_at: float
    queue: str
    channel: Channel
    customer_id: str | None = None
    agent_id: str | None = None
    priority: Priority | None = None
    tags: tuple[str, ...] = ()
    handle_seconds: float | None = None
    author: Author | None = None
    to_queue: str | None = None
    to_agent: str | None = None
    escalation: bool = False
    survey_kind: SurveyKind | None = None
    score: int | None = None


def shared_event(
    event_id: str,
    type: str,
    ticket_id: str,
    occurred_at: float,
    queue: str,
    channel: str,
    customer_id: str | None = None,
    agent_id: str | None = None,
    priority: str | None = None,
    tags: tuple[str, ...] = (),
    handle_seconds: float | None = None,
    author: str | None = None,
    to_queue: str | None = None,
    to_agent: str | None = None,
    escalation: bool = False,
    survey_kind: str | None = None,
    score: int | None = None,
) -> TicketEvent:
    """The event, in field order, with its repeating strings shared (``sys.intern``): a
    worker holds millions of events whose type, ticket, queue, channel, customer and agent
    repeat, and a str of its own in each was half of what a held ticket cost (40.7 of 85.8 MB
    after 100,000 simulated events). Interned strings are still freed with their last user."""
    return TicketEvent(
        event_id,
        intern(type),  # type: ignore[arg-type]
        intern(ticket_id),
        occurred_at,
        intern(queue),
        intern(channel),  # type: ignore[arg-type]
        # most of these are None: a test inline, cheaper than a call each
        None if customer_id is None else intern(customer_id),
        None if agent_id is None else intern(agent_id),
        None if priority is None else intern(priority),  # type: ignore[arg-type]
        tuple(map(intern, tags)) if tags else (),
        handle_seconds,
        None if author is None else intern(author),  # type: ignore[arg-type]
        None if to_queue is None else intern(to_queue),
        None if to_agent is None else intern(to_agent),
        escalation,
        None if survey_kind is None else intern(survey_kind),  # type: ignore[arg-type]
        score,
    )


def with_shared_strings(event: TicketEvent) -> TicketEvent:
    """``shared_event`` of a decoded event (a stored row's)."""
    return shared_event(*msgspec.structs.astuple(event))
