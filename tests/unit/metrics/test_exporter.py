"""The scrape-time collector: promtool-clean names, only owned partitions exported."""

from __future__ import annotations

import subprocess

from prometheus_client import generate_latest

from streams.core.events import TicketEvent
from streams.metrics.pipeline_exporter import PipelineCollector, build_registry
from streams.runtime.state import PipelineState


def _event(kind: str, t: float) -> TicketEvent:
    return TicketEvent("e", kind, "T", t, "q", "chat")  # type: ignore[arg-type]


def _registry(state: PipelineState, active: set[int]):
    return build_registry([PipelineCollector(state, 4, lambda: (active, {9}))])


def test_counts_and_owned_partitions_only() -> None:
    state = PipelineState()
    state.record_accepted(0, _event("opened", 100.0), now=1.0)
    state.record_accepted(0, _event("replied", 90.0), now=2.0)  # older: watermark stays
    state.record_accepted(3, _event("opened", 50.0), now=3.0)
    state.record_rejected("schema", now=4.0)
    registry = _registry(state, active={0, 1})
    value = registry.get_sample_value
    assert value("ticketpulse_events_accepted_total", {"type": "opened"}) == 2
    assert value("ticketpulse_events_accepted_total", {"type": "survey"}) == 0
    assert value("ticketpulse_events_rejected_total", {"reason": "schema"}) == 1
    assert value("ticketpulse_event_time_watermark_timestamp_seconds", {"partition": "0"}) == 100
    assert value("ticketpulse_event_time_watermark_timestamp_seconds", {"partition": "3"}) is None
    assert value("ticketpulse_partitions_assigned", {"role": "active"}) == 2
    assert value("ticketpulse_partitions_assigned", {"role": "standby"}) == 1
    assert value("ticketpulse_last_processed_timestamp_seconds") == 4.0


def test_promtool_accepts_the_output(promtool: str) -> None:
    state = PipelineState()
    state.record_accepted(1, _event("opened", 100.0), now=1.0)
    text = generate_latest(_registry(state, {1})).decode()
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.split()[2].endswith("_timestamp_seconds"):
            assert line.split()[3] == "gauge"
        assert "_percent" not in line
