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

Series are kept per exported label (``label_with``: the exporter's queue cap and allow-list)
and rules: the open tickets of every queue folded into ``other`` that shares the default
rules are one series, so a scrape's cost follows the series exported, not the queue names a
producer sent (row 11 of docs/reliability.md: 100,000 names, one ticket each, cost a scrape
0.6 s as 100,000 series). One series of tickets that share their rules has the figures of
its queues' series added up (``NowFigures.add``): a ticket's breaches and wait depend only
on its opening time and its rules.

Each series' sorted opening times are kept from one scrape to the next until a ticket of it
changes, so a scrape sorts only the series changed since the last one: a quiet queue costs a
few readings of its clock (row 11: 100,000 open tickets folded into ``other`` cost 15-20 ms
of sorting a scrape, in-process, when nothing had changed since the last).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.core.now import NowFigures, OpenTicket, sorted_figures
from streams.core.policy import Policy
from streams.processing.held_tickets import HeldTicket, TicketRecord

Series = tuple[str, str]  # (queue label, channel)
# (queue label, channel, the queue if it has rules of its own): tickets that share rules
Group = tuple[str, str, str | None]


def _sorted(tickets: dict[str, OpenTicket]) -> tuple[list[float], list[float]]:
    """(every ticket's opening time, the unanswered ones'), each sorted."""
    if len(tickets) == 1:  # a series of one (a table of many queue names): no sorting
        (only,) = tickets.values()
        opened = [only.opened_at]
        return opened, [] if only.answered else opened
    opened = sorted([t.opened_at for t in tickets.values()])
    waiting = sorted([t.opened_at for t in tickets.values() if not t.answered])
    return opened, waiting


@dataclass
class OpenTickets:
    """The open tickets of ``tickets`` (a processor's table), by partition and series."""

    tickets: MutableMapping[str, Any]
    _mirrors: int | None = None  # the table copy's ``_loads`` mirrored; None: none yet
    _series: dict[int, dict[Group, dict[str, OpenTicket]]] = field(default_factory=dict)
    # each series' ``_sorted`` times as its last scrape read them; dropped when it changes
    _sorted_of: dict[tuple[int, Group], tuple[list[float], list[float]]] = field(
        default_factory=dict
    )
    _unread: list[str] = field(default_factory=list)  # keys a pass begun has still to read
    slice_keys: int = 20_000  # keys a pass reads between pauses (``mirror_in_slices``)
    label: Callable[[str], str] = str  # a queue's exported label (``label_with``)
    own_rules: Container[str] = frozenset()  # the queues with rules of their own

    def __post_init__(self) -> None:
        # a table copy counts how often it was read from its store (``CachedTable.loads``);
        # a plain dict is never read anew. Asked once: a failed getattr per record costs
        self._counts_loads = hasattr(self.tickets, "loads")

    def _loads(self) -> int:
        return int(self.tickets.loads) if self._counts_loads else 0  # type: ignore[attr-defined]

    def stored(self, key: str, before: HeldTicket | None, after: TicketRecord) -> None:
        """Ticket ``key`` was stored: held as ``before`` (None: not held) until now, as
        ``after`` from now on (each with its ``partition`` and ``open`` summary). Told when
        it opens, is answered, moves or closes (most events change none of that). Mirroring
        the table, the index holds ``before`` as it is: no map of its own from key to series
        (in a table of 100,000 queue names, one ticket each, that map was a quarter of it)."""
        if self._mirrors is None or self._mirrors != self._loads():
            return  # not mirroring this copy: the next read starts from it
        if before is not None and before.open is not None:
            self._drop(before.partition, key, before.open)
        if after.open is not None:
            self._add(after.partition, key, after.open)

    def label_with(self, label: Callable[[str], str], own_rules: Container[str]) -> None:
        """Keep series per ``label`` of each queue (the same label for a queue at every
        call) and per rules (``own_rules``: the queues whose rules are not their channel's
        default, the policy's overrides); mirrored anew at the next read."""
        self.label, self.own_rules = label, own_rules
        self.forget()

    def forget(self) -> None:
        """Start again from the table at the next read (a partition was let go of)."""
        self._mirrors = None
        self._series.clear()
        self._sorted_of.clear()
        self._unread = []

    @property
    def mirroring(self) -> bool:
        """Whether it mirrors the table's present copy, its pass done (else its next read
        ends the pass, or makes one)."""
        return self._mirrors is not None and self._mirrors == self._loads() and not self._unread

    def figures(
        self, ends: dict[int, float], policy: Policy
    ) -> dict[int, dict[Series, NowFigures]]:
        """The Now figures of each partition of ``ends`` at its clock's end, by label and
        channel (``policy`` the one whose overrides ``own_rules`` names)."""
        self.mirror()
        out: dict[int, dict[Series, NowFigures]] = {}
        for partition, now in ends.items():
            figures = out[partition] = {}
            for group, tickets in self._series.get(partition, {}).items():
                label, channel, _ = group
                times = self._sorted_of.get((partition, group))
                if times is None:  # changed since the last scrape (or never read)
                    times = self._sorted_of[partition, group] = _sorted(tickets)
                some = next(iter(tickets.values())).queue  # the rules of every queue in it
                fig = sorted_figures(*times, now, policy.for_queue(some, channel))
                total = figures.get((label, channel))
                if total is None:
                    figures[label, channel] = fig
                else:  # ``other``'s queues with rules of their own, and the rest
                    total.add(fig)
        return out

    def mirror(self) -> None:
        """Mirror the table's present copy, at one go: a pass over it, or the rest of one."""
        for _ in self.mirror_in_slices(len(self.tickets) + 1):
            pass

    def mirror_in_slices(self, slice_keys: int | None = None) -> Iterator[None]:
        """A pass over the table, yielding after every ``slice_keys`` keys (the worker's
        warm-up pauses there after a rebalance: 0.7 s at one go for 500,000 held tickets,
        docs/performance.md). It mirrors from its start: a ticket stored meanwhile is told
        as any other, and each key is read as the table holds it when the pass reaches it,
        so keys stored, closed or retired in between come out as the table has them. Given
        up when the table's copy is read anew meanwhile (the next read starts again)."""
        if len(self.tickets) and self.mirroring:  # ``len`` reads a copy in when none is held
            return
        if self._mirrors != self._loads():
            self.forget()
            self._mirrors = self._loads()
            self._unread = list(self.tickets)
        step = slice_keys or self.slice_keys
        while self._unread:
            if self._mirrors != self._loads():
                return  # read anew meanwhile: this pass is of a copy gone
            keys = self._unread[-step:]
            del self._unread[-step:]
            for key in keys:
                self._read(key)
            if self._unread:
                yield

    def _read(self, key: str) -> None:
        """Key ``key`` as the table holds it now (stored meanwhile, it is held so already)."""
        held = self.tickets.get(key)
        if held is not None and held.open is not None:
            self._add(held.partition, key, held.open)

    def _add(self, partition: int, key: str, summary: OpenTicket) -> None:
        series = self._series.get(partition)
        if series is None:
            series = self._series[partition] = {}
        name = self._group(summary)
        held = series.get(name)
        if held is None:
            held = series[name] = {}
        held[key] = summary
        self._sorted_of.pop((partition, name), None)

    def _drop(self, partition: int, key: str, summary: OpenTicket) -> None:
        series = self._series.get(partition, {})
        name = self._group(summary)
        held = series.get(name)
        if held is not None and held.pop(key, None) is not None:
            self._sorted_of.pop((partition, name), None)
            if not held:
                del series[name]

    def _group(self, summary: OpenTicket) -> Group:
        queue = summary.queue
        own = queue if queue in self.own_rules else None
        return self.label(queue), summary.channel, own
