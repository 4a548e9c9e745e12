"""Prometheus recording rules, generated from the exporter's metric names.

Every ratio is built the way docs/metrics.md defines it: numerator and denominator
are summed ``without (instance)`` first (across workers), then divided, never the
average of per-worker ratios. Three levels: ``queue_channel`` (drops instance),
``queue`` (drops instance and channel) and ``job`` (drops queue and channel too).
An empty denominator gives no sample rather than NaN (``/ (den > 0)``).

Every window figure is recorded only from a complete reading (``complete``): while the
workers' last scrapes cover each input partition once. A worker exports no figure while
its partitions change hands (docs/architecture.md), so a sum over the others' would be
too low, not late: it gives no sample instead, as the wallboard keeps its last complete
reading (the alerts ride over the gap with ``keep_firing_for``; the Now figures the alerts
read hold their last complete value: ``now_rules``).
"""

from __future__ import annotations

from typing import Any

from streams.metrics.catalogue import WINDOW_PREFIX as RECORDED  # recorded rule names
from streams.metrics.catalogue import now_metric as N
from streams.metrics.catalogue import window_metric as W

LEVELS: dict[str, str] = {
    "queue_channel": "instance",
    "queue": "instance, channel",
    "job": "instance, queue, channel",
}

# name -> (numerator, denominator): window-gauge ratios
WINDOW_RATIOS: dict[str, tuple[str, str]] = {
    "service_level": (W("service_level_numerator"), W("service_level_denominator")),
    "abandonment": (W("contacts_abandoned"), W("contacts_offered")),
    "short_abandonment": (W("contacts_short_abandoned"), W("contacts_offered")),
    "transfer": (W("transfers_out"), W("first_responses")),
    "first_contact_resolution": (
        W("contacts_resolved_first_contact"),
        W("contacts_resolved"),
    ),
    "resolution_within_target": (
        W("contacts_resolved_within_target"),
        W("contacts_resolved"),
    ),
    "csat": (W("csat_satisfied_responses"), W("csat_responses")),
    "acr_final": (W("acr_final_active_resolutions"), W("acr_final_resolutions")),
}
# name -> (sum, count): window means, in the unit of the sum
WINDOW_MEANS: dict[str, tuple[str, str]] = {
    "first_response_seconds": (
        W("first_response_seconds", "_gsum"),
        W("first_response_seconds", "_gcount"),
    ),
    "reply_wait_seconds": (W("reply_wait_seconds", "_gsum"), W("reply_wait_seconds", "_gcount")),
    "resolution_seconds": (W("resolution_seconds", "_gsum"), W("resolution_seconds", "_gcount")),
    "handle_time_seconds": (W("handle_time_seconds"), W("contacts_handled")),
    "ces_score": (W("ces_summed_score"), W("ces_responses")),
}
# one series, present (valued the partition count) while the workers' last scrapes hold
# every partition of the input topic active exactly once: none missing, none twice
COMPLETE = "job:ticketpulse_topic_partitions:all_active"
# the labels of a figure that the completeness series has not (every other label matches)
FIGURE_LABELS = "queue, channel, window, days, agent, le, calendar"
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
RATE_WINDOWS = ("5m", "30m", "1h", "2h", "6h")


def _sum(metric: str, without: str) -> str:
    return f"sum without ({without}) ({metric})"


def _ratio(num: str, den: str, without: str) -> str:
    return f"{_sum(num, without)}\n  / ({_sum(den, without)} > 0)"


def complete(expr: str) -> str:
    """``expr`` while the reading is complete (``COMPLETE``), else no sample."""
    inner = expr.replace("\n", "\n  ")
    return f"(\n  {inner}\n)\n  and ignoring ({FIGURE_LABELS}) {COMPLETE}"


def completeness_rule() -> dict[str, Any]:
    """Each input partition counted exactly once over the workers' last scrapes, valued the
    partition count (docs/metrics.md, "Complete readings"). A set, not a count: a partition
    held by two workers' scrapes and another by none add up to the right count."""
    once = f"{_sum('ticketpulse_partition_active', 'instance')} == 1"
    return {
        "record": COMPLETE,
        "expr": "max without (instance) (ticketpulse_topic_partitions)\n"
        f"  == count without (partition) ({once})",
    }


def window_rules() -> list[dict[str, Any]]:
    """The completeness rule first (a group evaluates in order, so every rule after it reads
    it at the same instant), then each window figure, gated by it, then the Now figures the
    alerts read, held through incomplete readings."""
    figures = [{**r, "expr": complete(r["expr"])} for r in _figure_rules()]
    return [completeness_rule(), last_complete_rule(), *figures, *now_rules()]


