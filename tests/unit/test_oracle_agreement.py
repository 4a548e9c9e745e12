"""The core, run over plain dicts, agrees exactly with the SQL oracle, replays included."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.config import DEFAULT_WINDOWS
from streams.core.policy import Policy, QueueOverride
from streams.exporter import build_registry
from streams.kpi import KpiProcessor, KpiSettings, Tables
from streams.kpi_exporter import KpiCollector, LabelFolder
from streams.schema import Accepted, classify
from streams.simulator import SimParams, generate
from tests.oracle import assert_agree, expected, partition_of

NOW = 1_900_000_000.0
POLICY = Policy(
    queues={
        "billing": QueueOverride(service_level="answered"),
        "vip": QueueOverride(service_level="answered_abandoned_minus_short", short_abandon_s=10),
    }
)


def run_core(records, partitions: int, replay_from: int | None = None):
    proc = KpiProcessor(Tables(), KpiSettings(policy=POLICY))
    offsets: dict[int, int] = {}
    seen: list[tuple[int, int, object]] = []
    for key, value in records:
        if key is None:
            continue
        p = partition_of(key, partitions)
        off = offsets.get(p, 0)
        offsets[p] = off + 1
        outcome = classify(key, value, now=NOW, future_tolerance_s=300)
        if isinstance(outcome, Accepted):
            proc.process(p, off, outcome.event)
            seen.append((p, off, outcome.event))
    if replay_from is not None:  # a crash: a fresh process re-reads everything after a point
        proc = KpiProcessor(proc.tables, proc.settings)
        for p, off, event in seen[replay_from:]:
            proc.process(p, off, event)
    return proc


def scrape(proc: KpiProcessor, partitions: int) -> dict:
    collector = KpiCollector(
        proc,
        owned=lambda: set(range(partitions)),
        clock="event",
        windows=dict(DEFAULT_WINDOWS),
        timezone="UTC",
        fold=LabelFolder(None, 50, {}),
    )
    text = generate_latest(build_registry([collector])).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.mark.parametrize("seed", [3, 17])
def test_core_equals_oracle_with_faults(seed: int) -> None:
    params = SimParams(
        seed=seed,
        rate=6,
        max_events=12_000,
        duplicates=0.04,
        out_of_order=0.05,
        late=0.01,
        malformed=0.01,
        lateness_s=600,
    )
    records = [(r.key, r.value) for r in generate(params)]
    oracle = expected(records, partitions=4, policy=POLICY, now=NOW, windows=dict(DEFAULT_WINDOWS))
    assert_agree(scrape(run_core(records, 4), 4), oracle)


def test_replaying_after_a_crash_changes_nothing() -> None:
    params = SimParams(seed=5, rate=6, max_events=6000, duplicates=0.03, out_of_order=0.05)
    records = [(r.key, r.value) for r in generate(params)]
    oracle = expected(records, partitions=3, policy=POLICY, now=NOW, windows=dict(DEFAULT_WINDOWS))
    assert_agree(scrape(run_core(records, 3, replay_from=2500), 3), oracle)
