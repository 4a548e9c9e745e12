"""The wallboard's figures, from the workers' exported components (framework-free).

Input: ``Metrics``, the samples of every worker summed the way docs/metrics.md's PromQL
sums them (``sum without (instance)``; ``max`` for the oldest wait and the longest first
response). Output: the ``/api/v1/figures`` document (docs/wallboard.md): per queue x channel,
per queue (its selected channels summed) and in total, per window, the additive components,
the ratios they make and the Now gauges. Ratios are made from summed components, never
averaged, so a queue's service level is exact whatever workers and channels it spans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.metrics.catalogue import NO_CALENDAR, WINDOW_PREFIX

Labels = tuple[tuple[str, str], ...]
Metrics = dict[tuple[str, Labels], float]
W = WINDOW_PREFIX
# the partition count is the same on every worker: across workers it is a max, not a sum
TOPIC_PARTITIONS = "ticketpulse_topic_partitions"
# 1 per partition whose figures a worker's scrape holds: summed, 1 for each in a complete reading
PARTITION_ACTIVE = "ticketpulse_partition_active"
MAX_SAMPLES = frozenset(
    {
        "ticketpulse_oldest_waiting_contact_age_seconds",
        f"{W}first_response_max_seconds",
        TOPIC_PARTITIONS,
    }
)
# component name in the JSON -> window gauge it is read from
COMPONENTS = {
    "offered": f"{W}contacts_offered",
    "answered": f"{W}first_responses",
    "answered_within_target": f"{W}first_responses_within_target",
    "service_level_denominator": f"{W}service_level_denominator",
    "service_level_numerator": f"{W}service_level_numerator",
    "abandoned": f"{W}contacts_abandoned",
    "transfers_out": f"{W}transfers_out",
    "resolved": f"{W}contacts_resolved",
    "resolved_first_contact": f"{W}contacts_resolved_first_contact",
    "handled": f"{W}contacts_handled",
    "handle_time_seconds": f"{W}handle_time_seconds",
    "csat_responses": f"{W}csat_responses",
    "csat_satisfied": f"{W}csat_satisfied_responses",
    "acr_resolutions": f"{W}acr_resolutions",
    "first_response_count": f"{W}first_response_seconds_gcount",
    "first_response_seconds_sum": f"{W}first_response_seconds_gsum",
}
NOW = {
    "open": "ticketpulse_contacts_open",
    "waiting": "ticketpulse_contacts_waiting",
    "oldest_wait_seconds": "ticketpulse_oldest_waiting_contact_age_seconds",
    "first_response_breaches": "ticketpulse_first_response_breaches",
    "resolution_breaches": "ticketpulse_resolution_breaches",
}
ACR_DAYS = "3"  # the ACR shown: provisional, 3 days (the default longest period)


def combine(per_worker: Iterable[Metrics]) -> Metrics:
    """Several workers' samples as PromQL sums them: ``sum``, or ``max`` for the maxima."""
    out: Metrics = {}
    for samples in per_worker:
        for key, value in samples.items():
            if key[0] in MAX_SAMPLES:
                out[key] = max(out.get(key, value), value)
            else:
                out[key] = out.get(key, 0.0) + value
    return out


def coverage(metrics: Metrics) -> tuple[int, int, int] | None:
    """(partitions held active by exactly one worker read, partitions of the topic, partitions
    held by more than one), or None when the source does not say: figures only count while
    every partition is held exactly once. A set, not a count: a partition counted twice and
    another missing add up to the topic's count. A worker holds a partition active only
    while its figures are in the same scrape (not while its tables are recovered)."""
    total = metrics.get((TOPIC_PARTITIONS, ()))
    if total is None:
        return None
    held = [value for (name, _), value in metrics.items() if name == PARTITION_ACTIVE]
    return held.count(1.0), int(total), sum(1 for value in held if value > 1.0)


@dataclass
class Series:
    """What one queue x channel (or a sum of them) holds, before ratios are made."""

    components: dict[str, dict[str, float]] = field(default_factory=dict)  # window -> name -> v
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # window -> le -> count
    acr_recontacted: dict[str, float] = field(default_factory=dict)  # window -> count (3 days)
    longest_first_response: dict[str, float] = field(default_factory=dict)
    now: dict[str, float] = field(default_factory=dict)
    objective: float | None = None
    calendars: set[str] = field(default_factory=set)  # business-hours calendars it runs on

    def add(self, other: Series) -> None:
        for w, comp in other.components.items():
            mine = self.components.setdefault(w, {})
            for name, value in comp.items():
                mine[name] = mine.get(name, 0.0) + value
        for w, buckets in other.buckets.items():
            mine_b = self.buckets.setdefault(w, {})
            for le, value in buckets.items():
                mine_b[le] = mine_b.get(le, 0.0) + value
        for w, value in other.acr_recontacted.items():
            self.acr_recontacted[w] = self.acr_recontacted.get(w, 0.0) + value
        for w, value in other.longest_first_response.items():
            self.longest_first_response[w] = max(self.longest_first_response.get(w, 0.0), value)
        for name, value in other.now.items():
            agg = max if name == "oldest_wait_seconds" else _plus
            self.now[name] = agg(self.now.get(name, 0.0), value)
        if other.objective is not None:  # a queue aims for its strictest channel's objective
            self.objective = max(self.objective or 0.0, other.objective)
        self.calendars |= other.calendars


