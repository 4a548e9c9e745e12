"""``ticketpulse report FILE``: the figures of a JSONL log, computed offline by the core.

The log is read as one partition in file order, with the event clock: windows
end at the log's watermark. Components are printed next to the ratios they make,
so a number on a wallboard can be traced back to its counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.config import Settings
from streams.core.buckets import Entry
from streams.core.contacts import days_label
from streams.core.policy import ServiceLevelPreset, service_level_denominator
from streams.core.windows import Sums, window_sums
from streams.ingest.schema import Accepted, classify
from streams.metrics.catalogue import ACR_FIGURES, HISTOGRAMS, WINDOW_FIGURES, WINDOW_SUMS
from streams.processing.bucket_store import bucket_contents
from streams.processing.kpi import figures_by_pass
from streams.processing.local import LocalPipeline
from streams.tools.produce import key_of


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 6) if den else None


def derived_figures(c: dict[str, float], preset: ServiceLevelPreset) -> dict[str, float | None]:
    den = service_level_denominator(
        preset,
        int(c["first_responses"]),
        int(c["contacts_abandoned"]),
        int(c["contacts_short_abandoned"]),
    )
    nps = c["nps_responses"]
    return {
        "service_level": _ratio(c["first_responses_within_target"], den),
        "abandonment_rate": _ratio(c["contacts_abandoned"], c["contacts_offered"]),
        "transfer_rate": _ratio(c["transfers_out"], c["first_responses"]),
        "fcr_rate": _ratio(c["contacts_resolved_first_contact"], c["contacts_resolved"]),
        "first_response_mean_seconds": _ratio(
            c["first_response_seconds_sum"], c["first_responses"]
        ),
        "resolution_mean_seconds": _ratio(c["resolution_seconds_sum"], c["contacts_resolved"]),
        "aht_seconds": _ratio(c["handle_time_seconds"], c["contacts_handled"]),
        "csat": _ratio(c["csat_satisfied_responses"], c["csat_responses"]),
        "nps": (
            round(100 * (c["nps_promoter_responses"] - c["nps_detractor_responses"]) / nps, 3)
            if nps
            else None
        ),
        "ces": _ratio(c["ces_summed_score"], c["ces_responses"]),
    }


def report(
    lines: Iterable[bytes],
    settings: Settings,
    now: float,
    between: tuple[float | None, float | None] = (None, None),
) -> dict[str, Any]:
    """Every figure of a log as one worker with one partition computes it (event clock)."""
    pipeline = LocalPipeline(settings.kpi_settings())
    counts = apply_log(pipeline, lines, settings, now, between)
    proc, customers = pipeline.tickets, pipeline.customers
    end = proc.clock.clock(0)
    out: dict[str, Any] = {"records": counts, "window_end": end, "windows": {}, "now": {}}
    if end is None:
        return out
    rows = bucket_contents(proc.tables.buckets, {0})[0][0]
    rows += bucket_contents(customers.tables.cbuckets, {0})[0][0]
    sums = window_sums(rows, settings.windows, end, settings.bucket_seconds, settings.timezone)
    days = [days_label(d) for d in settings.recontact_days]
    policy = settings.policy()
    for window, figures in sums.items():
        per: dict[str, dict[str, Any]] = {}
        for q, c in sorted({(q, c) for (_, q, c) in figures}):
            comp = components(figures, q, c, days)
            derived = derived_figures(comp, policy.for_queue(q, c).service_level)
            derived.update(acr_figures(comp, days))
            per[f"{q}/{c}"] = {"components": comp, "figures": derived}
        out["windows"][window] = per
    for (q, c), fig in sorted(figures_by_pass(proc.tables.tickets, {0: end}, policy)[0].items()):
        out["now"][f"{q}/{c}"] = vars(fig)
    return out


@dataclass
class EventSpan:
    """The earliest event time accepted: where the part of time a log covers begins (its
    end is the watermark the pipeline keeps)."""

    first: float = math.inf

    def add(self, at: float) -> None:
        self.first = min(self.first, at)


def apply_log(
    pipeline: LocalPipeline,
    lines: Iterable[bytes],
    settings: Settings,
    now: float,
    between: tuple[float | None, float | None] = (None, None),
    span: EventSpan | None = None,
) -> dict[str, int]:
    """Classify and process every line; ``between`` cuts the log by event time ([from, to):
    events outside are left out and counted as ``outside_range``). Rejected lines are also
    counted by reason (``rejected_schema`` ...), the reasons of docs/events.md. ``span``, when
    given, learns the event times accepted."""
    counts = {"records": 0, "accepted": 0, "rejected": 0, "duplicate": 0, "late": 0}
    since, until = between
    if since is not None or until is not None:
        counts["outside_range"] = 0
    for offset, line in enumerate(lines):
        counts["records"] += 1
        outcome = classify(
            key_of(line),
            line,
            now=now,
            future_tolerance_s=settings.future_tolerance_seconds,
            max_bytes=settings.max_record_bytes,  # as the worker: a record it takes, counted
        )
        if not isinstance(outcome, Accepted):
            counts["rejected"] += 1
            by_reason = f"rejected_{outcome.reason}"  # as the worker's dead-letter reasons
            counts[by_reason] = counts.get(by_reason, 0) + 1
            continue
        at = outcome.event.occurred_at
        if (since is not None and at < since) or (until is not None and at >= until):
            counts["outside_range"] += 1
            continue
        counts["accepted"] += 1
        if span is not None:
            span.add(at)
        result = pipeline.process(offset, outcome.event)
        if result.outcome != "applied":
            counts[result.outcome] += 1
    return counts


def components(figures: Sums, q: str, c: str, days: list[str]) -> dict[str, float]:
    """The additive components of one queue x channel, named as the exporter names them."""

    def get(entry: Entry) -> tuple[float, int]:
        return figures.get((entry, q, c), (0.0, 0))

    comp: dict[str, float] = {}
    for figure, (name, _) in WINDOW_FIGURES.items():
        comp[name] = get(Entry(figure))[1]
    for figure, (name, _) in WINDOW_SUMS.items():
        comp[name] = get(Entry(figure))[0]
    for figure, (name, _) in HISTOGRAMS.items():
        comp[f"{name}_sum"] = round(get(Entry(figure))[0], 3)
    for figure, (name, _) in ACR_FIGURES.items():
        for d in days:
            comp[f"{name}_{d}d"] = get(Entry(figure, days=d))[1]
    return comp


def acr_figures(comp: dict[str, float], days: list[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for d in days:
        resolved = comp["acr_resolutions"]
        out[f"acr_provisional_{d}d"] = _ratio(resolved - comp[f"acr_recontacted_{d}d"], resolved)
        out[f"acr_final_{d}d"] = _ratio(
            comp[f"acr_final_active_resolutions_{d}d"], comp[f"acr_final_resolutions_{d}d"]
        )
    return out
