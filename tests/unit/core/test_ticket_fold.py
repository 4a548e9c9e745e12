"""The incremental ticket step equals the fold from scratch, on any arrival order.

``step`` folds an event that sorts after all of a ticket's events in O(1)
(``TicketFold.then``) and falls back to the fold from scratch otherwise. These properties
are the proof that the fast path and the slow one agree: for any history (events before
``opened`` or no ``opened`` at all, ties in time, reopens inside and outside the FCR
period), delivered in any order, with duplicates and crash replays, the facts, the deltas,
the open summary and the contact forwarded to the customer side are those of the ticket's
event set.
"""

from __future__ import annotations

from collections import Counter

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.contacts import contact_of
from streams.core.events import TicketEvent
from streams.core.facts import DAY, TicketFold, ticket_facts
from streams.core.now import open_summary
from streams.core.policy import Policy
from streams.core.ticket import StoredTicket, step

T0 = 1_800_000_000.0
POLICIES = [Policy(), Policy(per_agent=True, fcr_days=1.0)]
KINDS = ["opened", "replied", "transferred", "resolved", "reopened", "abandoned", "survey"]
# few distinct times, so ties are common; some past a one-day FCR period
OFFSETS = [-60.0, 0.0, 0.0, 30.0, 60.0, 600.0, 3600.0, DAY + 1.0, 3 * DAY]


@st.composite
def histories(draw: st.DrawFn) -> list[TicketEvent]:
    """A ticket's distinct events, usually opened first but not always."""
    events = []
    if draw(st.integers(0, 9)):
        customer = draw(st.sampled_from([None, "C", "C"]))
        events.append(TicketEvent("e0", "opened", "T", T0, "sales", "chat", customer_id=customer))
    for i in range(1, draw(st.integers(0, 9)) + 1):
        kind = draw(st.sampled_from([*KINDS, "assigned"]))
        extra: dict[str, object] = {"agent_id": draw(st.sampled_from([None, "A", "B"]))}
        if kind == "opened":
            extra["customer_id"] = draw(st.sampled_from([None, "C", "D"]))
        if kind == "replied":
            extra["author"] = draw(st.sampled_from(["agent", "bot", "customer"]))
        if kind == "transferred":
            extra.update(to_queue="tier2", escalation=draw(st.booleans()))
        if kind == "survey":
            extra.update(survey_kind=draw(st.sampled_from(["csat", "nps"])), score=4)
        if draw(st.booleans()):
            extra["handle_seconds"] = float(draw(st.integers(0, 600)))
        at = T0 + draw(st.sampled_from(OFFSETS))
        queue = draw(st.sampled_from(["sales", "tier2"]))
        events.append(TicketEvent(f"e{i}", kind, "T", at, queue, "chat", **extra))  # type: ignore[arg-type]
    return events


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[TicketEvent], list[int]]:
    """(records in topic order, with redelivered duplicates; the order they are processed
    in, offsets into the records, where a crash rewinds to an earlier offset)."""
    events = draw(histories())
    records = draw(st.permutations(events))
    for e in draw(st.lists(st.sampled_from(events), max_size=3)) if events else []:
        records.insert(draw(st.integers(0, len(records))), e)  # a producer's retry
    order: list[int] = []
    done, crashes = 0, 0
    while done < len(records):
        order.append(done)
        done += 1
        if crashes < 3 and draw(st.integers(0, 5)) == 0:  # processing starts again at a commit
            crashes += 1
            done = draw(st.integers(0, done))
    return records, order


def multiset(facts) -> Counter:
    return Counter(facts)


@settings(max_examples=400)
@given(deliveries(), st.sampled_from(POLICIES))
def test_the_incremental_step_equals_the_fold_from_scratch(delivery, policy: Policy) -> None:
    records, order = delivery
    stored: StoredTicket | None = None
    known: TicketFold | None = None
    live: Counter = Counter()  # what the buckets hold: each record's delta, applied once
    first: dict[int, tuple[Counter, Counter]] = {}  # offset -> the delta it made first
    for offset in order:
        event = records[offset]
        result = step(stored, event, offset, watermark=T0, lateness_s=1e9, policy=policy,
                      known=known)  # fmt: skip
        delta = (multiset(result.retract), multiset(result.add))
        if offset in first:  # a replay derives the very same delta
            assert delta == first[offset]
            continue
        first[offset] = delta
        live.update(result.add)
        live.subtract(result.retract)
        if result.outcome == "applied" and result.ticket is not None:
            assert result.contact == changed_contact(stored, event)
        if result.ticket is not None:
            stored, known = result.ticket, result.fold
            assert known is not None
            events = [e for e, _ in stored.events]
            assert multiset(known.facts) == multiset(ticket_facts(events, policy))
            assert result.open == open_summary(events)
    unique = list({e.event_id: e for e in records}.values())
    assert +live == multiset(ticket_facts(unique, policy))
    assert -live == Counter()  # nothing retracted more often than added