# Now gauge -> how workers combine: the alerts on Now figures read these recorded series
NOW_ALERTED = {
    "first_response_breaches": "sum",
    "resolution_breaches": "sum",
    "oldest_waiting_contact_target_age_seconds": "max",
}
# when the last complete reading was: a Now figure's value stands this long without one
LAST_COMPLETE = "job:ticketpulse_topic_partitions:last_complete_time"
HOLD_S = 300


def last_complete_rule() -> dict[str, Any]:
    """The evaluation time of the last complete reading, carried forward by reading its own
    previous sample while the readings are incomplete."""
    return {"record": LAST_COMPLETE, "expr": f"timestamp({COMPLETE})\n  or {LAST_COMPLETE}"}


def now_record(name: str) -> str:
    """The recorded Now figure of a Now gauge, per queue x channel."""
    return f"queue_channel:{N(name)}:{NOW_ALERTED[name]}"


def now_rules() -> list[dict[str, Any]]:
    """Each Now gauge combined over the workers from a complete reading; while a reading is
    incomplete (a handover), its own previous value, for up to ``HOLD_S`` after the last
    complete one. So a handover neither resolves an alert on it nor restarts a pending one's
    ``for``, and a series that ended in a complete reading stays ended: holding the last
    sample of the range instead (``last_over_time``) brought a cleared one back."""
    rules = []
    for name, agg in NOW_ALERTED.items():
        record = now_record(name)
        current = complete(f"{agg} without (instance) ({N(name)})")
        held = (
            f"{record}\n    unless ignoring (queue, channel) {COMPLETE}\n"
            f"    and ignoring (queue, channel) (time() - {LAST_COMPLETE} < {HOLD_S})"
        )
        rules.append({"record": record, "expr": f"{current}\nor (\n  {held}\n)"})
    return rules


def _figure_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for level, without in LEVELS.items():
        for name, (num, den) in WINDOW_RATIOS.items():
            rules.append(
                {"record": f"{level}:{RECORDED}{name}:ratio", "expr": _ratio(num, den, without)}
            )
        nps = (
            f"(\n  {_sum(W('nps_promoter_responses'), without)}\n"
            f"  - {_sum(W('nps_detractor_responses'), without)}\n)"
            f"\n  / ({_sum(W('nps_responses'), without)} > 0)"
        )
        rules.append({"record": f"{level}:{RECORDED}nps:ratio", "expr": nps})
        acr = (
            f"1 - {_sum(W('acr_recontacted'), without)}\n"
            f"  / ignoring (days) group_left () ({_sum(W('acr_resolutions'), without)} > 0)"
        )
        rules.append({"record": f"{level}:{RECORDED}acr_provisional:ratio", "expr": acr})
        for name, (total, count) in WINDOW_MEANS.items():
            rules.append(
                {"record": f"{level}:{RECORDED}{name}:mean", "expr": _ratio(total, count, without)}
            )
        for label, q in QUANTILES.items():
            buckets = _sum(W("first_response_seconds", "_bucket"), without)
            rules.append(
                {
                    "record": f"{level}:{W('first_response_seconds')}:{label}",
                    "expr": f"histogram_quantile({q}, {buckets})",
                }
            )
    return rules


def rate_rules() -> list[dict[str, Any]]:
    """Counter-based SLI error ratios, for burn-rate alerts (processing time, not event time)."""
    rules: list[dict[str, Any]] = [
        {
            "record": "queue_channel:ticketpulse_service_level_objective:ratio",
            "expr": f"max without (instance) ({N('service_level_objective_ratio')})",
        }
    ]
    for window in RATE_WINDOWS:
        good = _sum(f"rate({N('first_responses_within_target_total')}[{window}])", "instance")
        valid = _sum(f"rate({N('service_level_denominator_total')}[{window}])", "instance")
        rules.append(
            {
                "record": f"queue_channel:ticketpulse_first_response_errors:ratio_rate{window}",
                "expr": f"1 - {good}\n  / ({valid} > 0)",
            }
        )
    for window in ("5m", "1h"):
        name = "queue_channel:ticketpulse_contacts_abandoned_per_offered:ratio_rate"
        rules.append(
            {
                "record": f"{name}{window}",
                "expr": _ratio(
                    f"rate({N('contacts_abandoned_total')}[{window}])",
                    f"rate({N('contacts_offered_total')}[{window}])",
                    "instance",
                ),
            }
        )
    return rules


def rule_groups() -> dict[str, Any]:
    return {
        "groups": [
            {"name": "ticketpulse-window-figures", "rules": window_rules()},
            {"name": "ticketpulse-rate-figures", "rules": rate_rules()},
        ]
    }
