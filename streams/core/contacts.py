"""Customer-side figures: active contact resolution (ACR) and repeat contacts.

A customer's tickets live on different ticket partitions, so the ticket side
forwards each ticket's ``Contact`` (a pure function of its event set) keyed by
``customer_id``; all of one customer's contacts then meet on one partition,
where these functions derive the facts. ``version`` (the size of the ticket's
event set) only grows, so the newest contact of a ticket always wins, whatever
order redeliveries bring.

ACR for N days, attributed to the first resolution of a contact that has a
``customer_id``: it is *recontacted* if the same customer opens another ticket
in (resolved, resolved + N days] or the ticket is reopened in [resolved,
resolved + N days]. The provisional figure counts at the resolution; the final
one counts when the period ends (resolved + N days): a window then holds the
contacts whose period closed in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from streams.core.events import TicketEvent
from streams.core.facts import DAY, Fact, TicketFold, ordered


class Contact(msgspec.Struct, frozen=True, gc=False):
    """What the customer side keeps of one ticket. A msgspec struct, built in C: one per
    contact forwarded and per customer row read."""

    ticket_id: str
    version: int
    opened_at: float
    queue: str
    channel: str
    resolved_at: float | None = None
    resolved_queue: str = ""
    resolved_channel: str = ""
    reopens: tuple[float, ...] = ()
    resolved_agent: str | None = None

    @property
    def latest(self) -> float:
        """The latest event time this contact knows of (drives the customer-side clock)."""
        return latest_of(self.opened_at, self.resolved_at, self.reopens)

    def key(self) -> tuple[object, ...]:
        """Everything but the version: a change here is worth forwarding."""
        return (
            self.opened_at,
            self.queue,
            self.channel,
            self.resolved_at,
            self.resolved_queue,
            self.resolved_channel,
            self.reopens,
            self.resolved_agent,
        )


def latest_of(opened_at: float, resolved_at: float | None, reopens: Sequence[float]) -> float:
    """A contact's latest event time from its fields (a stored row's too, unbuilt)."""
    return max(opened_at, resolved_at or opened_at, *reopens)


def contact_of(events: Iterable[TicketEvent]) -> tuple[str, Contact] | None:
    """(customer_id, contact) of a ticket, or None without an ``opened`` carrying a customer."""
    evs = ordered(events)
    opened = next((e for e in evs if e.type == "opened"), None)
    if opened is None:
        return None
    later = [e for e in evs if e.occurred_at >= opened.occurred_at and e is not opened]
    resolved = next((e for e in later if e.type == "resolved"), None)
    reopens = tuple(e.occurred_at for e in later if e.type == "reopened")
    return _contact(opened, len(evs), resolved, reopens)


def contact_of_fold(fold: TicketFold) -> tuple[str, Contact] | None:
    """``contact_of`` from a ticket's fold (``streams.core.facts.TicketFold``): what an
    event applied in order costs; the property tests hold the two equal."""
    if fold.opened is None:
        return None
    return _contact(fold.opened, fold.events, fold.resolution, fold.reopens)


def _contact(
    opened: TicketEvent, version: int, resolved: TicketEvent | None, reopens: tuple[float, ...]
) -> tuple[str, Contact] | None:
    if not opened.customer_id:
        return None
    return opened.customer_id, Contact(
        ticket_id=opened.ticket_id,
        version=version,
        opened_at=opened.occurred_at,
        queue=opened.queue,
        channel=opened.channel,
        resolved_at=resolved.occurred_at if resolved else None,
        resolved_queue=resolved.queue if resolved else "",
        resolved_channel=resolved.channel if resolved else "",
        reopens=reopens,
        resolved_agent=resolved.agent_id if resolved else None,
    )


def days_label(days: float) -> str:
    return str(int(days)) if float(days).is_integer() else repr(float(days))


def customer_facts(
    contacts: Sequence[Contact], recontact_days: Sequence[float], per_agent: bool = False
) -> list[Fact]:
    """ACR facts of one customer's contacts (docs/metrics.md, ACR); per resolving agent too
    with ``per_agent``."""
    out: list[Fact] = []
    for c in contacts:
        tr = c.resolved_at
        if tr is None:
            continue
        q, ch = c.resolved_queue, c.resolved_channel
        resolution = Fact(tr, "acr_resolved", q, ch)
        out.append(resolution)
        if per_agent:
            out.append(resolution.for_agent(c.resolved_agent))
        for days in recontact_days:
            label = days_label(days)
            horizon = tr + days * DAY
            recontacted = any(
                o.ticket_id != c.ticket_id and tr < o.opened_at <= horizon for o in contacts
            ) or any(tr <= r <= horizon for r in c.reopens)
            if recontacted:
                recontact = Fact(tr, "acr_recontacted", q, ch, days=label)
                out.append(recontact)
                if per_agent:
                    out.append(recontact.for_agent(c.resolved_agent))
            out.append(Fact(horizon, "acr_final", q, ch, days=label))
            if not recontacted:
                out.append(Fact(horizon, "acr_final_active", q, ch, days=label))
    return out


def repeat_contacts(
    contacts: Iterable[Contact], first: float, last: float
) -> list[tuple[str, str, str]]:
    """(figure, queue, channel) of one customer's repeat contacts opened in [first, last].

    With two or more contacts opened in the range, the customer counts once as
    ``repeat_customers`` (labelled by their first contact) and every contact after
    the first counts as ``repeat_contacts`` (labelled by its own queue and channel).
    """
    inside = sorted(
        (c.opened_at, c.ticket_id, c.queue, c.channel)
        for c in contacts
        if first <= c.opened_at < last
    )
    if len(inside) < 2:
        return []
    out = [("repeat_customers", inside[0][2], inside[0][3])]
    out += [("repeat_contacts", q, ch) for _, _, q, ch in inside[1:]]
    return out
