"""``ticketpulse report FILE --interval 30m``: one row per interval x queue x channel.

The log goes through the same pipeline as ``report`` (one partition, event clock), and the
same tumbling buckets are regrouped into intervals instead of rolling windows: an interval
row holds the additive components of the buckets that start in it, and the ratios they
make, on the live figures' definitions. Intervals start at local midnight in the settings'
time zone and every ``interval`` after it, so "09:30-10:00" is a wall-clock half hour even
on a day the clocks change. Like the live windows, the rows hold what is known at the
log's end: buckets after its watermark (ACR periods that have not ended yet) are left out,
so the rows of a day sum to that day's ``today`` window (docs/metrics.md).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from streams.config import Settings
from streams.core.buckets import bucket_start
from streams.core.contacts import days_label
from streams.core.policy import ServiceLevelPreset
from streams.core.windows import Sums
from streams.processing.bucket_store import Row, bucket_contents
from streams.processing.local import LocalPipeline
from streams.tools.report import (
    EventSpan,
    acr_figures,
    apply_log,
    components,
    derived_figures,
)

Interval = tuple[float, str, str]  # (interval start, queue, channel)
DAY_S = 86400


def interval_start(at: float, interval_s: int, zone: ZoneInfo) -> float:
    """The start of the interval holding ``at``: local midnight + a whole number of them."""
    local = datetime.fromtimestamp(at, zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    return midnight + (at - midnight) // interval_s * interval_s


def interval_sums(
    rows: Iterable[Row], end: float, interval_s: int, bucket_s: int, tz: str
) -> dict[Interval, Sums]:
    """Bucket rows summed per interval x queue x channel, up to the bucket holding ``end``."""
    zone, last = ZoneInfo(tz), bucket_start(end, bucket_s)
    starts: dict[int, float] = {}
    out: dict[Interval, Sums] = {}
    for start, entry, queue, channel, total, count in rows:
        if start > last:
            continue
        first = starts.get(start)
        if first is None:
            first = starts[start] = interval_start(start, interval_s, zone)
        sums = out.setdefault((first, queue, channel), {})
        key = (entry, queue, channel)
        s, c = sums.get(key, (0.0, 0))
        sums[key] = (s + total, c + count)
    return out


def interval_report(
    lines: Iterable[bytes],
    settings: Settings,
    now: float,
    interval_s: int,
    between: tuple[float | None, float | None] = (None, None),
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """(record counts, rows in time order) of a log; ``interval_s`` a multiple of a bucket."""
    if interval_s <= 0 or interval_s % settings.bucket_seconds or DAY_S % interval_s:
        msg = (
            f"--interval must be a whole number of buckets ({settings.bucket_seconds} s) "
            "that divides a day (15m, 30m, 1h ...)"
        )
        raise ValueError(msg)
    # every interval of the log is reported: no bucket expires (the worker keeps a day's)
    pipeline = LocalPipeline(replace(settings.kpi_settings(), keep_buckets=True))
    span = EventSpan()
    counts = apply_log(pipeline, lines, settings, now, between, span)
    end = pipeline.tickets.clock.clock(0)
    if end is None:
        return counts, []
    covered = _covered(span, end, between, settings.bucket_seconds)
    rows = bucket_contents(pipeline.tickets.tables.buckets, {0})[0][0]
    rows += bucket_contents(pipeline.customers.tables.cbuckets, {0})[0][0]
    grouped = interval_sums(rows, end, interval_s, settings.bucket_seconds, settings.timezone)
    days = [days_label(d) for d in settings.recontact_days]
    policy, zone = settings.policy(), ZoneInfo(settings.timezone)
    out = []
    for (start, q, c), sums in sorted(grouped.items()):
        inside = covered[0] <= start and start + interval_s <= covered[1]
        head = _head(start, interval_s, zone, inside, q, c)
        out.append(_row(head, sums, policy.for_queue(q, c).service_level, days))
    return counts, out


def _head(
    start: float, interval_s: int, zone: ZoneInfo, inside: bool, queue: str, channel: str
) -> dict[str, Any]:
    """The columns that name a row: its interval, whether the log covers it, queue, channel."""
    return {
        "interval_start": datetime.fromtimestamp(start, zone).isoformat(),
        "interval_end": datetime.fromtimestamp(start + interval_s, zone).isoformat(),
        "complete": inside,
        "queue": queue,
        "channel": channel,
    }


def _row(
    head: dict[str, Any], sums: Sums, level: ServiceLevelPreset, days: list[str]
) -> dict[str, Any]:
    comp = components(sums, head["queue"], head["channel"], days)
    return {**head, **comp, **derived_figures(comp, level), **acr_figures(comp, days)}


def interval_columns(settings: Settings) -> list[str]:
    """Every row's columns in order, the same for every log under these settings: what an
    empty CSV's header holds, so a spreadsheet or loader reads it like any other."""
    days = [days_label(d) for d in settings.recontact_days]
    head = _head(0.0, DAY_S, ZoneInfo("UTC"), False, "", "")
    return list(_row(head, {}, settings.policy().for_queue("", "").service_level, days))


def _covered(
    span: EventSpan, end: float, between: tuple[float | None, float | None], bucket_s: int
) -> tuple[float, float]:
    """The part of time the log covers, in whole buckets: from the bucket of its first event
    accepted (or ``--from``) to the end of the bucket holding its watermark (or ``--to``). An
    interval reaching outside it is partial: the log began or ended inside it."""
    since, until = between
    start = bucket_start(span.first, bucket_s)
    stop = bucket_start(end, bucket_s) + bucket_s
    since = -math.inf if since is None else since
    return max(start, since), min(stop, math.inf if until is None else until)


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    """CSV text, the header first (alone when there are no rows); an empty ratio (no
    denominator) is an empty cell. Numbers to 12 significant digits: a sum of seconds reads
    43739.808, not binary floating point's 43739.808000000005 (the JSON keeps every digit)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, bool):  # as in the JSON
        return "true" if value else "false"
    return repr(float(f"{value:.12g}")) if isinstance(value, float) else value


def parse_interval(text: str) -> int:
    """``15m``, ``30m``, ``1h`` or seconds as a number."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isdigit() or int(number) == 0:
        msg = f"interval {text!r} is not a positive whole number of s, m or h (e.g. 30m)"
        raise ValueError(msg)
    return int(number) * units[unit]
