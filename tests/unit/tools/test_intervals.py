"""Interval reports (issue 16): the rows of a day sum to that day's ``today`` window, figure
by figure; CSV and JSON hold the same rows; bad requests get one clear line."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from streams.cli import main
from streams.config import Settings
from streams.tools.intervals import interval_report, parse_interval
from streams.tools.report import report
from streams.tools.simulator import SimParams, generate

ZONE = "Europe/Paris"  # local midnight is 23:00 UTC: intervals must follow it


def log_over_midnight() -> list[bytes]:
    start = datetime(2026, 1, 5, 20, 0, tzinfo=UTC).timestamp()  # 21:00 in Paris
    params = SimParams(
        seed=8, start=start, rate=1.5, max_events=30_000, recontact_mean_s=900,
        reopen_mean_s=900, duplicates=0.02, out_of_order=0.03,
    )  # fmt: skip
    return [r.value for r in generate(params)]


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return log_over_midnight()


def test_the_intervals_of_a_day_sum_to_its_today_window(lines: list[bytes]) -> None:
    settings = Settings(timezone=ZONE, recontact_days=[0.01, 0.02])
    live = report(lines, settings, now=2e9)
    today = live["windows"]["today"]
    _, rows = interval_report(lines, settings, 2e9, 1800)
    day = datetime.fromtimestamp(live["window_end"], UTC).astimezone().date()
    day = (
        datetime.fromtimestamp(live["window_end"], tz=UTC)
        .astimezone(__import__("zoneinfo").ZoneInfo(ZONE))
        .date()
    )
    assert day.isoformat() == "2026-01-06", "the log crosses local midnight"
    summed: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        if row["interval_start"].startswith(day.isoformat()):
            for name in today[next(iter(today))]["components"]:
                summed[f"{row['queue']}/{row['channel']}"][name] += row[name]
    assert set(summed) == set(today)
    compared = 0
    for series, figures in today.items():
        for name, value in figures["components"].items():
            assert summed[series][name] == pytest.approx(value, abs=1e-6), (series, name)
            compared += bool(value)
    assert compared > 100, "the comparison must cover real figures"
    assert any(r["interval_start"].startswith("2026-01-05T23:30") for r in rows)


def test_csv_and_json_hold_the_same_rows(tmp_path: Path, lines: list[bytes], capsys) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join(lines[:4000]) + b"\n")
    args = ["report", str(log), "--interval", "15m", "--timezone", ZONE, "--no-progress"]
    assert main([*args, "--format", "csv"]) == 0
    from_csv = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert main(args) == 0
    from_json = orjson.loads(capsys.readouterr().out)["rows"]
    assert len(from_csv) == len(from_json) > 10
    for a, b in zip(from_csv, from_json, strict=True):
        assert a["interval_start"] == b["interval_start"]
        assert float(a["contacts_offered"]) == b["contacts_offered"]
        level = b["service_level"]
        if level is None:
            assert a["service_level"] == ""
        else:
            assert float(a["service_level"]) == pytest.approx(level, rel=1e-11)
        # 12 significant digits: no binary floating-point tail in a spreadsheet cell
        numbers = [v for v in a.values() if re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", v)]
        assert all(len(v.split("e")[0].lstrip("-").replace(".", "")) <= 13 for v in numbers)


def test_a_csv_without_rows_still_has_its_header(tmp_path: Path, lines: list[bytes], capsys):
    """A range that holds no event gives the header alone (and exit 1: an empty report is no
    answer), the same header as a full CSV's."""
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join(lines[:4000]) + b"\n")
    args = ["report", str(log), "--interval", "15m", "--format", "csv", "--no-progress"]
    assert main(args) == 0
    full = capsys.readouterr().out.splitlines()
    assert main([*args, "--from", "2030-01-01T00:00Z"]) == 1  # no record accepted: exit 1
    empty = capsys.readouterr().out.splitlines()
    assert len(full) > 10 and empty == full[:1]
    assert empty[0].startswith("interval_start,interval_end,complete,queue,channel,")


