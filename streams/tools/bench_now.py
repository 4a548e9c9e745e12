"""Bench: the Now gauges of a worker holding a large backlog, in-process (no Kafka).

The bench's log leaves a few thousand tickets open; a helpdesk with a long email backlog
holds a hundred thousand, on business-hours calendars. This measures what those cost a
scrape: the pass over every held ticket that scrapes made until 2026-12-06 (one target-clock
reading per open ticket), against ``OpenTickets`` (a sort of each series' opening times and
a few readings per series), on the same tickets: with a ticket of every series stored since
the last scrape (each series sorted again: a busy helpdesk's scrape), and with none (each
series' sorted times kept from the last scrape).
"""

from __future__ import annotations

import random
import statistics
import time

from streams.core.calendar import Calendar, parse_ranges
from streams.core.now import NowFigures, OpenTicket
from streams.core.policy import Policy, QueueOverride
from streams.core.ticket import StoredTicket
from streams.processing.held_tickets import HeldTicket, ShelvedTicket, TicketRecord
from streams.processing.kpi import figures_by_pass
from streams.processing.open_tickets import OpenTickets

OPEN, HELD, PARTITIONS, READS = 100_000, 500_000, 8, 5
QUEUES = tuple(f"queue-{i}" for i in range(10))
CHANNELS = ("phone", "chat", "email", "messaging", "web")
START, SPAN = 1_790_000_000.0, 14 * 86400.0  # opened over two weeks before the clock's end


def backlog_policy() -> Policy:
    """Half the queues on office hours with a lunch break, as the calendar row's."""
    hours = {day: parse_ranges("08:00-12:30, 13:30-18:00") for day in range(5)}
    office = Calendar("office", "Europe/Paris", hours)
    queues = {q: QueueOverride(calendar="office") for q in QUEUES[::2]}
    return Policy(queues=queues, calendars={"office": office})


def backlog(seed: int = 13) -> dict[str, HeldTicket]:
    """``OPEN`` open tickets (half answered) among ``HELD`` held, over the partitions."""
    rnd, empty = random.Random(seed), StoredTicket((), 0)
    tickets: dict[str, HeldTicket] = {}
    for i in range(HELD):
        partition = i % PARTITIONS
        if i % (HELD // OPEN) == 0:
            summary = OpenTicket(
                rnd.choice(QUEUES), rnd.choice(CHANNELS), START + rnd.uniform(0, SPAN), i % 2 == 0
            )
            tickets[f"T{i}"] = TicketRecord(partition, empty, summary)
        else:
            tickets[f"T{i}"] = ShelvedTicket(partition, START)
    return tickets


def backlog_scrape() -> dict[str, float]:
    """Seconds the Now gauges take a scrape (the median of ``READS``), both ways."""
    tickets, policy = backlog(), backlog_policy()
    ends = dict.fromkeys(range(PARTITIONS), START + SPAN)
    index = OpenTickets(tickets)
    t0 = time.perf_counter()
    figures = index.figures(ends, policy)  # the first read: one pass to mirror the table
    first = time.perf_counter() - t0
    took: dict[str, list[float]] = {"pass": [], "index": [], "quiet": []}
    for _ in range(READS):
        t0 = time.perf_counter()
        series = sum(map(len, figures_by_pass(tickets, ends, policy).values()))
        took["pass"].append(time.perf_counter() - t0)
        restore_one_of_each_series(tickets, index)
        t0 = time.perf_counter()
        index.figures(ends, policy)
        took["index"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.figures(ends, policy)  # nothing stored since
        took["quiet"].append(time.perf_counter() - t0)
    per_partition: list[dict[tuple[str, str], NowFigures]] = list(figures.values())
    return {
        "backlog_open": float(sum(f.open for fs in per_partition for f in fs.values())),
        "backlog_held": float(len(tickets)),
        "backlog_series": float(series),
        "backlog_first_s": first,
        "backlog_pass_s": statistics.median(took["pass"]),
        "backlog_index_s": statistics.median(took["index"]),
        "backlog_quiet_s": statistics.median(took["quiet"]),
    }


def restore_one_of_each_series(tickets: dict[str, HeldTicket], index: OpenTickets) -> None:
    """Store one open ticket of each partition x queue x channel again, unchanged, and tell
    the index, as the processor does when a ticket opens, is answered, moves or closes: every
    series is sorted again at the next read, as after a busy interval between scrapes."""
    first: dict[tuple[int, str, str], str] = {}
    for key, held in tickets.items():
        if held.open is not None:
            first.setdefault((held.partition, held.open.queue, held.open.channel), key)
    for key in first.values():
        before = tickets[key]
        assert isinstance(before, TicketRecord)
        after = tickets[key] = TicketRecord(before.partition, before.ticket, before.open)
        index.stored(key, before, after)
