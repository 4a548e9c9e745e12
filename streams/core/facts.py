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

import msgspec

from streams.core.events import TicketEvent
from streams.core.policy import Policy

DAY = 86400.0
UNKNOWN_AGENT = "unknown"


class Fact(msgspec.Struct, frozen=True, order=True, gc=False):
    """One countable thing: ``value`` is summed (seconds for durations, 1 for counts).

    A msgspec struct, so hashing and comparing facts (``buckets.delta`` does both for every
    event) runs in C, and invisible to the garbage collector like ``TicketEvent``.
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
        return msgspec.structs.replace(
            self, name=f"agent_{self.name}", agent=agent_id or UNKNOWN_AGENT
        )


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
    return list(TicketFold.of(evs, policy).facts)


class TicketFold(msgspec.Struct, gc=False):
    """A ticket's facts and state after its events so far, in ``ordered`` order.

    The facts are a left fold over the ordered events, so an event that sorts after every
    event folded so far (most events: they arrive in order) is applied in O(1) by
    ``then``; any other one needs the fold from scratch (``of``). A later event changes an
    earlier fact in one case only: a reopen within ``fcr_days`` of the first resolution
    takes back its ``resolved_first_contact``. Events before ``opened`` count for nothing.
    """

    policy: Policy
    facts: tuple[Fact, ...] = ()  # a tuple: untracked by the garbage collector, as the fold
    last: tuple[float, bool, str] | None = None  # order key of the newest event folded
    opened: TicketEvent | None = None
    answered: bool = False  # an agent has replied since it was opened
    ended: bool = False  # abandoned
    transferred: bool = False
    resolved_at: float | None = None  # the first resolution
    fcr: Fact | None = None  # its resolved_first_contact, while a reopen can take it back
    reopened_at: float | None = None  # the latest reopen folded
    waiting_since: float | None = None  # since when the customer waits for an agent's reply
    handle: float = 0.0  # handle seconds not yet counted in a handling period
    queue: str = ""  # where the ticket is now (after transfers)
    is_open: bool = False
    events: int = 0  # events folded, before ``opened`` too (a contact's version)
    resolution: TicketEvent | None = None  # the first resolution (a contact's)
    reopens: tuple[float, ...] = ()  # times of the reopens after ``opened``

    @classmethod
    def of(cls, evs: list[TicketEvent], policy: Policy) -> TicketFold:
        """The fold of ``ordered`` events, from scratch."""
        fold = cls(policy)
        for e in evs:
            fold.feed(e)
        return fold

    def follows(self, event: TicketEvent) -> bool:
        """``event`` sorts after every event folded: ``then`` may apply it."""
        return self.last is None or _order(event) > self.last

    def then(self, event: TicketEvent) -> tuple[TicketFold, list[Fact], list[Fact]]:
        """(the fold with ``event``, facts it takes back, facts it adds); self is unchanged
        (a record's fold is shared with the table cache until its batch is done)."""
        new = msgspec.structs.replace(self)  # every field, in C; the facts are a tuple
        retract, add = new.feed(event)
        return new, retract, add

    def feed(self, e: TicketEvent) -> tuple[list[Fact], list[Fact]]:
        """Fold one event in place (it must sort after the others): (retracted, added)."""
        self.last = _order(e)
        self.events += 1
        added: list[Fact] = []
        if self.opened is None:
            if e.type == "opened":
                self._open(e, added)
                self.facts += tuple(added)
            return [], added
        self.queue = e.to_queue if e.type == "transferred" and e.to_queue else e.queue
        if e.handle_seconds:
            self.handle += e.handle_seconds
        retract = self._apply(e, added)
        if added:
            self.facts += tuple(added)
        return retract, added

    def _fact(self, e: TicketEvent, name: str, added: list[Fact], value: float = 1.0) -> Fact:
        f = Fact(e.occurred_at, name, e.queue, e.channel, value)
        added.append(f)  # ``feed`` adds them to the facts
        if self.policy.per_agent and name in PER_AGENT:
            added.append(f.for_agent(e.agent_id))
        return f

    def _open(self, e: TicketEvent, added: list[Fact]) -> None:
        self.opened, self.queue, self.is_open = e, e.queue, True
        self.waiting_since = e.occurred_at
        self.handle = e.handle_seconds or 0.0
        self._fact(e, "offered", added)
        if self.policy.complaint_tag in e.tags:
            self._fact(e, "complaints", added)

    def _apply(self, e: TicketEvent, added: list[Fact]) -> list[Fact]:
        """The facts of one event after ``opened``; returns the facts it takes back."""
        kind = e.type
        if kind == "replied":
            self._replied(e, added)
        elif kind == "abandoned":
            self.is_open = False
            if not self.ended:
                self._abandoned(e, added)
        elif kind == "transferred":
            self.transferred = True
            self._fact(e, "transfers_out", added)
            if e.escalation:
                self._fact(e, "escalations", added)
            self._handled(e, added)
        elif kind == "resolved":
            self.is_open = False
            self._handled(e, added)
            if self.resolved_at is None:
                self._resolved(e, added)
        elif kind == "reopened":
            self.is_open = True
            self.reopened_at = e.occurred_at
            self.reopens = (*self.reopens, e.occurred_at)
            self._fact(e, "reopens", added)
            return self._take_back_fcr(e)
        elif kind == "survey" and e.survey_kind is not None and e.score is not None:
            for name in survey_facts(e.survey_kind, e.score):
                self._fact(e, name, added, float(e.score) if name.endswith("_responses") else 1.0)
        return []

    def _replied(self, e: TicketEvent, added: list[Fact]) -> None:
        if e.author == "agent":
            if not self.answered:
                self.answered = True
                rules = self.policy.for_queue(e.queue, e.channel)  # the answering queue's
                wait = rules.elapsed(self._start, e.occurred_at)
                self._fact(e, "first_response", added, wait)
                if wait <= rules.first_response_target_s:
                    self._fact(e, "first_response_within_target", added)
            if self.waiting_since is not None:
                self._fact(e, "reply_wait", added, e.occurred_at - self.waiting_since)
                self.waiting_since = None
        elif e.author == "customer" and self.waiting_since is None:
            self.waiting_since = e.occurred_at

    def _abandoned(self, e: TicketEvent, added: list[Fact]) -> None:
        self.ended = True
        wait = e.occurred_at - self._start
        if self.answered:
            self._fact(e, "disconnects", added, wait)
            self._handled(e, added)
        else:
            self._fact(e, "abandoned", added, wait)
            if wait < self.policy.for_queue(e.queue, e.channel).short_abandon_s:
                self._fact(e, "short_abandoned", added, wait)

    def _handled(self, e: TicketEvent, added: list[Fact]) -> None:
        self._fact(e, "handled", added, self.handle)
        self.handle = 0.0

    def _resolved(self, e: TicketEvent, added: list[Fact]) -> None:
        self.resolved_at, self.resolution = e.occurred_at, e
        rules = self.policy.for_queue(e.queue, e.channel)  # the resolving queue's target, hours
        took = rules.elapsed(self._start, e.occurred_at)
        self._fact(e, "resolved", added, took)
        if took <= rules.resolution_target_s:
            self._fact(e, "resolved_within_target", added)
        # a reopen folded before it sorts before it: only one at the very same time counts
        reopened = self.reopened_at is not None and self.reopened_at >= e.occurred_at
        if not self.transferred and not reopened:
            self.fcr = self._fact(e, "resolved_first_contact", added)

    def _take_back_fcr(self, e: TicketEvent) -> list[Fact]:
        """A reopen within ``fcr_days`` of the first resolution: it was no first-contact one."""
        fcr, resolved_at = self.fcr, self.resolved_at
        if fcr is None or resolved_at is None:
            return []
        if not resolved_at <= e.occurred_at <= resolved_at + self.policy.fcr_days * DAY:
            return []
        self.fcr = None
        kept = list(self.facts)
        kept.remove(fcr)
        self.facts = tuple(kept)
        return [fcr]

    @property
    def _start(self) -> float:
        assert self.opened is not None
        return self.opened.occurred_at


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
