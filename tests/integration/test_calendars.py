"""Business-hours calendars on the real broker (issue 16): a live worker with two calendar
queues and the rest on calendar time, clock ``event``, replaying a log that crosses closed
periods, a weekend, a holiday and a DST change; every figure equals the oracle, which
computes business time on its own minute grid (tests/oracle_calendar.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.cli import main
from streams.config import DEFAULT_WINDOWS, load_settings
from streams.tools.produce import key_of, read_jsonl
from tests.integration.test_kpis import replay_into_new_topics, wait_equal
from tests.oracle import expected

pytestmark = pytest.mark.integration
CALENDARS = """
recontact_days = [0.01, 0.04]
[calendars.office]
timezone = "Europe/Paris"
holidays = ["2026-03-30"]
[calendars.office.hours]
mon = "09:00-12:30, 13:30-18:00"
tue = "09:00-12:30, 13:30-18:00"
wed = "09:00-12:30, 13:30-18:00"
thu = "09:00-12:30, 13:30-18:00"
fri = "09:00-12:30, 13:30-18:00"
[calendars.shifts]
timezone = "Europe/Paris"
holidays = ["2026-03-30..2026-03-30"]
[calendars.shifts.hours]
mon = "07:00-13:00, 20:00-01:00"
tue = "07:00-13:00, 20:00-01:00"
wed = "07:00-13:00, 20:00-01:00"
thu = "07:00-13:00, 20:00-01:00"
fri = "07:00-13:00, 20:00-01:00"
sat = "10:00-14:00"
[queues.billing]
calendar = "office"
[queues.support]
calendar = "shifts"
channel_calendars = { email = "office" }
"""


def test_a_live_worker_with_calendars_equals_the_oracle(
    kafka, names, start_worker, tmp_path: Path
) -> None:
    config = tmp_path / "calendars.toml"
    config.write_text(CALENDARS)
    log = tmp_path / "weekend.jsonl"
    simulate = ["simulate", "--seed", "11", "--start", "2026-03-27T06:00:00Z", "--rate", "0.035"]
    simulate += ["--events", "12000", "--duplicates", "0.03", "--out-of-order", "0.05"]
    simulate += ["--recontact-mean", "1800", "--reopen-mean", "1800", "--output", str(log)]
    assert main(simulate) == 0
    records = [(key_of(line), line) for line in read_jsonl(log)]
    settings = load_settings(config)
    oracle = expected(
        records, partitions=4, policy=settings.policy(), now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
    )  # fmt: skip
    plain = expected(
        records, partitions=4, policy=load_settings().policy(), now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
    )  # fmt: skip
    frt = "ticketpulse_window_first_response_seconds_gsum"
    assert any(v != plain.get(k, 0.0) for k, v in oracle.items() if k[0] == frt), (
        "the calendars must change figures in this log"
    )
    replay_into_new_topics(kafka, names, log)
    worker = start_worker("--clock", "event", "--config", str(config))
    wait_equal(oracle, worker)
    calendars = {
        dict(labels).get("calendar")
        for (name, labels), value in worker.metrics().items()
        if name == "ticketpulse_queue_calendar_info" and value == 1
    }
    assert calendars == {"office", "shifts", "24x7"}
