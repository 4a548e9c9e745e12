"""The fast text renderer writes exactly the bytes prometheus_client's generate_latest does."""

from __future__ import annotations

import time

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from streams.config import DEFAULT_WINDOWS
from streams.core.policy import Policy
from streams.ingest.schema import Accepted, classify
from streams.metrics.exposition import TextRenderer, render_collectors
from streams.metrics.families import Family
from streams.metrics.kpi_exporter import KpiCollector, LabelFolder
from streams.metrics.pipeline_exporter import PipelineCollector, build_registry
from streams.processing.local import LocalPipeline
from streams.processing.settings import KpiSettings
from streams.runtime.state import PipelineState
from streams.tools.simulator import SimParams, generate


def loaded_collectors() -> list:
    pipeline = LocalPipeline(KpiSettings(policy=Policy(per_agent=True)))
    state = PipelineState()
    now = time.time()
    for offset, record in enumerate(generate(SimParams(seed=5, rate=8, max_events=4000))):
        outcome = classify(record.key, record.value, now=now, future_tolerance_s=300)
        if isinstance(outcome, Accepted):
            pipeline.process(offset, outcome.event)
            state.record_accepted(0, outcome.event, now=now)
        else:
            state.record_rejected(outcome.reason, now=now)
    kpis = KpiCollector(
        pipeline.tickets,
        pipeline.customers,
        owned=lambda: {0},
        owned_contacts=lambda: {0},
        clock="event",
        windows=dict(DEFAULT_WINDOWS),
        timezone="UTC",
        fold=LabelFolder(None, 50, {}),
    )
    return [PipelineCollector(state, 1, lambda: ({0}, set())), kpis]


def test_a_loaded_exporter_renders_byte_for_byte_as_generate_latest() -> None:
    collectors = loaded_collectors()
    renderer = TextRenderer()
    first = render_collectors(collectors, renderer)
    again = render_collectors(collectors, renderer)  # from the label cache this time
    expected = generate_latest(build_registry(collectors))
    assert first == expected
    assert again == expected
    assert expected.count(b"\n") > 2000, "the comparison must cover a real exporter"


def test_awkward_label_values_and_every_kind_render_the_same() -> None:
    awkward = ['a"}b', "back\\slash", "new\nline", "ünïcødé ✓", ""]
    families = []
    gauge = Family("x_gauge", 'doc with \\ and\nnewline "quoted"', ["queue", "channel"])
    counter = Family("x_events", "counted", ["queue"], "counter")
    hist = Family("x_wait_seconds", "waits", ["queue"], "histogram")
    ghist = Family("x_window_seconds", "in a window", ["queue", "window"], "gaugehistogram")
    for i, value in enumerate(awkward):
        gauge.add([value, "chat"], i * 1.5)
        counter.add([value], 10**7 + i)
        buckets = [("30", float(i)), ("300", i + 2.0), ("+Inf", i + 3.0)]
        hist.add_histogram([value], buckets, 1234567.25 * i)
        ghist.add_histogram([value, "15m"], buckets, 0.1 * i)
    families += [gauge, counter, hist, ghist]
    plain = [
        GaugeMetricFamily("y_plain", "no labels", value=7),
        CounterMetricFamily("y_count", "created", labels=["a"]),
        HistogramMetricFamily("y_h", "h", buckets=[("1", 1), ("+Inf", 2)], sum_value=3),
    ]
    plain[1].add_metric(['"}'], 3, created=1700000000.0)

    class Collector:
        def collect(self):
            yield from (f.metric() for f in families)
            yield from plain

    class Fast:
        def families(self):
            yield from families

        def collect(self):
            yield from (f.metric() for f in families)

    class Others:
        def collect(self):
            yield from plain

    expected = generate_latest(build_registry([Collector()]))
    assert render_collectors([Fast(), Others()], TextRenderer()) == expected


def test_numbers_from_the_table_are_written_as_prometheus_client_writes_them() -> None:
    """Whole numbers below 10,000 come from a table (as ints or floats: equal dict keys);
    -0.0 equals 0 there, but prometheus_client writes it with its sign."""
    from prometheus_client.utils import floatToGoString

    from streams.metrics.exposition import go_float

    values = [0, 0.0, -0.0, 1, 1.0, True, 9999, 9999.0, 10_000, 12_345.0, -3, -3.0, 0.5]
    values += [1e-9, 1234567.25, 1e22, float("inf"), float("-inf"), float("nan")]
    for value in values:
        assert go_float(value) == floatToGoString(value), value
