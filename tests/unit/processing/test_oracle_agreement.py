"""The core, run over plain dicts, agrees exactly with the SQL oracle, replays included."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.config import DEFAULT_WINDOWS
from streams.core.calendar import Calendar, parse_holidays, parse_ranges
from streams.core.policy import Policy, QueueOverride
from streams.ingest.schema import Accepted, classify
from streams.metrics.kpi_exporter import KpiCollector, LabelFolder
from streams.metrics.pipeline_exporter import build_registry
from streams.processing.customers import CustomerProcessor, CustomerTables
from streams.processing.kpi import KpiProcessor, Tables
from streams.processing.settings import KpiSettings
from streams.tools.simulator import SimParams, generate
from tests.oracle import assert_agree, expected, partition_of

NOW = 1_900_000_000.0
POLICY = Policy(
    queues={
        "billing": QueueOverride(service_level="answered"),
        "vip": QueueOverride(service_level="answered_abandoned_minus_short", short_abandon_s=10),
    },
    recontact_days=(0.01, 0.04),  # short periods, so that final ACR figures occur in the log
    per_agent=True,
)
WINDOWS = dict(DEFAULT_WINDOWS)
AGENTS = frozenset({"A-sales-1", "A-support-1", "A-support-2", "A-billing-1"})


class Contacts:
    """The contacts topic: records appended per partition, consumed by a customer processor."""

    def __init__(self, partitions: int, settings: KpiSettings) -> None:
        self.partitions = partitions
        self.log: list[tuple[int, int, tuple]] = []
        self.offsets: dict[int, int] = {}
        self.proc = CustomerProcessor(CustomerTables(), settings)

    def send(self, contact) -> None:
        p = partition_of(contact[0].encode(), self.partitions)
        self._append(p, contact)

    def mark(self, watermark: float) -> None:
        """A ticket partition's watermark moved: the worker tells every contacts partition."""
        for p in range(self.partitions):
            self._append(p, watermark)

    def _append(self, p: int, record) -> None:
        off = self.offsets.get(p, 0)
        self.offsets[p] = off + 1
        self.log.append((p, off, record))
        self._apply(p, off, record)

    def _apply(self, p: int, off: int, record) -> None:
        if isinstance(record, float):
            self.proc.advance(p, off, record)
        else:
            self.proc.process(p, off, *record)

    def crash_and_replay(self, start: int) -> None:
        self.proc = CustomerProcessor(self.proc.tables, self.proc.settings)
        for p, off, record in self.log[start:]:
            self._apply(p, off, record)


