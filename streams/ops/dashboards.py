"""Grafana dashboards, generated from the exporter's names and the recording rules.

The panels are built from the same tables the exporter and the rules use
(``streams.metrics.kpi_exporter``, ``streams.ops.rules``), so a renamed figure breaks the
generator or the name test instead of silently emptying a panel. Output is plain
dashboard JSON (schema 39) with fixed uids and the provisioned datasource uid, no
``__inputs``: file provisioning does not resolve them.
"""

from __future__ import annotations

from typing import Any

from streams.config import Settings
from streams.metrics.catalogue import WINDOW_PREFIX as RECORDED  # recorded rule names
from streams.metrics.catalogue import now_metric as N
from streams.metrics.catalogue import window_metric as W
from streams.ops.rules import WINDOW_MEANS, WINDOW_RATIOS

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SEL = 'queue=~"$queue", channel=~"$channel"'
WSEL = f'{SEL}, window="$window"'
TAGS = ["ticketpulse"]
BUSINESS_TIME = (
    "A queue listed under 'Queues on business hours' counts its first-response and resolution "
    "times, targets and breaches in business seconds of its calendar (docs/metrics.md)."
)


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def new_row(self) -> None:
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0

    def id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _targets(exprs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
        for i, (expr, legend) in enumerate(exprs)
    ]


def _thresholds(steps: list[tuple[str, float | None]]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def panel(
    layout: Layout,
    title: str,
    exprs: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    w: int = 8,
    h: int = 8,
    thresholds: list[tuple[str, float | None]] | None = None,
    description: str = "",
) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit}
    if thresholds:
        defaults["thresholds"] = _thresholds(thresholds)
        defaults["color"] = {"mode": "thresholds"}
    out: dict[str, Any] = {
        "id": layout.id(),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": layout.place(w, h),
        "targets": _targets(exprs),
        "fieldConfig": {"defaults": defaults, "overrides": []},
    }
    if kind == "table":  # the current value of each series, one row per label set
        for target in out["targets"]:
            target.update({"instant": True, "format": "table"})
    if kind == "stat":
        out["options"] = {
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        }
    return out


def _variable(name: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "includeAll": multi,
        "multi": multi,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
        "sort": 1,
    }


def _window_variable(settings: Settings) -> dict[str, Any]:
    names = list(settings.windows)
    return {
        "name": "window",
        "label": "window",
        "type": "custom",
        "query": ",".join(names),
        "options": [{"selected": i == 0, "text": n, "value": n} for i, n in enumerate(names)],
        "current": {"selected": True, "text": names[0], "value": names[0]},
        "multi": False,
        "includeAll": False,
    }


def dashboard(
    uid: str,
    title: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
    *,
    refresh: str = "30s",
    time_from: str = "now-6h",
    description: str = "",
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"title": "ticketpulse", "type": "dashboards", "tags": TAGS, "asDropdown": True}],
        "panels": panels,
    }


def _queue_vars() -> list[dict[str, Any]]:
    return [
        _variable("queue", f"label_values({W('contacts_offered')}, queue)"),
        _variable("channel", f"label_values({W('contacts_offered')}, channel)"),
    ]


def _share(num: str, den: str, selector: str) -> str:
    """A ratio of summed components (over workers and the selected channels)."""
    return f"sum({num}{{{selector}}}) / sum({den}{{{selector}}})"


