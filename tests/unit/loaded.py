"""A pipeline loaded with simulated records and a KPI collector over it: what the exporter,
selfcheck and page tests read, with no broker and no Faust."""

from __future__ import annotations

import time
from collections.abc import Callable

from streams.config import DEFAULT_WINDOWS
from streams.ingest.schema import Accepted, classify
from streams.metrics.kpi_exporter import KpiCollector, LabelFolder
from streams.processing.local import LocalPipeline
from streams.processing.settings import KpiSettings
from streams.tools.simulator import SimParams, generate


def loaded_pipeline(events: int, seed: int = 5) -> LocalPipeline:
    """``events`` simulated records, each accepted one applied on partition 0."""
    pipeline = LocalPipeline(KpiSettings())
    now = time.time()
    for offset, record in enumerate(generate(SimParams(seed=seed, rate=8, max_events=events))):
        outcome = classify(record.key, record.value, now=now, future_tolerance_s=300)
        if isinstance(outcome, Accepted):
            pipeline.process(offset, outcome.event)
    return pipeline


def kpi_collector(
    pipeline: LocalPipeline,
    owned: Callable[[], set[int]] = lambda: {0},
    owned_contacts: Callable[[], set[int]] = lambda: {0},
    fold: LabelFolder | None = None,
) -> KpiCollector:
    return KpiCollector(
        pipeline.tickets,
        pipeline.customers,
        owned=owned,
        owned_contacts=owned_contacts,
        clock="event",
        windows=dict(DEFAULT_WINDOWS),
        timezone="UTC",
        fold=fold or LabelFolder(None, 50, {}),
    )
