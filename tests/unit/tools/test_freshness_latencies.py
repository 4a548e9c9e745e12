"""The bench's freshness: each record's latency is the first poll at or after its produce
that shows its partition past it. The one-pass computation equals the obvious one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.tools.bench_live import Samples, Sent, latency_figures, seen_after


def per_record(sent: Sent, samples: Samples) -> list[float]:
    latencies = []
    for (partition, offset), at in sent.items():
        for when, offsets in samples:
            if when >= at and offsets.get(partition, 0) > offset:
                latencies.append(when - at)
                break
    return sorted(latencies)


@st.composite
def a_load(draw: st.DrawFn) -> tuple[Sent, Samples]:
    """Records produced in offset order per partition at non-decreasing times, and polls
    of the worker's next offsets (which may stall or even drop, as at a rebalance)."""
    sent: Sent = {}
    for partition in range(draw(st.integers(1, 3))):
        at = 0.0
        for offset in range(draw(st.integers(0, 12))):
            at += draw(st.sampled_from([0.0, 0.5, 1.0]))
            sent[(partition, offset)] = at
    samples: Samples = []
    when = draw(st.floats(-1, 2))
    for _ in range(draw(st.integers(0, 25))):
        when += draw(st.sampled_from([0.25, 0.5, 1.0]))
        shown = draw(st.dictionaries(st.integers(0, 2), st.integers(0, 14), max_size=3))
        samples.append((when, shown))
    return sent, samples


@settings(max_examples=400)
@given(a_load())
def test_one_pass_equals_a_scan_per_record(load: tuple[Sent, Samples]) -> None:
    sent, samples = load
    assert seen_after(sent, samples) == per_record(sent, samples)


def test_a_record_is_seen_at_the_first_poll_past_it() -> None:
    sent = {(0, 0): 1.0, (0, 1): 1.0, (1, 0): 2.0}
    samples = [(0.5, {0: 2}), (1.5, {0: 1}), (2.5, {0: 2, 1: 1})]
    assert seen_after(sent, samples) == [0.5, 0.5, 1.5]


def test_on_metrics_reads_the_applied_marks_and_done_the_done_ones() -> None:
    sent = {(0, i): 0.0 for i in range(100)}
    applied = [(0.1, {0: 50}), (0.2, {0: 100})]
    done = [(0.1, {0: 0}), (0.2, {0: 50}), (0.4, {0: 100})]
    figures = latency_figures(sent, applied, done, rate=500.0)
    assert (figures["fresh_p50"], figures["fresh_p99"]) == (0.2, 0.2)
    assert (figures["fresh_done_p50"], figures["fresh_done_p99"]) == (0.4, 0.4)
    assert figures["fresh_records"] == figures["fresh_done_records"] == 100
    assert figures["fresh_rate"] == 500.0
    nothing = latency_figures(sent, [], done, rate=500.0)
    assert nothing["fresh_records"] == 0 and nothing["fresh_p99"] != nothing["fresh_p99"]  # nan
