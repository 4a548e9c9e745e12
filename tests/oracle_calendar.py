"""The oracle's business time: every UTC minute classified as open or closed by reading
its local wall time, then prefix sums. The product converts each day's opening ranges to
UTC instants instead (``streams.core.calendar``); only the calendar's configuration (zone,
weekly ranges, holidays) is shared.

Opening ranges are taken at minute resolution, as the settings write them. A range that
starts or ends inside the hour a clock change repeats or skips is not modelled here (the
product documents its rule for those); the tests' calendars avoid them.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from itertools import accumulate
from zoneinfo import ZoneInfo

from streams.core.calendar import Calendar

DAY = 86400


class MinuteGrid:
    """Business seconds of one calendar over [first, last) epoch seconds."""

    def __init__(self, calendar: Calendar, first: float, last: float) -> None:
        self.zone = ZoneInfo(calendar.timezone)
        self.calendar = calendar
        self.m0 = math.floor(first / 60) - 1
        minutes = math.ceil(last / 60) + 1 - self.m0
        self.open = [self._is_open((self.m0 + i) * 60) for i in range(minutes)]
        self.prefix = [0, *accumulate(self.open)]  # prefix[i] = open minutes before i

    def _is_open(self, at: int) -> int:
        local = datetime.fromtimestamp(at, self.zone)
        t = local.hour * 3600 + local.minute * 60
        today, yesterday = local.date(), local.date() - timedelta(days=1)
        weekly, holidays = self.calendar.weekly, self.calendar.holidays
        ranges_today = weekly.get(today.weekday(), ()) if today not in holidays else ()
        if any(s <= t < min(e, DAY) for s, e in ranges_today):
            return 1
        # the overnight tail of yesterday's ranges
        ranges_yesterday = weekly.get(yesterday.weekday(), ()) if yesterday not in holidays else ()
        return int(any(e > DAY and t < e - DAY for _, e in ranges_yesterday))

    def seconds(self, start: float, end: float) -> float:
        if end <= start:
            return 0.0
        a, b = math.floor(start / 60) - self.m0, math.floor(end / 60) - self.m0
        if a == b:
            return (end - start) * self.open[a]
        head = ((a + 1 + self.m0) * 60 - start) * self.open[a]
        tail = (end - (b + self.m0) * 60) * self.open[b]
        return head + 60.0 * (self.prefix[b] - self.prefix[a + 1]) + tail
