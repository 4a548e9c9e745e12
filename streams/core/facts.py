"""Ticket facts: what a ticket contributes to the figures, from the set of its events.

Facts are a pure function of the *set* of a ticket's events (deduplicated by
``event_id``, sorted by event time), so arrival order, redelivery and duplicates
cannot change them. When an event arrives, the adapter recomputes the ticket's
facts and applies the difference (new minus old) to the additive buckets: a
late correction, such as a reopen that cancels an FCR, lands in the bucket of
the resolution it corrects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.core.events import TicketEvent


@dataclass(frozen=True, slots=True, order=True)
class Fact:
    """One countable thing, attributed to an event time, a queue and a channel.

    ``name`` is the counter (``offered``, ``first_response`` ...); ``value`` the
    amount to sum (seconds for durations, 1 for counts).
    """

    at: float
    name: str
    queue: str
    channel: str
    value: float = 1.0


def _ordered(events: Iterable[TicketEvent]) -> list[TicketEvent]:
    unique = {e.event_id: e for e in events}
    return sorted(unique.values(), key=lambda e: (e.occurred_at, e.event_id))


def ticket_facts(events: Iterable[TicketEvent], *, complaint_tag: str = "complaint") -> list[Fact]:
    """All facts of one ticket. Pure: same event set, same facts, whatever the order."""
    ordered = _ordered(events)
    opened = next((e for e in ordered if e.type == "opened"), None)
    if opened is None:
        return []  # nothing is attributed before the ticket is known to exist
    facts: list[Fact] = [Fact(opened.occurred_at, "offered", opened.queue, opened.channel)]
    if complaint_tag in opened.tags:
        facts.append(Fact(opened.occurred_at, "complaints", opened.queue, opened.channel))
    answered = False
    waiting_since: float | None = opened.occurred_at
    transferred = False
    resolved_at: float | None = None
    for e in ordered:
        if e.occurred_at < opened.occurred_at:
            continue
        q, ch, t = e.queue, opened.channel, e.occurred_at
        if e.handle_seconds is not None:
            facts.append(Fact(t, "handle_seconds", q, ch, e.handle_seconds))
        if e.type == "replied" and e.author == "agent":
            if not answered:
                answered = True
                facts.append(Fact(t, "first_response", q, ch, t - opened.occurred_at))
            if waiting_since is not None:
                facts.append(Fact(t, "reply_wait", q, ch, t - waiting_since))
                waiting_since = None
        elif e.type == "replied" and e.author == "customer" and waiting_since is None:
            waiting_since = t
        elif e.type == "abandoned":
            name = "disconnects" if answered else "abandoned"
            facts.append(Fact(t, name, q, ch, t - opened.occurred_at))
        elif e.type == "transferred":
            transferred = True
            facts.append(Fact(t, "transfers_out", q, ch))
            if e.escalation:
                facts.append(Fact(t, "escalations", q, ch))
        elif e.type == "resolved" and resolved_at is None:
            resolved_at = t
            facts.append(Fact(t, "resolved", q, ch, t - opened.occurred_at))
            reopened = any(x.type == "reopened" and x.occurred_at >= t for x in ordered)
            if not transferred and not reopened:
                facts.append(Fact(t, "resolved_first_contact", q, ch))
        elif e.type == "reopened":
            facts.append(Fact(t, "reopens", q, ch))
        elif e.type == "survey" and e.survey_kind is not None and e.score is not None:
            facts.append(Fact(t, f"{e.survey_kind}_responses", q, ch))
            facts.append(Fact(t, f"{e.survey_kind}_score_sum", q, ch, float(e.score)))
    return facts
