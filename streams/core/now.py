"""The "Now" figures: open and waiting tickets, oldest wait, breaches right now.

An open ticket is summarised once per change (``open_summary``); the gauges are
computed from the summaries and a ``now`` passed in, so they move with the clock
even when no event arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import msgspec

from streams.core.events import TicketEvent
from streams.core.facts import TicketFold, ordered
from streams.core.policy import Policy, QueuePolicy


class OpenTicket(msgspec.Struct, frozen=True, gc=False):
    queue: str  # where the ticket is now (after transfers)
    channel: str
    opened_at: float
    answered: bool  # an agent has replied since it was opened


def open_summary(events: Iterable[TicketEvent]) -> OpenTicket | None:
    """None when the ticket is not open (never opened, resolved or abandoned last)."""
    return open_of_ordered(ordered(events))


def open_of_ordered(evs: list[TicketEvent]) -> OpenTicket | None:
    """``open_summary`` of events already ``ordered``."""
    opened = next((e for e in evs if e.type == "opened"), None)
    if opened is None:
        return None
    is_open, answered = True, False
    queue, channel = opened.queue, opened.channel
    for e in evs:
        if e.occurred_at < opened.occurred_at or e is opened:
            continue
        queue = e.to_queue if e.type == "transferred" and e.to_queue else e.queue
        if e.type in ("resolved", "abandoned"):
            is_open = False
        elif e.type == "reopened":
            is_open = True
        elif e.type == "replied" and e.author == "agent":
            answered = True
    return OpenTicket(queue, channel, opened.occurred_at, answered) if is_open else None


def open_of_fold(fold: TicketFold) -> OpenTicket | None:
    """``open_summary`` from a ticket's fold (``streams.core.facts.TicketFold``): what an
    event applied in order costs; the property tests hold the two equal."""
    if not fold.is_open or fold.opened is None:
        return None
    opened = fold.opened
    return OpenTicket(fold.queue, opened.channel, opened.occurred_at, fold.answered)


@dataclass
class NowFigures:
    open: int = 0
    waiting: int = 0
    oldest_wait_s: float = 0.0
    # the same wait on its target's clock (business seconds on a calendar queue): what the
    # first-response target and its alerts compare with, so a closed office never pages
    oldest_wait_target_s: float = 0.0
    first_response_breaches: int = 0
    resolution_breaches: int = 0

    def add(self, other: NowFigures) -> None:
        """Another series' figures into these: counts summed, the oldest waits the longer of
        the two. Under the same rules, the figures of one series holding both's tickets."""
        self.open += other.open
        self.waiting += other.waiting
        self.oldest_wait_s = max(self.oldest_wait_s, other.oldest_wait_s)
        self.oldest_wait_target_s = max(self.oldest_wait_target_s, other.oldest_wait_target_s)
        self.first_response_breaches += other.first_response_breaches
        self.resolution_breaches += other.resolution_breaches


def now_figures(
    tickets: Iterable[OpenTicket], now: float, policy: Policy
) -> dict[tuple[str, str], NowFigures]:
    out: dict[tuple[str, str], NowFigures] = {}
    rules_of: dict[tuple[str, str], QueuePolicy] = {}  # looked up once per series, not ticket
    for t in tickets:
        key = (t.queue, t.channel)
        fig = out.get(key)
        if fig is None:
            fig = out[key] = NowFigures()
            rules_of[key] = policy.for_queue(t.queue, t.channel)
        rules = rules_of[key]
        age = max(0.0, now - t.opened_at)
        target_age = age if rules.calendar is None else rules.elapsed(t.opened_at, now)
        fig.open += 1
        if target_age > rules.resolution_target_s:
            fig.resolution_breaches += 1
        if not t.answered:
            fig.waiting += 1
            fig.oldest_wait_s = max(fig.oldest_wait_s, age)
            fig.oldest_wait_target_s = max(fig.oldest_wait_target_s, target_age)
            if target_age > rules.first_response_target_s:
                fig.first_response_breaches += 1
    return out


def sorted_figures(
    opened: Sequence[float], waiting: Sequence[float], now: float, rules: QueuePolicy
) -> NowFigures:
    """``now_figures`` of one queue x channel from the opening times of its open tickets
    (``opened``) and of those not answered yet (``waiting``), each sorted: a few readings of
    the target clock per series instead of one per ticket (a scrape read every open ticket:
    0.7 s for 100,000, half the queues on business hours, in docs/performance.md). A
    ticket's age never grows with its opening time, on either clock, so its breaches are a
    prefix of each list and its oldest wait is the first; the property tests hold this
    equal to ``now_figures``."""

    def age(at: float) -> float:
        return max(0.0, now - at)

    target_age = age if rules.calendar is None else lambda at: rules.elapsed(at, now)
    fig = NowFigures(open=len(opened), waiting=len(waiting))
    fig.resolution_breaches = _leading(
        opened, lambda at: target_age(at) > rules.resolution_target_s
    )
    if waiting:
        fig.oldest_wait_s = age(waiting[0])
        fig.oldest_wait_target_s = target_age(waiting[0])
        fig.first_response_breaches = _leading(
            waiting, lambda at: target_age(at) > rules.first_response_target_s
        )
    return fig


def _leading(items: Sequence[float], holds: Callable[[float], bool]) -> int:
    """How many of ``items`` from the first hold ``holds``, which holds for a prefix only
    (bisection: O(log n) calls)."""
    lo, hi = 0, len(items)
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(items[mid]):
            lo = mid + 1
        else:
            hi = mid
    return lo
