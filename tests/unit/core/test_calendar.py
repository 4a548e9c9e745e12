"""Business-hours calendars: the edge cases of issue 16, each on its own, and the product's
day-by-day computation against the oracle's minute grid on any interval."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import ConfigError, load_settings
from streams.core.calendar import Calendar, parse_holidays, parse_ranges
from streams.core.events import TicketEvent
from streams.core.facts import ticket_facts
from streams.core.now import OpenTicket, now_figures
from streams.core.policy import Policy, QueueOverride
from tests.oracle_calendar import MinuteGrid

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS_9_TO_5 = {d: parse_ranges("09:00-17:00") for d in range(5)}
OFFICE = Calendar("office", "Europe/Paris", WEEKDAYS_9_TO_5, parse_holidays(["2026-12-25"]))
NIGHTS = Calendar("nights", "Europe/Paris", {d: parse_ranges("22:00-06:00") for d in range(7)})


def at(text: str) -> float:
    """Local Paris wall time ``YYYY-MM-DD HH:MM`` as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp()


def test_an_email_from_friday_evening_answered_monday_waited_half_an_hour() -> None:
    # the example: opened Friday 18:00, answered Monday 09:30
    assert OFFICE.business_seconds(at("2026-11-27 18:00"), at("2026-11-30 09:30")) == 1800


def test_opened_and_answered_within_one_closed_period_waited_nothing() -> None:
    assert OFFICE.business_seconds(at("2026-11-28 10:00"), at("2026-11-29 16:00")) == 0
    assert OFFICE.business_seconds(at("2026-11-30 17:30"), at("2026-12-01 08:59")) == 0


def test_an_event_outside_hours_counts_from_the_next_opening() -> None:
    assert OFFICE.business_seconds(at("2026-11-30 07:00"), at("2026-11-30 09:10")) == 600
    assert OFFICE.business_seconds(at("2026-11-30 16:50"), at("2026-11-30 20:00")) == 600


def test_a_holiday_is_closed_and_ranges_of_dates_are_accepted() -> None:
    christmas = (at("2026-12-24 16:00"), at("2026-12-28 09:05"))
    assert OFFICE.business_seconds(*christmas) == 3600 + 300  # Thursday 24th, then Monday
    days = parse_holidays(["2026-12-24..2026-12-26", "2027-01-01"])
    assert days == {date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)}
    closed = Calendar("x", "Europe/Paris", WEEKDAYS_9_TO_5, days)
    assert closed.business_seconds(*christmas) == 300
    with pytest.raises(ValueError, match="ends before"):
        parse_holidays(["2026-12-26..2026-12-24"])


def test_overnight_ranges_run_past_midnight_and_belong_to_the_evening_they_start() -> None:
    assert parse_ranges("22:00-06:00") == ((22 * 3600, 30 * 3600),)
    assert NIGHTS.business_seconds(at("2026-11-30 12:00"), at("2026-12-01 12:00")) == 8 * 3600
    assert NIGHTS.business_seconds(at("2026-12-01 05:00"), at("2026-12-01 23:00")) == 2 * 3600
    # a holiday closes the night that starts on it, not the tail of the night before
    holiday = Calendar("n", "Europe/Paris", NIGHTS.weekly, parse_holidays(["2026-12-01"]))
    assert holiday.business_seconds(at("2026-12-01 00:00"), at("2026-12-02 12:00")) == 6 * 3600


def test_clocks_springing_forward_and_falling_back_shorten_and_lengthen_the_night() -> None:
    # Europe/Paris: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00
    spring = NIGHTS.business_seconds(at("2026-03-28 12:00"), at("2026-03-29 12:00"))
    autumn = NIGHTS.business_seconds(at("2026-10-24 12:00"), at("2026-10-25 12:00"))
    assert (spring, autumn) == (7 * 3600, 9 * 3600)


def test_a_range_edge_in_the_skipped_hour_is_the_instant_of_the_jump() -> None:
    early = Calendar("e", "Europe/Paris", {6: parse_ranges("02:30-04:00")})
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()  # 03:00 CEST
    ((start, end),) = early.open_instants(date(2026, 3, 29))
    assert (start, end - start) == (jump, 3600)


def test_settings_refuse_bad_ranges_and_unknown_calendars(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[calendars.office]\ntimezone = "Europe/Paris"\nhours = {mon = "9-17"}\n')
    refused = r"calendars\.office\.hours: mon: '9' is not a time HH:MM"
    with pytest.raises(ConfigError, match=refused):
        load_settings(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[queues.billing]\ncalendar = "ofice"\n')
    with pytest.raises(ConfigError, match="queue 'billing' names calendar 'ofice'"):
        load_settings(unknown)


def _event(kind: str, when: str, queue: str, **extra: object) -> TicketEvent:
    return TicketEvent(f"{kind}-{when}", kind, "T", at(when), queue, "email", **extra)  # type: ignore[arg-type]


def test_a_transferred_ticket_is_measured_on_the_calendar_of_the_answering_queue() -> None:
    policy = Policy(
        first_response_targets={"email": 4 * 3600.0},
        queues={
            "billing": QueueOverride(calendar="office"),
            "nights": QueueOverride(calendar="nights"),
        },
        calendars={"office": OFFICE, "nights": NIGHTS},
    )
    events = [
        _event("opened", "2026-11-27 18:00", "billing"),
        _event("transferred", "2026-11-27 18:05", "billing", to_queue="nights"),
        _event("replied", "2026-11-28 01:00", "nights", author="agent"),
    ]
    facts = {f.name: f for f in ticket_facts(events, policy)}
    # nights opens at 22:00: 3 business hours of the 7 real ones, within the 4 h target
    assert facts["first_response"].value == 3 * 3600
    assert facts["first_response"].queue == "nights"
    assert "first_response_within_target" in facts


def test_breaching_now_runs_on_business_time() -> None:
    policy = Policy(
        first_response_targets={"email": 3600.0},
        queues={"billing": QueueOverride(calendar="office")},
        calendars={"office": OFFICE},
    )
    waiting = OpenTicket("billing", "email", at("2026-11-27 16:30"), answered=False)
    monday = at("2026-11-30 09:20")  # 30 + 20 business minutes, 64 h 50 min real
    figures = now_figures([waiting], monday, policy)[("billing", "email")]
    assert figures.first_response_breaches == 0
    assert figures.oldest_wait_s == monday - waiting.opened_at  # the wait itself stays real
    assert figures.oldest_wait_target_s == 50 * 60  # and on the target's clock: business time
    later = now_figures([waiting], at("2026-11-30 09:31"), policy)[("billing", "email")]
    assert later.first_response_breaches == 1


instants = st.floats(at("2026-03-20 00:00"), at("2026-04-10 00:00")).map(lambda x: round(x, 3))
GRIDS = [
    (calendar, MinuteGrid(calendar, at("2026-03-19 00:00"), at("2026-04-11 00:00")))
    for calendar in (OFFICE, NIGHTS)
]


@settings(max_examples=300, deadline=None)
@given(instants, instants)
def test_the_day_by_day_computation_equals_the_minute_grid(a: float, b: float) -> None:
    start, end = min(a, b), max(a, b)
    for calendar, grid in GRIDS:
        assert calendar.business_seconds(start, end) == pytest.approx(
            grid.seconds(start, end), abs=1e-6
        )
        assert 0 <= calendar.business_seconds(start, end) <= end - start
