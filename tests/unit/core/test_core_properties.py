"""Hypothesis properties of the pure core: order, duplicates and grouping change nothing."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.buckets import changes, delta, fold, merge
from streams.core.events import TicketEvent
from streams.core.facts import ticket_facts
from streams.core.policy import Policy

POLICY = Policy()
BOUNDS = POLICY.bounds()

T0 = 1_800_000_000.0


@st.composite
def ticket_events(draw: st.DrawFn) -> list[TicketEvent]:
    """A plausible ticket: opened first in time, then a random mix of later events."""
    n = draw(st.integers(0, 8))
    events = [TicketEvent("e0", "opened", "T", T0, "sales", "chat", tags=("complaint",))]
    for i in range(1, n + 1):
        kind = draw(
            st.sampled_from(
                [
                    "replied",
                    "transferred",
                    "resolved",
                    "reopened",
                    "abandoned",
                    "survey",
                    "assigned",
                ]
            )
        )
        t = T0 + draw(st.integers(0, 7200))
        extra: dict[str, object] = {}
        if kind == "replied":
            extra["author"] = draw(st.sampled_from(["agent", "bot", "customer"]))
        if kind == "transferred":
            extra.update(to_queue="tier2", escalation=draw(st.booleans()))
        if kind == "survey":
            extra.update(survey_kind="csat", score=draw(st.integers(1, 5)))
        if kind == "assigned":
            extra["agent_id"] = "A"
        if draw(st.booleans()):
            extra["handle_seconds"] = float(draw(st.integers(0, 600)))
        events.append(TicketEvent(f"e{i}", kind, "T", t, "sales", "chat", **extra))  # type: ignore[arg-type]
    return events


@given(ticket_events(), st.randoms())
def test_facts_ignore_arrival_order_and_duplicates(events: list[TicketEvent], rnd) -> None:
    shuffled = events + rnd.sample(events, k=len(events) // 2)  # redeliveries
    rnd.shuffle(shuffled)
    assert sorted(ticket_facts(shuffled, POLICY)) == sorted(ticket_facts(events, POLICY))


@given(ticket_events())
def test_first_response_is_the_first_agent_reply(events: list[TicketEvent]) -> None:
    facts = ticket_facts(events, POLICY)
    firsts = [f for f in facts if f.name == "first_response"]
    agent = [e.occurred_at for e in events if e.type == "replied" and e.author == "agent"]
    assert len(firsts) == (1 if agent else 0)
    if agent:
        assert firsts[0].value == min(agent) - T0
    assert sum(1 for f in facts if f.name == "offered") == 1


@given(ticket_events(), ticket_events())
def test_incremental_deltas_equal_a_fresh_fold(a: list[TicketEvent], b: list[TicketEvent]) -> None:
    """Event by event (retract old facts, add new) ends where a fresh fold does."""
    events = a + [
        TicketEvent(
            f"x{e.event_id}",
            e.type,
            e.ticket_id,
            e.occurred_at,
            e.queue,
            e.channel,
            author=e.author,
            to_queue=e.to_queue,
            survey_kind=e.survey_kind,
            score=e.score,
            agent_id=e.agent_id,
        )
        for e in b[1:]
    ]
    live: dict = {}
    seen: list[TicketEvent] = []
    old: list = []
    for e in events:
        seen.append(e)
        new = ticket_facts(seen, POLICY)
        retract, extra = delta(old, new)
        fold(live, changes(retract, extra, 60, BOUNDS))  # as the worker's bucket store does
        old = new
    fresh: dict = {}
    fold(fresh, changes((), ticket_facts(events, POLICY), 60, BOUNDS))
    assert live.keys() == fresh.keys()
    for key, (total, count) in fresh.items():
        assert live[key][1] == count
        assert math.isclose(live[key][0], total, abs_tol=1e-6)


bucket_maps = st.dictionaries(
    st.tuples(
        st.integers(0, 5).map(lambda i: i * 60),
        st.sampled_from(["offered", "resolved"]),
        st.sampled_from(["q1", "q2"]),
        st.just("chat"),
    ),
    st.tuples(st.integers(-50, 50).map(float), st.integers(1, 9)),
    max_size=6,
)


@settings(max_examples=200)
@given(bucket_maps, bucket_maps, bucket_maps)
def test_merge_is_associative_and_commutative(a, b, c) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, b) == merge(b, a)
    assert merge(a, {}) == merge(a)
