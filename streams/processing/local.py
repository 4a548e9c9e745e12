"""The whole KPI pipeline in one process over plain dicts, on one partition.

What a worker does across two agents and a topic, done in place: each event goes
through the ticket processor and a changed contact goes straight to the customer
processor (its offsets numbered in forwarding order, as the contacts topic would).
Used by ``ticketpulse report``, the bench's "core alone" row and tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from streams.core.events import TicketEvent
from streams.processing.customers import CustomerProcessor, CustomerTables
from streams.processing.kpi import KpiProcessor, Processed, Tables
from streams.processing.settings import KpiSettings


@dataclass
class LocalPipeline:
    settings: KpiSettings = field(default_factory=KpiSettings)
    forwarded: int = 0

    def __post_init__(self) -> None:
        self.tickets = KpiProcessor(Tables(), self.settings)
        self.customers = CustomerProcessor(CustomerTables(), self.settings)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """As the worker's batches: each bucket changed inside is written once, at the end."""
        with self.tickets.batch(), self.customers.batch():
            yield

    def process(self, offset: int, event: TicketEvent) -> Processed:
        done = self.tickets.process(0, offset, event)
        if done.contact is not None:
            self.customers.process(0, self.forwarded, *done.contact)
            self.forwarded += 1
        if done.watermark is not None:  # the worker forwards a mark (streams.runtime.worker)
            self.customers.advance(0, self.forwarded, done.watermark)
            self.forwarded += 1
        return done