def _plus(a: float, b: float) -> float:
    return a + b


def series_of(metrics: Mapping[tuple[str, Labels], float]) -> dict[tuple[str, str], Series]:
    """Group the samples by queue x channel."""
    by_name = {v: k for k, v in COMPONENTS.items()}
    now_by_name = {v: k for k, v in NOW.items()}
    out: dict[tuple[str, str], Series] = defaultdict(Series)
    for (name, labels), value in metrics.items():
        lab = dict(labels)
        if "queue" not in lab or "channel" not in lab:
            continue
        s, w = out[(lab["queue"], lab["channel"])], lab.get("window", "")
        if name in by_name and w:
            s.components.setdefault(w, {})[by_name[name]] = value
        elif name == f"{W}first_response_seconds_bucket" and w:
            s.buckets.setdefault(w, {})[float(lab["le"])] = value
        elif name == f"{W}acr_recontacted" and w and lab.get("days") == ACR_DAYS:
            s.acr_recontacted[w] = value
        elif name == f"{W}first_response_max_seconds" and w:
            s.longest_first_response[w] = value
        elif name in now_by_name:
            s.now[now_by_name[name]] = value
        elif name == "ticketpulse_service_level_objective_ratio":
            s.objective = value
        elif name == "ticketpulse_queue_calendar_info" and lab.get("calendar") != NO_CALENDAR:
            s.calendars.add(lab["calendar"])
    return dict(out)


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """``histogram_quantile`` over cumulative buckets (linear within a bucket, as Prometheus)."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if le == float("inf"):
                return lower  # the highest finite bound, as Prometheus answers
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def _at_most(estimate: float | None, longest: float | None) -> float | None:
    """A quantile interpolated within its bucket can pass the exact longest value, which the
    true quantile never does: a p90 above the max on a board reads as a bug."""
    if estimate is None or longest is None:
        return estimate
    return min(estimate, longest)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def window_figures(s: Series, window: str) -> dict[str, Any]:
    c = s.components.get(window, {})
    get = c.get
    resolutions = get("acr_resolutions", 0.0)
    return {
        "components": dict(sorted(c.items())),
        "figures": {
            "service_level": _ratio(
                get("service_level_numerator", 0.0), get("service_level_denominator", 0.0)
            ),
            "abandonment_rate": _ratio(get("abandoned", 0.0), get("offered", 0.0)),
            "transfer_rate": _ratio(get("transfers_out", 0.0), get("answered", 0.0)),
            "fcr_rate": _ratio(get("resolved_first_contact", 0.0), get("resolved", 0.0)),
            "aht_seconds": _ratio(get("handle_time_seconds", 0.0), get("handled", 0.0)),
            "csat": _ratio(get("csat_satisfied", 0.0), get("csat_responses", 0.0)),
            "frt_mean_seconds": _ratio(
                get("first_response_seconds_sum", 0.0), get("first_response_count", 0.0)
            ),
            "frt_p90_seconds": _at_most(
                quantile(0.9, s.buckets.get(window, {})), s.longest_first_response.get(window)
            ),
            "frt_max_seconds": s.longest_first_response.get(window),
            f"acr_provisional_{ACR_DAYS}d": _ratio(
                resolutions - s.acr_recontacted.get(window, 0.0), resolutions
            ),
        },
    }


def document(
    metrics: Metrics,
    *,
    windows: list[str],
    queues: set[str] | None = None,
    channels: set[str] | None = None,
) -> dict[str, Any]:
    """The body of ``/api/v1/figures`` (without the source fields)."""
    series = {
        key: s
        for key, s in series_of(metrics).items()
        if (queues is None or key[0] in queues) and (channels is None or key[1] in channels)
    }
    per_queue: dict[str, Series] = defaultdict(Series)
    total = Series()
    for (queue, _), s in series.items():
        per_queue[queue].add(s)
        total.add(s)

    def render(s: Series, **labels: str) -> dict[str, Any]:
        return {
            **labels,
            "objective": s.objective,
            "business_hours": sorted(s.calendars),  # targets in business time (calendars)
            "now": {name: s.now.get(name, 0.0) for name in NOW},
            "windows": {w: window_figures(s, w) for w in windows},
        }

    return {
        "series": [render(s, queue=q, channel=c) for (q, c), s in sorted(series.items())],
        "queues": [render(s, queue=q) for q, s in sorted(per_queue.items())],
        "total": render(total, queue="total"),
    }
