"""The open tickets of each partition by queue x channel, so that the Now gauges cost a
scrape a sort of each series' opening times and a few readings of its target clock, not a
pass over every held ticket with a reading for each open one (0.7 s for 100,000 open tickets
among 500,000 held, half the queues on business hours, on the event loop:
docs/performance.md).

``OpenTickets`` is told of every ticket the processor stores (``stored``: a dict insert or
removal when a ticket opens, is answered, moves or closes; most events change none of that)
and mirrors one copy of the tickets table: when the table's copy is read anew (a rebalance,
a failed batch: ``CachedTable.loads`` moves) or a partition is let go of, it starts again
from one pass over the table at its next read.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.core.now import NowFigures, OpenTicket, sorted_figures
from streams.core.policy import Policy

Series = tuple[str, str]  # (queue, channel)


def _sorted(tickets: dict[str, OpenTicket]) -> tuple[list[float], list[float]]:
    """(every ticket's opening time, the unanswered ones'), each sorted."""
    opened = sorted([t.opened_at for t in tickets.values()])
    waiting = sorted([t.opened_at for t in tickets.values() if not t.answered])
    return opened, waiting


@dataclass
class OpenTickets:
    """The open tickets of ``tickets`` (a processor's table), by partition and series."""

    tickets: MutableMapping[str, Any]
    _mirrors: int | None = None  # the table copy's ``_loads`` mirrored; None: none yet
    # key -> (its partition, its series' tickets)
    _members: dict[str, tuple[int, dict[str, OpenTicket]]] = field(default_factory=dict)
    _series: dict[int, dict[Series, dict[str, OpenTicket]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a table copy counts how often it was read from its store (``CachedTable.loads``);
        # a plain dict is never read anew. Asked once: a failed getattr per record costs
        self._counts_loads = hasattr(self.tickets, "loads")

    def _loads(self) -> int:
        return int(self.tickets.loads) if self._counts_loads else 0  # type: ignore[attr-defined]

    def stored(self, partition: int, key: str, summary: OpenTicket | None) -> None:
        """Ticket ``key`` was stored, open (``summary``) or not (None): told when it opens,
        is answered, moves or closes (most events change none of that)."""
        if self._mirrors is None or self._mirrors != self._loads():
            return  # not mirroring this copy: the next read starts from it
        self._drop(key)
        if summary is not None:
            self._add(partition, key, summary)

    def forget(self) -> None:
        """Start again from the table at the next read (a partition was let go of)."""
        self._mirrors = None
        self._members.clear()
        self._series.clear()

    @property
    def mirroring(self) -> bool:
        """Whether it mirrors the table's present copy (else its next read starts with a pass)."""
        return self._mirrors is not None and self._mirrors == self._loads()

    def figures(
        self, ends: dict[int, float], policy: Policy
    ) -> dict[int, dict[Series, NowFigures]]:
        """The Now figures of each partition of ``ends`` at its clock's end."""
        self.mirror()
        out: dict[int, dict[Series, NowFigures]] = {}
        for partition, now in ends.items():
            figures = out[partition] = {}
            for (queue, channel), tickets in self._series.get(partition, {}).items():
                rules = policy.for_queue(queue, channel)
                figures[queue, channel] = sorted_figures(*_sorted(tickets), now, rules)
        return out

    def mirror(self) -> None:
        """Start from one pass over the table when not mirroring its copy (the worker's
        warm-up does it after a rebalance, so that the next scrape does not)."""
        size = len(self.tickets)  # reads a copy in when the table has none
        if self._mirrors == self._loads():
            return
        self.forget()
        if size:
            for key, held in list(self.tickets.items()):
                if held.open is not None:
                    self._add(held.partition, key, held.open)
        self._mirrors = self._loads()

    def _add(self, partition: int, key: str, summary: OpenTicket) -> None:
        series = self._series.get(partition)
        if series is None:
            series = self._series[partition] = {}
        name = (summary.queue, summary.channel)
        held = series.get(name)
        if held is None:
            held = series[name] = {}
        held[key] = summary
        self._members[key] = (partition, held)

    def _drop(self, key: str) -> None:
        member = self._members.pop(key, None)
        if member is None:
            return
        partition, held = member
        summary = held.pop(key)
        if not held:
            del self._series[partition][summary.queue, summary.channel]
