"""Ticket facts: what a ticket contributes to the figures, from the set of its events.

Facts are a pure function of the *set* of a ticket's events (deduplicated by
``event_id``, ordered by event time) and the policy, so arrival order,
redelivery and duplicates cannot change them. When an event arrives, the worker
recomputes the ticket's facts and applies the difference (new minus old) to the
additive buckets: a late correction, such as a reopen that cancels an FCR, lands
in the bucket of the resolution it corrects.

Every fact is attributed to one event: its time, and the queue and channel that
event carries. docs/metrics.md defines each name. With ``policy.per_agent``, first
responses and handling periods also count as ``agent_<name>`` facts carrying the agent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from streams.core.events import TicketEvent
from streams.core.policy import Policy

DAY = 86400.0
UNKNOWN_AGENT = "unknown"


class Fact(NamedTuple):
    """One countable thing: ``value`` is summed (seconds for durations, 1 for counts).

    A tuple, so hashing and comparing facts (``buckets.delta`` does both for every
    event) runs in C.
    """

    at: float
    name: str
    queue: str
    channel: str
    value: float = 1.0
    days: str = ""  # the ACR period of an ACR fact (``contacts.days_label``)
    agent: str = ""  # the agent of a per-agent twin (``agent_<name>``)

    def for_agent(self, agent_id: str | None) -> Fact:
        """The per-agent twin: ``agent_<name>``, carrying the agent (or "unknown")."""
        return self._replace(name=f"agent_{self.name}", agent=agent_id or UNKNOWN_AGENT)


PER_AGENT = frozenset({"first_response", "handled"})


def ordered(events: Iterable[TicketEvent]) -> list[TicketEvent]:
    """Deduplicate by event_id (first wins) and sort by time; ``opened`` first on a tie."""
    unique: dict[str, TicketEvent] = {}
    for e in events:
        unique.setdefault(e.event_id, e)
    return sorted(unique.values(), key=_order)


def _order(e: TicketEvent) -> tuple[float, bool, str]:
    return (e.occurred_at, e.type != "opened", e.event_id)  # False sorts first: opened


def ticket_facts(events: Iterable[TicketEvent], policy: Policy) -> list[Fact]:
    """All facts of one ticket. Events before ``opened`` contribute nothing."""
    return facts_of_ordered(ordered(events), policy)


def facts_of_ordered(evs: list[TicketEvent], policy: Policy) -> list[Fact]:
    """``ticket_facts`` of events already ``ordered`` (a caller deriving more from them)."""
    opened = next((e for e in evs if e.type == "opened"), None)
    if opened is None:
        return []
    start = opened.occurred_at
    evs = [e for e in evs if e.occurred_at >= start and e is not opened]
    out: list[Fact] = []
    append, per_agent, rules_of = out.append, policy.per_agent, policy.for_queue

    def fact(e: TicketEvent, name: str, value: float = 1.0) -> None:
        f = Fact(e.occurred_at, name, e.queue, e.channel, value)
        append(f)
        if per_agent and name in PER_AGENT:
            append(f.for_agent(e.agent_id))

    fact(opened, "offered")
    if policy.complaint_tag in opened.tags:
        fact(opened, "complaints")
    answered = ended = transferred = False
    resolved_at: float | None = None
    waiting_since: float | None = start
    handle = opened.handle_seconds or 0.0
    for e in evs:
        if e.handle_seconds:
            handle += e.handle_seconds
        if e.type == "replied" and e.author == "agent":
            if not answered:
                answered = True
                rules = rules_of(e.queue, e.channel)  # the answering queue's target and hours
                wait = rules.elapsed(start, e.occurred_at)
                fact(e, "first_response", wait)
                if wait <= rules.first_response_target_s:
                    fact(e, "first_response_within_target")
            if waiting_since is not None:
                fact(e, "reply_wait", e.occurred_at - waiting_since)
                waiting_since = None
        elif e.type == "replied" and e.author == "customer" and waiting_since is None:
            waiting_since = e.occurred_at
        elif e.type == "abandoned" and not ended:
            ended = True
            wait = e.occurred_at - start
            if answered:
                fact(e, "disconnects", wait)
                fact(e, "handled", handle)
                handle = 0.0
            else:
                fact(e, "abandoned", wait)
                if wait < rules_of(e.queue, e.channel).short_abandon_s:
                    fact(e, "short_abandoned", wait)
        elif e.type == "transferred":
            transferred = True
            fact(e, "transfers_out")
            if e.escalation:
                fact(e, "escalations")
            fact(e, "handled", handle)
            handle = 0.0
        elif e.type == "resolved":
            fact(e, "handled", handle)
            handle = 0.0
            if resolved_at is None:
                resolved_at = e.occurred_at
                rules = rules_of(e.queue, e.channel)  # the resolving queue's target and hours
                took = rules.elapsed(start, resolved_at)
                fact(e, "resolved", took)
                if took <= rules.resolution_target_s:
                    fact(e, "resolved_within_target")
                horizon = resolved_at + policy.fcr_days * DAY
                reopened = any(
                    x.type == "reopened" and resolved_at <= x.occurred_at <= horizon for x in evs
                )
                if not transferred and not reopened:
                    fact(e, "resolved_first_contact")
        elif e.type == "reopened":
            fact(e, "reopens")
        elif e.type == "survey" and e.survey_kind is not None and e.score is not None:
            for name in survey_facts(e.survey_kind, e.score):
                fact(e, name, float(e.score) if name.endswith("_responses") else 1.0)
    return out


def survey_facts(kind: str, score: int) -> list[str]:
    """``<kind>_responses`` (value = score) plus the category a score falls in."""
    names = [f"{kind}_responses"]
    if kind == "csat" and score >= 4:
        names.append("csat_satisfied")
    elif kind == "nps" and score >= 9:
        names.append("nps_promoters")
    elif kind == "nps" and score <= 6:
        names.append("nps_detractors")
    return names
