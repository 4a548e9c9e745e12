"""The wallboard's figures are made from summed components, exactly as the PromQL of
docs/metrics.md makes them: never an average of per-worker or per-channel ratios."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from streams.ingest.schema import Accepted, classify
from streams.metrics.kpi_exporter import KpiCollector, LabelFolder
from streams.metrics.pipeline_exporter import build_registry
from streams.processing.local import LocalPipeline
from streams.tools.simulator import SimParams, generate
from streams.wallboard.figures import Series, combine, document, quantile, window_figures
from streams.wallboard.sources import parse_exposition

WINDOWS = ["15m", "1h", "24h", "today"]


def sample(name: str, value: float, **labels: str):
    return (name, tuple(sorted(labels.items()))), value


def test_a_queue_service_level_is_made_from_summed_components() -> None:
    w = "ticketpulse_window_service_level_"
    one = dict(
        [
            sample(f"{w}numerator", 9, queue="q", channel="chat", window="15m"),
            sample(f"{w}denominator", 10, queue="q", channel="chat", window="15m"),
            sample("ticketpulse_oldest_waiting_contact_age_seconds", 30, queue="q", channel="chat"),
            sample(
                "ticketpulse_queue_calendar_info", 1, queue="q", channel="chat", calendar="24x7"
            ),
        ]
    )
    two = dict(
        [
            sample(f"{w}numerator", 1, queue="q", channel="email", window="15m"),
            sample(f"{w}denominator", 10, queue="q", channel="email", window="15m"),
            sample(
                "ticketpulse_oldest_waiting_contact_age_seconds", 90, queue="q", channel="email"
            ),
            sample("ticketpulse_service_level_objective_ratio", 0.8, queue="q", channel="email"),
            sample(
                "ticketpulse_queue_calendar_info", 1, queue="q", channel="email", calendar="office"
            ),
        ]
    )
    doc = document(combine([one, two]), windows=["15m"])
    (queue,) = doc["queues"]
    assert queue["windows"]["15m"]["figures"]["service_level"] == 10 / 20  # not (0.9 + 0.1) / 2
    assert queue["now"]["oldest_wait_seconds"] == 90  # max, not sum
    assert queue["objective"] == 0.8
    assert queue["business_hours"] == ["office"]
    assert [s["business_hours"] for s in doc["series"]] == [[], ["office"]]
    assert [s["channel"] for s in doc["series"]] == ["chat", "email"]
    only_chat = document(combine([one, two]), windows=["15m"], channels={"chat"})
    assert only_chat["total"]["windows"]["15m"]["figures"]["service_level"] == 0.9


def test_two_workers_sum_like_prometheus() -> None:
    a = dict([sample("ticketpulse_contacts_waiting", 2, queue="q", channel="c")])
    b = dict([sample("ticketpulse_contacts_waiting", 3, queue="q", channel="c")])
    assert combine([a, b]) == dict(
        [sample("ticketpulse_contacts_waiting", 5, queue="q", channel="c")]
    )


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 10.0), (0.9, 26.0), (1.0, 30.0), (0.25, 5.0)],
)
def test_quantile_interpolates_within_a_bucket_as_prometheus_does(
    q: float, expected: float
) -> None:
    # 10 values <= 10 s, 10 more <= 30 s, none above
    buckets = {10.0: 10, 30.0: 20, math.inf: 20}
    assert quantile(q, buckets) == pytest.approx(expected)
    assert quantile(0.5, {10.0: 0, math.inf: 0}) is None


def test_the_p90_is_never_above_the_longest_first_response() -> None:
    """Interpolated within (20, 30], the p90 of these 20 responses reads 26 s, but the
    longest was 21.99 s: the board shows 21.99, an estimate it cannot beat."""
    series = Series(
        buckets={"15m": {10.0: 10, 30.0: 20, math.inf: 20}},
        longest_first_response={"15m": 21.99},
    )
    assert window_figures(series, "15m")["figures"]["frt_p90_seconds"] == 21.99
    series.longest_first_response["15m"] = 29.0
    assert window_figures(series, "15m")["figures"]["frt_p90_seconds"] == pytest.approx(26.0)


def test_the_document_of_a_real_exporter_output_agrees_with_its_components() -> None:
    pipeline = LocalPipeline()
    for offset, record in enumerate(generate(SimParams(seed=3, rate=6, max_events=3000))):
        outcome = classify(record.key, record.value, now=2e9, future_tolerance_s=300)
        if isinstance(outcome, Accepted):
            pipeline.process(offset, outcome.event)
    collector = KpiCollector(
        pipeline.tickets, pipeline.customers, owned=lambda: {0}, owned_contacts=lambda: {0},
        clock="event", windows={w: None if w == "today" else 900 for w in WINDOWS},
        timezone="UTC", fold=LabelFolder(None, 50, {}),
    )  # fmt: skip
    metrics = parse_exposition(generate_latest(build_registry([collector])).decode())
    doc = document(metrics, windows=WINDOWS)
    offered = sum(
        v for (n, labels), v in metrics.items()
        if n == "ticketpulse_window_contacts_offered" and ("window", "today") in labels
    )  # fmt: skip
    assert doc["total"]["windows"]["today"]["components"]["offered"] == offered > 100
    assert doc["total"]["windows"]["today"]["figures"]["frt_p90_seconds"] > 0
    assert len(doc["queues"]) >= 3
