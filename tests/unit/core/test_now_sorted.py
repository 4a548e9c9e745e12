"""The Now figures read from sorted opening times equal the pass over every open ticket."""

from __future__ import annotations

from datetime import datetime
from random import Random
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.calendar import Calendar, parse_holidays, parse_ranges
from streams.core.now import NowFigures, OpenTicket, now_figures, sorted_figures
from streams.core.policy import Policy, QueueOverride

PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 3, 27, tzinfo=PARIS).timestamp()  # the clocks go forward on the 29th
AUTUMN = datetime(2026, 10, 23, tzinfo=PARIS).timestamp()  # and back on October 25th
OFFICE = Calendar(
    "office",
    "Europe/Paris",
    {d: parse_ranges("08:00-12:30, 13:30-18:00") for d in range(5)},
    parse_holidays(["2026-03-30"]),
)
NIGHTS = Calendar("nights", "Europe/Paris", {d: parse_ranges("22:00-06:00") for d in range(7)})
POLICY = Policy(
    queues={
        "billing": QueueOverride(calendar="office"),
        "night": QueueOverride(calendar="nights", resolution_target_s=3600),
        "fast": QueueOverride(first_response_target_s={"chat": 0.5}, resolution_target_s=0),
    },
    calendars={"office": OFFICE, "nights": NIGHTS},
)
QUEUES = ("billing", "night", "fast", "sales")
CHANNELS = ("chat", "email")

# whole and fractional seconds after a base, some after ``now`` (a clock that lags)
seconds = st.one_of(st.integers(0, 10 * 86400).map(float), st.floats(0, 10 * 86400))


def open_tickets(base: float) -> st.SearchStrategy[OpenTicket]:
    return st.builds(
        OpenTicket,
        st.sampled_from(QUEUES),
        st.sampled_from(CHANNELS),
        seconds.map(lambda s: base + s),
        st.booleans(),
    )


@st.composite
def backlogs(draw: st.DrawFn) -> tuple[float, list[OpenTicket]]:
    """(now, open tickets) around one of the year's two clock changes."""
    base = draw(st.sampled_from([T0, AUTUMN]))
    return base + draw(st.floats(0, 12 * 86400)), draw(st.lists(open_tickets(base), max_size=40))


@settings(max_examples=400, deadline=None)
@given(backlogs())
def test_sorted_figures_equal_the_pass_over_every_ticket(
    backlog: tuple[float, list[OpenTicket]],
) -> None:
    now, tickets = backlog
    expected = now_figures(tickets, now, POLICY)
    for (queue, channel), figures in expected.items():
        mine = [t for t in tickets if (t.queue, t.channel) == (queue, channel)]
        opened = sorted(t.opened_at for t in mine)
        waiting = sorted(t.opened_at for t in mine if not t.answered)
        rules = POLICY.for_queue(queue, channel)
        assert sorted_figures(opened, waiting, now, rules) == figures


@settings(max_examples=400, deadline=None)
@given(backlogs(), st.sampled_from(QUEUES), st.sampled_from(CHANNELS), st.randoms())
def test_two_series_added_up_equal_one_series_of_all_their_tickets(
    backlog: tuple[float, list[OpenTicket]], queue: str, channel: str, rnd: Random
) -> None:
    """Tickets under the same rules (one queue's, or queues folded into one label) split into
    two series in any way: the two series' figures added up are the figures of one series of
    all of them, so a label's series may be kept whole or in parts."""
    now, tickets = backlog
    rules = POLICY.for_queue(queue, channel)
    parts: tuple[list[OpenTicket], list[OpenTicket]] = ([], [])
    for t in tickets:
        parts[rnd.random() < 0.5].append(t)

    def figures(some: list[OpenTicket]) -> NowFigures:
        opened = sorted(t.opened_at for t in some)
        waiting = sorted(t.opened_at for t in some if not t.answered)
        return sorted_figures(opened, waiting, now, rules)

    total = figures(parts[0])
    total.add(figures(parts[1]))
    assert total == figures(tickets)


def test_a_ticket_at_the_target_is_no_breach_and_one_past_it_is() -> None:
    rules = POLICY.for_queue("sales", "chat")
    target = rules.resolution_target_s
    now = T0 + target + 10
    exactly, past = T0 + 10, T0 + 9.5
    figures = sorted_figures([past, exactly], [], now, rules)
    assert figures.resolution_breaches == 1
    assert figures.open == 2
    assert figures.waiting == 0
    assert figures.oldest_wait_s == 0.0