def test_from_and_to_cut_the_log_by_event_time(tmp_path: Path, lines: list[bytes], capsys) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    cut = ["--from", "2026-01-05T22:00:00+01:00", "--to", "2026-01-05T22:00Z"]  # an hour
    assert main(["report", str(log), "--interval", "1h", "--timezone", ZONE, *cut]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["records"]["outside_range"] > 0
    assert {r["interval_start"] for r in doc["rows"]} == {"2026-01-05T22:00:00+01:00"}


def test_bad_requests_get_one_clear_line(tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("")
    assert main(["report", str(log), "--format", "csv"]) == 2
    assert "--format csv needs --interval" in capsys.readouterr().err
    assert main(["report", str(log), "--interval", "7m"]) == 2
    assert "divides a day" in capsys.readouterr().err
    assert main(["report", str(log), "--interval", "30m", "--from", "yesterday"]) == 2
    assert "'yesterday' is not an ISO date or time" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a positive whole number"):
        parse_interval("1.5h")
    assert parse_interval("30m") == 1800


def test_a_log_longer_than_a_day_reports_its_first_intervals_too() -> None:
    """The worker keeps a day's buckets (its longest window); the report kept the same, so a
    30-hour log's intervals over 25 hours before its end read 0 contacts offered. Each
    interval of the first day now counts what the log cut at that day's end counts."""
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()
    params = SimParams(seed=7, start=start, rate=0.2, duration=30 * 3600, max_events=None)
    log = [r.value for r in generate(params)]
    settings = Settings()
    _, whole = interval_report(log, settings, 2e9, 3600)
    first_day_end = datetime(2026, 1, 6, tzinfo=UTC).timestamp()
    _, cut = interval_report(log, settings, 2e9, 3600, between=(None, first_day_end))

    def offered(rows: list[dict]) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for row in rows:
            if row["interval_start"] < "2026-01-06":
                out[row["interval_start"]] += row["contacts_offered"]
        return dict(out)

    assert offered(whole) == offered(cut)
    assert offered(whole)["2026-01-05T08:00:00+00:00"] > 0


def test_report_takes_the_records_the_worker_takes_up_to_max_record_bytes() -> None:
    """``report`` checked every record against the default 64 KiB, not the settings' limit:
    a 70 KB record the worker accepts with ``max_record_bytes = 200000`` was rejected."""
    big = orjson.dumps(
        {
            "event_id": "e-1",
            "type": "opened",
            "ticket_id": "T-1",
            "queue": "q",
            "channel": "chat",
            "occurred_at": "2026-01-05T08:00:00Z",
            "note": "x" * 70_000,
        }
    )  # fmt: skip  (a property the schema does not name is allowed)
    assert len(big) > 64 * 1024
    roomy = report([big], Settings(max_record_bytes=200_000), now=2e9)
    assert roomy["records"]["accepted"] == 1
    strict = report([big], Settings(), now=2e9)
    assert strict["records"].get("rejected_too_large") == 1


def test_an_interval_the_log_begins_or_ends_inside_is_marked_partial() -> None:
    """A log from 08:10 to about 09:50 in 30-minute intervals: the 08:00 and 09:30 rows hold
    only part of their half hours, and said nothing of it; a ``--from`` inside a row too."""
    start = datetime(2026, 1, 5, 8, 10, tzinfo=UTC).timestamp()
    params = SimParams(seed=4, start=start, rate=2, duration=100 * 60, max_events=None)
    log = [r.value for r in generate(params)]

    def complete(between: tuple[float | None, float | None] = (None, None)) -> dict[str, bool]:
        _, rows = interval_report(log, Settings(), 2e9, 1800, between)
        marks: dict[str, set[bool]] = defaultdict(set)
        for row in rows:
            marks[row["interval_start"][11:16]].add(row["complete"])
        assert all(len(m) == 1 for m in marks.values()), "one mark per interval"
        return {start: m.pop() for start, m in sorted(marks.items())}

    assert complete() == {"08:00": False, "08:30": True, "09:00": True, "09:30": False}
    since = datetime(2026, 1, 5, 8, 45, tzinfo=UTC).timestamp()
    assert complete((since, None)) == {"08:30": False, "09:00": True, "09:30": False}
