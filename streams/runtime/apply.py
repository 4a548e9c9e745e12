"""Step 1 of each agent's commit: one partition's records applied, as a ``Batch``.

The ingest side classifies each raw record (``streams.ingest.schema``), applies the accepted
ones to the ticket tables (``streams.processing.kpi``) and collects the rejects and the
contacts to forward, with a watermark mark to every contacts partition when the partition's
watermark moved; the customer side applies the forwarded contacts and marks
(``streams.processing.customers``). A record is anything with ``partition``, ``offset``,
``key`` and ``value``: Faust's messages in the worker (``streams.runtime.worker``). Nothing
here imports faust or kafka, so the bench's table-copies row (``streams.tools.bench_tables``)
runs this very code over dict stores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from streams.ingest.schema import Rejected, classify
from streams.processing.customers import (
    BadContactError,
    CustomerProcessor,
    WatermarkMark,
    decode_forwarded,
    encode_contact,
    encode_mark,
)
from streams.processing.kpi import KpiProcessor
from streams.processing.table_cache import TableCache
from streams.runtime.commit import Batch, Forward
from streams.runtime.state import PipelineState

T = TypeVar("T")


def _framed(
    state: PipelineState,
    cache: TableCache,
    processing: Callable[[], AbstractContextManager[None]],
    records: list[Any],
    apply: Callable[[list[Any], Batch], T],
) -> tuple[Batch, T]:
    """Both sides' frame: the copies' writes belong to the records' partition, the
    processor writes each bucket once at the end (``processing()``, its batch), then the
    changed rows are taken; a raise inside leaves the copies discarded (``TableCache.batch``)."""
    state.applied += 1
    batch = Batch(records)
    with cache.batch(records[0].partition if records else 0):
        with processing():
            result = apply(records, batch)
        batch.changes = cache.changes()
    return batch, result


@dataclass
class TicketApply:
    """Step 1 of the ingest commit, over the ticket side's table copies."""

    cache: TableCache
    processor: KpiProcessor
    state: PipelineState
    partitions: int  # of the contacts topic: a watermark mark goes to each
    future_tolerance_s: float
    max_record_bytes: int

    def __call__(self, records: list[Any]) -> Batch:
        """Classify and apply one partition's records."""
        batch, moved = _framed(self.state, self.cache, self.processor.batch, records, self._apply)
        if moved is not None:
            batch.contacts += self._marks(records[0].partition, moved)
        return batch

    def _apply(self, records: list[Any], batch: Batch) -> float | None:
        """Classify and apply each record; the partition's new watermark, if it moved."""
        state = self.state
        moved: float | None = None
        for message in records:
            now = time.time()
            state.record_offset(message.partition, message.offset)
            outcome = classify(
                message.key,
                message.value,
                now=now,
                future_tolerance_s=self.future_tolerance_s,
                max_bytes=self.max_record_bytes,
            )
            if isinstance(outcome, Rejected):
                batch.dead_letters.append((message, outcome))
                state.record_rejected(outcome.reason, now)
                continue
            state.record_accepted(message.partition, outcome.event, now)
            done = self.processor.process(message.partition, message.offset, outcome.event)
            if done.outcome != "applied":
                state.not_applied[done.outcome] += 1
            if done.contact is not None:
                customer_id, contact = done.contact
                batch.contacts.append(
                    Forward(customer_id.encode(), encode_contact(customer_id, contact))
                )
            if done.watermark is not None:
                moved = max(moved or done.watermark, done.watermark)
        return moved

    def _marks(self, source: int, watermark: float) -> list[Forward]:
        """The partition's watermark moved: tell every contacts partition (after the
        batch's contacts), so the customer figures end where the input's do."""
        value = encode_mark(source, watermark)
        return [Forward(b"~watermark", value, cp) for cp in range(self.partitions)]


@dataclass
class ContactApply:
    """Step 1 of the customer commit, over the customer side's table copies."""

    cache: TableCache
    customers: CustomerProcessor
    state: PipelineState

    def __call__(self, records: list[Any]) -> Batch:
        """Apply one contacts partition's records."""
        batch, _ = _framed(self.state, self.cache, self.customers.batch, records, self._apply)
        return batch

    def _apply(self, records: list[Any], batch: Batch) -> None:
        """Decode and apply each contact or watermark mark; dead-letter the rest."""
        for message in records:
            try:
                forwarded = decode_forwarded(message.value)
            except BadContactError as exc:
                self.state.contacts_received += 1
                batch.dead_letters.append((message, Rejected("bad_contact", str(exc))))
                self.state.record_rejected("bad_contact", time.time())
                continue
            if isinstance(forwarded, WatermarkMark):
                self.customers.advance(message.partition, message.offset, forwarded.watermark)
                continue
            self.state.contacts_received += 1
            self.customers.process(message.partition, message.offset, *forwarded)
