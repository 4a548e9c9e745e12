"""One step of a ticket's life: apply an event delivered at a source offset.

The stored ticket keeps each event with the offset that added it. A redelivered
record (offset <= the ticket's last offset) therefore sees the ticket as it was
before that record and derives the very same delta, so every table key can skip
what it already applied: crash replays are exact, not approximately right.
"""

from __future__ import annotations

from operator import attrgetter, itemgetter
from typing import Literal

import msgspec

from streams.core.buckets import delta
from streams.core.contacts import Contact, contact_of, contact_of_fold
from streams.core.events import TicketEvent
from streams.core.facts import Fact, TicketFold, ordered, ticket_facts
from streams.core.now import OpenTicket, open_of_fold
from streams.core.policy import Policy

_EVENT = itemgetter(0)  # of an (event, offset) pair
_EVENT_ID = attrgetter("event_id")
_OCCURRED_AT = attrgetter("occurred_at")


class StoredTicket(msgspec.Struct, frozen=True, gc=False):
    events: tuple[tuple[TicketEvent, int], ...]  # (event, offset that added it)
    last_offset: int
    # the latest event time among ``events``, kept as each is added: retention and packing
    # read it for every applied record, and a pass over the events touched each of them
    newest: float = float("-inf")

    @classmethod
    def of(cls, events: tuple[tuple[TicketEvent, int], ...], last_offset: int) -> StoredTicket:
        """A ticket read back whole (a stored row): its newest time found once."""
        newest = max(map(_OCCURRED_AT, map(_EVENT, events)), default=float("-inf"))  # in C
        return cls(events, last_offset, newest)

    def upto(self, offset: int) -> list[TicketEvent]:
        """The ticket as it was before the record at ``offset`` was processed."""
        if self.last_offset < offset:  # not a replay: every event (a loop in C)
            return list(map(_EVENT, self.events))
        return [e for e, o in self.events if o < offset]


Outcome = Literal["applied", "duplicate", "late"]
CONTACT_EVENTS = frozenset({"opened", "resolved", "reopened"})  # the only ones a Contact reads


class Step(msgspec.Struct, frozen=True, gc=False):
    """One event's outcome. A msgspec struct: built once per event, in C (a frozen
    dataclass set each of its seven fields through ``object.__setattr__``, 0.8 µs)."""

    outcome: Outcome
    retract: tuple[Fact, ...] = ()
    add: tuple[Fact, ...] = ()
    ticket: StoredTicket | None = None  # the value to store, or None to leave it as it is
    contact: tuple[str, Contact] | None = None  # (customer_id, contact) to forward when changed
    fold: TicketFold | None = None  # facts and state of ``ticket`` (when set), for the next step
    open: OpenTicket | None = None  # ``ticket`` (when set) is open: its summary


def step(
    stored: StoredTicket | None,
    event: TicketEvent,
    offset: int,
    *,
    watermark: float,
    lateness_s: float,
    policy: Policy,
    known: TicketFold | None = None,
) -> Step:
    """Late beyond ``lateness_s`` behind the partition watermark: counted, not applied.

    ``known``: the fold of all of ``stored``'s events, when the caller kept it from the
    previous step (else it is folded here, once). An event that sorts after all of them is
    then folded in O(1); any other (or a replay) costs the fold from scratch.
    """
    if event.occurred_at < watermark - lateness_s:
        return Step("late")
    replaying = stored is not None and stored.last_offset >= offset
    if _seen(stored, offset, replaying, event.event_id):
        return Step("duplicate")
    if stored is None:
        known = TicketFold(policy)
    elif known is None and not replaying:  # read back (a restart, a shelved ticket): fold once
        known = TicketFold.of(ordered(stored.upto(offset)), policy)
    contact: tuple[str, Contact] | None = None
    if known is not None and not replaying and known.follows(event):
        fold, retract, add = known.then(event)
        if event.type in CONTACT_EVENTS:
            contact = _changed(contact_of_fold(known), contact_of_fold(fold))
    else:
        prior = stored.upto(offset) if stored is not None else []
        old = known.facts if known is not None and not replaying else ticket_facts(prior, policy)
        fold = TicketFold.of(ordered([*prior, event]), policy)
        retract, add = delta(old, fold.facts)
        contact = _changed_contact(prior, event)
    ticket, summary = None, None
    if not replaying:
        base = stored.events if stored is not None else ()
        at = event.occurred_at
        newest = at if stored is None or stored.newest < at else stored.newest
        ticket = StoredTicket((*base, (event, offset)), offset, newest)
        summary = open_of_fold(fold)  # not a replay: the fold holds every stored event
    return Step("applied", tuple(retract), tuple(add), ticket, contact, fold, summary)


def _seen(stored: StoredTicket | None, offset: int, replaying: bool, event_id: str) -> bool:
    """The ticket as it was before ``offset`` holds an event with this id. A plain loop over
    the stored pairs: a ticket holds a few events (4 on average when the next one comes, in
    the bench's log), and two ``map`` objects built per call cost more than they saved."""
    if stored is None:
        return False
    if replaying:  # the events before it only
        return event_id in map(_EVENT_ID, stored.upto(offset))
    for event, _ in stored.events:  # noqa: SIM110 - any() and its generator: 3x the time
        if event.event_id == event_id:
            return True
    return False


def _changed_contact(prior: list[TicketEvent], event: TicketEvent) -> tuple[str, Contact] | None:
    if event.type not in CONTACT_EVENTS:
        return None
    after = contact_of([*prior, event])
    return None if after is None else _changed(contact_of(prior), after)


def _changed(
    before: tuple[str, Contact] | None, after: tuple[str, Contact] | None
) -> tuple[str, Contact] | None:
    """``after`` when it differs from ``before`` in anything but the version."""
    if after is None:
        return None
    same = before is not None and (before[0], before[1].key()) == (after[0], after[1].key())
    return None if same else after