def wallboard(settings: Settings) -> dict[str, Any]:
    """Kiosk wallboard: one row of big tiles per queue, coloured from the configured targets.
    Tiles divide summed components, so a channel filter still gives exact ratios."""
    objective = settings.service_level_objective
    phone = settings.policy().for_queue("", "phone").first_response_target_s
    layout = Layout()
    q = 'queue="$queue", channel=~"$channel"'
    f15, f24 = f'{q}, window="15m"', f'{q}, window="24h"'
    row = {
        "id": layout.id(),
        "type": "row",
        "title": "$queue",
        "repeat": "queue",
        "collapsed": False,
        "gridPos": layout.place(24, 1),
        "panels": [],
    }
    layout.new_row()
    frt_buckets = W("first_response_seconds", "_bucket")
    # (title, expr, unit, thresholds as (colour, from value)); one stat tile each
    specs: list[tuple[str, str, str, list[tuple[str, float | None]]]] = [
        ("Waiting now", f"sum({N('contacts_waiting')}{{{q}}})", "short",
         [("green", None), ("orange", 5), ("red", 15)]),
        ("Oldest wait", f"max({N('oldest_waiting_contact_age_seconds')}{{{q}}})", "s",
         [("green", None), ("orange", phone), ("red", 2 * phone)]),
        ("Service level (15m)",
         _share(W("service_level_numerator"), W("service_level_denominator"), f15),
         "percentunit", [("red", None), ("orange", objective - 0.1), ("green", objective)]),
        ("Abandonment (15m)", _share(W("contacts_abandoned"), W("contacts_offered"), f15),
         "percentunit", [("green", None), ("orange", 0.05), ("red", 0.1)]),
        ("First response p90 (15m)",
         f"histogram_quantile(0.9, sum by (le) ({frt_buckets}{{{f15}}}))",
         "s", [("green", None), ("orange", phone), ("red", 3 * phone)]),
        ("ACR (24h, provisional, longest period)",
         f"1 - max(sum by (days) ({W('acr_recontacted')}{{{f24}}}))"
         f" / sum({W('acr_resolutions')}{{{f24}}})",
         "percentunit", [("red", None), ("orange", 0.7), ("green", 0.8)]),
    ]  # fmt: skip
    tiles = [
        panel(layout, title, [(expr, title)], kind="stat", unit=unit, w=4, h=6, thresholds=steps)
        for title, expr, unit, steps in specs
    ]
    return dashboard(
        "ticketpulse-wallboard",
        "ticketpulse / Wallboard",
        [row, *tiles],
        _queue_vars(),
        refresh="10s",
        time_from="now-15m",
        description="For a TV in kiosk mode (?kiosk): the live state of every queue.",
    )


def overview(settings: Settings) -> dict[str, Any]:
    """Every figure per queue and channel over time, for the selected window."""
    layout = Layout()
    legend = "{{queue}}/{{channel}}"
    panels: list[dict[str, Any]] = []

    def counts(title: str, metric: str, **kw: Any) -> None:
        expr = f"sum without (instance) ({W(metric)}{{{WSEL}}})"
        panels.append(panel(layout, title, [(expr, legend)], **kw))

    def rule(title: str, record: str, unit: str = "percentunit", **kw: Any) -> None:
        expr = f"queue_channel:{RECORDED}{record}{{{WSEL}}}"
        panels.append(panel(layout, title, [(expr, legend)], unit=unit, **kw))

    counts("Contacts offered", "contacts_offered")
    counts("Contacts answered (first responses)", "first_responses")
    counts("Contacts abandoned", "contacts_abandoned")
    for name in WINDOW_RATIOS:
        rule(name.replace("_", " ").capitalize(), f"{name}:ratio")
    rule("ACR provisional", "acr_provisional:ratio")
    rule("NPS (-1 to 1)", "nps:ratio", unit="short")
    for name in WINDOW_MEANS:
        unit = "short" if name == "ces_score" else "s"
        rule(f"Mean {name.replace('_', ' ')}", f"{name}:mean", unit=unit)
    panels.append(
        panel(
            layout,
            "First response time quantiles",
            [
                (f"queue_channel:{W('first_response_seconds')}:{p}{{{WSEL}}}", f"{p} {legend}")
                for p in ("p50", "p90", "p99")
            ]
            + [
                (
                    f"max without (instance) ({W('first_response_max_seconds')}{{{WSEL}}})",
                    f"max {legend}",
                )
            ],
            unit="s",
        )
    )
    counts("Transfers out", "transfers_out")
    counts("Reopens", "reopens")
    counts("Complaints", "complaints")
    counts("Repeat contacts", "repeat_contacts")
    panels.append(
        panel(
            layout,
            "Backlog now",
            [
                (f"sum without (instance) ({N('contacts_open')}{{{SEL}}})", f"open {legend}"),
                (
                    f"sum without (instance) ({N('contacts_waiting')}{{{SEL}}})",
                    f"waiting {legend}",
                ),
            ],
        )
    )
    return dashboard(
        "ticketpulse-overview",
        "ticketpulse / Overview",
        panels,
        [*_queue_vars(), _window_variable(settings)],
        description="Every figure of docs/metrics.md per queue and channel.",
    )