def test_a_reopen_at_the_resolution_time_takes_back_fcr_whatever_sorts_first() -> None:
    """docs/metrics.md: a reopen within [resolution, resolution + fcr_days] means no FCR;
    at the very same time, the reopen may sort before the resolution (event_id breaks ties)."""
    opened = TicketEvent("e0", "opened", "T", T0, "sales", "chat")
    for reopen_id, resolve_id in (("a", "b"), ("b", "a")):
        resolve = TicketEvent(resolve_id, "resolved", "T", T0 + 60, "sales", "chat")
        reopen = TicketEvent(reopen_id, "reopened", "T", T0 + 60, "sales", "chat")
        names = [f.name for f in ticket_facts([opened, resolve, reopen], POLICIES[0])]
        assert "resolved" in names and "resolved_first_contact" not in names


def test_then_leaves_the_fold_it_starts_from_unchanged() -> None:
    """A record's fold is shared with the table cache until its batch is done."""
    events = [
        TicketEvent("e0", "opened", "T", T0, "sales", "chat"),
        TicketEvent("e1", "resolved", "T", T0 + 60, "sales", "chat"),
    ]
    fold = TicketFold.of(events, POLICIES[0])
    before = (list(fold.facts), fold.is_open, fold.fcr, fold.last)
    after, retract, _ = fold.then(TicketEvent("e2", "reopened", "T", T0 + 90, "sales", "chat"))
    assert [f.name for f in retract] == ["resolved_first_contact"] and after.is_open
    assert (list(fold.facts), fold.is_open, fold.fcr, fold.last) == before


def test_then_copies_every_field_of_the_fold(monkeypatch) -> None:
    """``then`` copies the fold: a field it left out would silently fall back to its
    default in every O(1) step."""
    fold = TicketFold(POLICIES[0])
    for n, f in enumerate(msgspec.structs.fields(TicketFold)):
        if f.name != "policy":  # a distinct, non-default value in every field
            value = f"field-{n}"
            setattr(fold, f.name, (value,) if f.name == "facts" else value)
    monkeypatch.setattr(TicketFold, "feed", lambda self, e: ([], []))
    copy, _, _ = fold.then(TicketEvent("e9", "replied", "T", T0, "sales", "chat"))
    assert copy is not fold
    assert msgspec.structs.astuple(copy) == msgspec.structs.astuple(msgspec.structs.replace(fold))


def changed_contact(stored: StoredTicket | None, event: TicketEvent):
    """What the customer side must be told: the ticket's contact after ``event``, when it
    differs from before in anything but its version (from the event lists, no fold)."""
    prior = [e for e, _ in stored.events] if stored is not None else []
    after = contact_of([*prior, event])
    if event.type not in ("opened", "resolved", "reopened") or after is None:
        return None
    before = contact_of(prior)
    same = before is not None and (before[0], before[1].key()) == (after[0], after[1].key())
    return None if same else after


def test_events_in_order_never_fold_from_scratch(monkeypatch) -> None:
    """The O(1) path is the one taken when events arrive in order."""
    calls = []
    monkeypatch.setattr(TicketFold, "of", classmethod(lambda cls, *a: calls.append(a)))
    kinds = ["opened", "replied", "resolved", "reopened", "resolved"]
    stored, known = None, None
    for offset, kind in enumerate(kinds):
        event = TicketEvent(f"e{offset}", kind, "T", T0 + 60 * offset, "sales", "chat",  # type: ignore[arg-type]
                            author="agent", to_queue="tier2")  # fmt: skip
        result = step(stored, event, offset, watermark=T0, lateness_s=1e9, policy=POLICIES[0],
                      known=known)  # fmt: skip
        stored, known = result.ticket, result.fold
    assert calls == []
    monkeypatch.undo()
    expected = ticket_facts([e for e, _ in stored.events], POLICIES[0])
    assert known is not None and multiset(known.facts) == multiset(expected)
    assert "resolved_first_contact" not in {f.name for f in known.facts}  # taken back


@settings(max_examples=200)
@given(deliveries())
def test_a_stored_ticket_keeps_its_newest_event_time(delivery) -> None:
    """Kept as each event is added (retention and packing read it per record), it is the
    latest time among the stored events, whatever order they came in."""
    records, order = delivery
    stored: StoredTicket | None = None
    known: TicketFold | None = None
    for offset in order:
        result = step(stored, records[offset], offset, watermark=T0, lateness_s=1e9,
                      policy=POLICIES[0], known=known)  # fmt: skip
        if result.ticket is not None:
            stored, known = result.ticket, result.fold
            assert stored.newest == max(e.occurred_at for e, _ in stored.events)


@settings(max_examples=300)
@given(deliveries(), st.sampled_from(POLICIES))
def test_a_redelivered_event_is_a_duplicate_and_changes_nothing(delivery, policy: Policy) -> None:
    """A producer's retry (the same event at a later offset) meets the ticket holding it:
    the step says "duplicate", retracts and adds nothing, and stores nothing."""
    records, order = delivery
    stored: StoredTicket | None = None
    known: TicketFold | None = None
    for offset in order:
        event = records[offset]
        result = step(stored, event, offset, watermark=T0, lateness_s=1e9, policy=policy,
                      known=known)  # fmt: skip
        replaying = stored is not None and stored.last_offset >= offset
        if not replaying and stored is not None:
            held = {e.event_id for e, _ in stored.events}
            assert (result.outcome == "duplicate") == (event.event_id in held)
        if result.outcome == "duplicate":
            assert (result.retract, result.add, result.ticket) == ((), (), None)
        if result.ticket is not None:
            stored, known = result.ticket, result.fold