def run_core(records, partitions: int, replay_from: int | None = None, policy: Policy = POLICY):
    settings = KpiSettings(policy=policy)
    proc = KpiProcessor(Tables(), settings)
    contacts = Contacts(partitions, settings)
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
            done = proc.process(p, off, outcome.event)
            if done.contact is not None:
                contacts.send(done.contact)
            if done.watermark is not None:
                contacts.mark(done.watermark)
            seen.append((p, off, outcome.event))
    if replay_from is not None:
        # a crash of both sides: a fresh process re-reads each input after some point, and
        # the replayed ticket records forward their contacts again (new offsets, old versions)
        contacts.crash_and_replay(len(contacts.log) // 3)
        proc = KpiProcessor(proc.tables, proc.settings)
        for p, off, event in seen[replay_from:]:
            done = proc.process(p, off, event)
            if done.contact is not None:
                contacts.send(done.contact)
            if done.watermark is not None:
                contacts.mark(done.watermark)
    return proc, contacts.proc


def scrape(procs: tuple[KpiProcessor, CustomerProcessor], partitions: int) -> dict:
    proc, customers = procs
    collector = KpiCollector(
        proc,
        customers,
        owned=lambda: set(range(partitions)),
        owned_contacts=lambda: set(range(partitions)),
        clock="event",
        windows=dict(DEFAULT_WINDOWS),
        timezone="UTC",
        fold=LabelFolder(None, 50, {}),
        fold_agent=LabelFolder(AGENTS, 50, {}),
    )
    text = generate_latest(build_registry([collector])).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def traffic(rate: float = 6, **faults) -> list[tuple[bytes | None, bytes]]:
    """Simulated records; customers come back and tickets reopen within minutes, so that
    recontacts, repeat contacts and final ACR figures all occur in a short log."""
    params = SimParams(
        rate=rate, lateness_s=600, recontact_mean_s=1800, reopen_mean_s=1800, **faults
    )
    return [(r.key, r.value) for r in generate(params)]


@pytest.mark.parametrize("seed", [3, 17])
def test_core_equals_oracle_with_faults(seed: int) -> None:
    records = traffic(
        seed=seed, max_events=12_000, duplicates=0.04, out_of_order=0.05, late=0.01, malformed=0.01
    )
    oracle = expected(
        records, partitions=4, policy=POLICY, now=NOW, windows=WINDOWS, agent_allowlist=AGENTS
    )
    assert_agree(scrape(run_core(records, 4), 4), oracle)


def test_replaying_after_a_crash_changes_nothing() -> None:
    records = traffic(seed=5, max_events=6000, duplicates=0.03, out_of_order=0.05)
    oracle = expected(
        records, partitions=3, policy=POLICY, now=NOW, windows=WINDOWS, agent_allowlist=AGENTS
    )
    assert_agree(scrape(run_core(records, 3, replay_from=2500), 3), oracle)


# Business hours: billing on office hours, support on shifts (its email on office hours),
# the other queues on calendar time. Europe/Paris springs forward on Sunday 2026-03-29 and
# Monday 2026-03-30 is a holiday in this test.
OFFICE = Calendar(
    "office",
    "Europe/Paris",
    {d: parse_ranges("09:00-12:30, 13:30-18:00") for d in range(5)},
    parse_holidays(["2026-03-30"]),
)
SHIFTS = Calendar(
    "shifts",
    "Europe/Paris",
    {
        **{d: parse_ranges("07:00-13:00, 20:00-01:00") for d in range(5)},
        5: parse_ranges("10:00-14:00"),
    },
    parse_holidays(["2026-03-30..2026-03-30"]),
)
CALENDAR_POLICY = replace(
    POLICY,
    queues={
        **POLICY.queues,
        "billing": QueueOverride(service_level="answered", calendar="office"),
        "support": QueueOverride(calendar="shifts", channel_calendars={"email": "office"}),
    },
    calendars={"office": OFFICE, "shifts": SHIFTS},
    _resolved={},
)


def test_core_equals_oracle_with_business_hours_over_a_weekend_a_holiday_and_dst() -> None:
    start = datetime(2026, 3, 27, 6, 0, tzinfo=UTC).timestamp()  # Friday, 3.5 days
    records = [
        (r.key, r.value)
        for r in generate(
            SimParams(
                seed=11, start=start, rate=0.035, max_events=12_000, duplicates=0.03,
                out_of_order=0.05, lateness_s=600, recontact_mean_s=1800, reopen_mean_s=1800,
            )
        )
    ]  # fmt: skip
    times = [orjson.loads(v)["occurred_at"] for _, v in records if v.startswith(b"{")]
    assert max(times) > "2026-03-30T12", "the log must reach past the holiday"
    oracle = expected(
        records,
        partitions=3,
        policy=CALENDAR_POLICY,
        now=NOW,
        windows=WINDOWS,
        agent_allowlist=AGENTS,
    )
    assert_agree(scrape(run_core(records, 3, policy=CALENDAR_POLICY), 3), oracle)
    plain = expected(records, partitions=3, policy=POLICY, now=NOW, windows=WINDOWS)
    frt = "ticketpulse_window_first_response_seconds_gsum"
    moved = {
        dict(labels)["queue"]
        for (name, labels), value in oracle.items()
        if name == frt and value != plain.get((name, labels), 0.0)
    }
    assert moved == {"billing", "support"}, "business hours change exactly the calendar queues"
