"""Business-hours calendars: SLA clocks that stop outside opening hours.

A calendar has a time zone, weekly opening ranges in local wall-clock time (several per
day, none on a closed day, ``22:00-06:00`` running past midnight into the next day) and
holiday dates. Business seconds between two instants are the real seconds, in UTC, that
fall inside an opening range:

- A range belongs to the local date it starts on: a holiday closes the ranges that start on
  it, and the overnight tail of the evening before a holiday stays open.
- Ranges are wall-clock: a 00:00-06:00 range lasts 5 real hours on the night clocks spring
  forward and 7 when they fall back. A range end inside a skipped hour is the instant the
  clocks jumped (the first wall time that exists).

``business_seconds`` looks at the local dates the interval spans (O(days spanned)); each
date's opening instants are computed once per calendar and kept.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_S = 86400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Range = tuple[int, int]  # [start, end) seconds after local midnight; end may pass 86400


@dataclass(frozen=True)
class Calendar:
    """Opening hours of a team: ``weekly[weekday]`` ranges (0 = Monday), holidays closed."""

    name: str
    timezone: str
    weekly: Mapping[int, tuple[Range, ...]]
    holidays: frozenset[date] = frozenset()
    _days: dict[date, tuple[tuple[float, float], ...]] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    def __hash__(self) -> int:
        return hash((self.name, self.timezone))

    def open_instants(self, day: date) -> tuple[tuple[float, float], ...]:
        """The [start, end) UTC epoch intervals of the ranges starting on local ``day``."""
        known = self._days.get(day)
        if known is None:
            zone = ZoneInfo(self.timezone)
            midnight = datetime.combine(day, time.min)  # naive: local wall time
            ranges = () if day in self.holidays else self.weekly.get(day.weekday(), ())
            known = tuple(
                (
                    _instant(midnight + timedelta(seconds=start), zone),
                    _instant(midnight + timedelta(seconds=end), zone),
                )
                for start, end in ranges
            )
            self._days[day] = known
        return known

    def business_seconds(self, start: float, end: float) -> float:
        """Real seconds of [start, end) inside opening ranges (0 when ``end <= start``)."""
        if end <= start:
            return 0.0
        zone = ZoneInfo(self.timezone)
        first = datetime.fromtimestamp(start, zone).date() - timedelta(days=1)  # overnight
        last = datetime.fromtimestamp(end, zone).date()
        total = 0.0
        day = first
        while day <= last:
            for lo, hi in self.open_instants(day):
                overlap = min(hi, end) - max(lo, start)
                if overlap > 0:
                    total += overlap
            day += timedelta(days=1)
        return total


def _instant(wall: datetime, zone: ZoneInfo) -> float:
    """The UTC instant of local wall time ``wall``: the first one when the clocks fall back
    and it happens twice; the instant of the jump when it falls in a skipped hour."""
    fold0 = wall.replace(tzinfo=zone, fold=0).timestamp()  # read with the earlier offset
    fold1 = wall.replace(tzinfo=zone, fold=1).timestamp()  # read with the later offset
    if fold1 >= fold0:  # an ordinary wall time, or a repeated one (fold 0 comes first)
        return fold0
    # a skipped wall time: the jump lies between the two readings; find its second
    seconds = range(int(fold1), int(fold0) + 1)
    i = bisect_left(seconds, wall, key=lambda s: _wall(s, zone))
    return float(seconds[i])


def _wall(at: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at, zone).replace(tzinfo=None)


def parse_ranges(text: str) -> tuple[Range, ...]:
    """``"09:00-12:30, 13:30-18:00"`` (or ``"22:00-06:00"``, past midnight) as ranges; an
    empty text is a closed day."""
    out: list[Range] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        start_text, sep, end_text = part.partition("-")
        if not sep:
            msg = f"opening range {part!r} is not HH:MM-HH:MM"
            raise ValueError(msg)
        start, end = _clock(start_text), _clock(end_text)
        if end == start:
            msg = f"opening range {part!r} is empty"
            raise ValueError(msg)
        out.append((start, end if end > start else end + DAY_S))
    return tuple(sorted(out))


def _clock(text: str) -> int:
    hours, sep, minutes = text.strip().partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        msg = f"{text.strip()!r} is not a time HH:MM"
        raise ValueError(msg)
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        msg = f"{text.strip()!r} is not a time of day (00:00 to 24:00)"
        raise ValueError(msg)
    return h * 3600 + m * 60


def parse_holidays(items: list[str]) -> frozenset[date]:
    """ISO dates (``2026-12-25``) and inclusive ranges (``2026-12-24..2026-12-26``)."""
    days: set[date] = set()
    for item in items:
        first_text, sep, last_text = item.partition("..")
        first = date.fromisoformat(first_text.strip())
        last = date.fromisoformat(last_text.strip()) if sep else first
        if last < first:
            msg = f"holiday range {item!r} ends before it starts"
            raise ValueError(msg)
        days.update(first + timedelta(days=i) for i in range((last - first).days + 1))
    return frozenset(days)