def sla(settings: Settings) -> dict[str, Any]:
    layout = Layout()
    legend = "{{queue}}/{{channel}}"
    obj = f"queue_channel:ticketpulse_service_level_objective:ratio{{{SEL}}}"
    panels = [
        panel(
            layout,
            "Service level against objective",
            [
                (f"queue_channel:{RECORDED}service_level:ratio{{{WSEL}}}", f"{legend}"),
                (obj, f"objective {legend}"),
            ],
            unit="percentunit",
            w=12,
        ),
        panel(
            layout,
            "Error-budget burn rate (1h)",
            [
                (
                    f"queue_channel:ticketpulse_first_response_errors:ratio_rate1h{{{SEL}}}"
                    f" / (1 - {obj})",
                    legend,
                )
            ],
            w=12,
            thresholds=[("green", None), ("orange", 1), ("red", 2)],
            description="1 = spending the budget exactly as fast as it is earned.",
        ),
        panel(
            layout,
            "First-response breaches now",
            [(f"sum without (instance) ({N('first_response_breaches')}{{{SEL}}})", legend)],
            description=BUSINESS_TIME,
        ),
        panel(
            layout,
            "Resolution breaches now",
            [(f"sum without (instance) ({N('resolution_breaches')}{{{SEL}}})", legend)],
            description=BUSINESS_TIME,
        ),
        panel(
            layout,
            "Queues on business hours (their targets run in business time)",
            [
                (
                    f"max by (queue, channel, calendar) ({N('queue_calendar_info')}{{{SEL}}})",
                    "{{queue}}/{{channel}}: {{calendar}}",
                )
            ],
            kind="table",
            w=24,
            h=5,
            description=BUSINESS_TIME,
        ),
        panel(
            layout,
            "Oldest wait against target",
            [
                (
                    f"max without (instance) ({N('oldest_waiting_contact_age_seconds')}{{{SEL}}})",
                    legend,
                ),
                (
                    f"max without (instance) ({N('first_response_target_seconds')}{{{SEL}}})",
                    f"target {legend}",
                ),
            ],
            unit="s",
        ),
    ]
    return dashboard(
        "ticketpulse-sla",
        "ticketpulse / SLA",
        panels,
        [*_queue_vars(), _window_variable(settings)],
        description="Service level against each queue's objective, breaches and budget burn.",
    )


def _flow_panels(layout: Layout) -> list[dict[str, Any]]:
    """Throughput, dead letters, lag and event-time delay."""
    return [
        panel(
            layout,
            "Events accepted per second",
            [
                (
                    "sum by (type) (rate(ticketpulse_events_accepted_total[$__rate_interval]))",
                    "{{type}}",
                )
            ],
            unit="ops",
        ),
        panel(
            layout,
            "Dead-lettered per second",
            [
                (
                    "sum by (reason) (rate(ticketpulse_events_rejected_total[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            unit="ops",
        ),
        panel(
            layout,
            "Consumer lag",
            [("sum by (partition) (ticketpulse_consumer_lag_records)", "partition {{partition}}")],
        ),
        panel(
            layout,
            "Event time behind wall clock",
            [
                (
                    "time() - ticketpulse_event_time_watermark_timestamp_seconds",
                    "partition {{partition}}",
                )
            ],
            unit="s",
        ),
    ]


def _ownership_panels(layout: Layout) -> list[dict[str, Any]]:
    """Partition ownership, rebalances, duplicates and late events, heartbeat."""
    return [
        panel(
            layout,
            "Partitions per worker",
            [("ticketpulse_partitions_assigned", "{{instance}} {{role}}")],
        ),
        panel(
            layout,
            "Partitions without an active owner",
            [
                (
                    "max(ticketpulse_topic_partitions)"
                    ' - sum(ticketpulse_partitions_assigned{role="active"})',
                    "unowned",
                )
            ],
            kind="stat",
            thresholds=[("green", None), ("red", 1)],
        ),
        panel(
            layout,
            "Rebalances",
            [("sum by (instance) (increase(ticketpulse_rebalances_total[1h]))", "{{instance}}")],
        ),
        panel(
            layout,
            "Duplicate and late events (24h)",
            [
                (f'sum({W("duplicate_events")}{{window="24h"}})', "duplicates"),
                (f'sum({W("late_events")}{{window="24h"}})', "late"),
            ],
        ),
        panel(
            layout,
            "Seconds since a worker last processed a record",
            [("time() - ticketpulse_last_processed_timestamp_seconds", "{{instance}}")],
            unit="s",
        ),
    ]


def pipeline(settings: Settings) -> dict[str, Any]:
    layout = Layout()
    panels = _flow_panels(layout) + _ownership_panels(layout)
    return dashboard(
        "ticketpulse-pipeline",
        "ticketpulse / Pipeline",
        panels,
        [],
        description="Throughput, lag, event-time watermark, dead letters, partition ownership.",
    )


def dashboards(settings: Settings) -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON."""
    return {
        "wallboard.json": wallboard(settings),
        "overview.json": overview(settings),
        "sla.json": sla(settings),
        "pipeline.json": pipeline(settings),
    }


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target, for tests and linting."""
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
