"""Grafana dashboards, generated from the catalogue's names and the recording rules.

The panels are built from the same tables the exporter and the rules use
(``streams.metrics.catalogue``, ``streams.ops.rules``), so a renamed figure breaks the
generator or the name test instead of silently emptying a panel. Every dashboard, panel,
query and variable is made by Grafana Labs' typed builders (``grafana-foundation-sdk``,
pinned to its Grafana 11.6 build, schema 41): a misspelt option is an AttributeError, not a
silently ignored key. Output has fixed uids and the provisioned datasource uid, no
``__inputs``: file provisioning does not resolve them.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as gc
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import stat as gs
from grafana_foundation_sdk.builders import table as gt
from grafana_foundation_sdk.builders import timeseries as gts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as mc
from grafana_foundation_sdk.models import dashboard as md
from grafana_foundation_sdk.models import prometheus as mp

from streams.config import Settings
from streams.metrics.catalogue import WINDOW_PREFIX as RECORDED  # recorded rule names
from streams.metrics.catalogue import now_metric as N
from streams.metrics.catalogue import window_metric as W
from streams.ops.rules import COMPLETE, WINDOW_MEANS, WINDOW_RATIOS, complete, now_record

DATASOURCE = md.DataSourceRef(type_val="prometheus", uid="prometheus")
# one deployment at a time: its workers' scrape job and `env` (deploy/prometheus: `env` tells
# deployments apart within a job; a Prometheus may scrape several)
DEPLOYMENT = 'job="$job", env="$env"'
SEL = f'{DEPLOYMENT}, queue=~"$queue", channel=~"$channel"'
IN_DEPLOYMENT = "{" + DEPLOYMENT + "}"  # a selector of the deployment alone
WSEL = f'{SEL}, window="$window"'
TAGS = ["ticketpulse"]
BUSINESS_TIME = (
    "A queue whose target clock (table below) is a calendar counts its first-response and "
    "resolution times, targets and breaches in business seconds of it (docs/metrics.md)."
)
Panel = Any  # a panel builder of grafana-foundation-sdk (stat, timeseries, table, row)
OLDEST = "oldest_waiting_contact_age_seconds"
OLDEST_ON_TARGET_CLOCK = "oldest_waiting_contact_target_age_seconds"  # what its alert reads
HELD = (
    "The series the alerts read: while partitions change hands it holds its last complete "
    "value, up to 5 minutes (docs/runbooks.md)."
)
KINDS: dict[str, Any] = {"timeseries": gts.Panel, "stat": gs.Panel, "table": gt.Panel}


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> md.GridPos:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = md.GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def new_row(self) -> None:
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0

    def id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _target(expr: str, legend: str, ref: str, *, instant: bool = False) -> gp.Dataquery:
    query = gp.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    if instant:  # the current value of each series, one table row per label set
        query = query.instant().format(mp.PromQueryFormat.TABLE)
    return query


def _thresholds(steps: list[tuple[str, float | None]]) -> gd.ThresholdsConfig:
    return (
        gd.ThresholdsConfig()
        .mode(md.ThresholdsMode.ABSOLUTE)
        .steps([md.Threshold(color=c, value=v) for c, v in steps])
    )


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
) -> Panel:
    built: Any = (
        KINDS[kind]()
        .id(layout.id())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .grid_pos(layout.place(w, h))
        .unit(unit)
    )
    for i, (expr, legend) in enumerate(exprs):
        built = built.with_target(_target(expr, legend, chr(65 + i), instant=kind == "table"))
    if thresholds:
        built = built.thresholds(_thresholds(thresholds)).color_scheme(
            gd.FieldColor().mode(md.FieldColorModeId.THRESHOLDS)
        )
    if kind == "stat":
        built = (
            built.color_mode(mc.BigValueColorMode.BACKGROUND)
            .graph_mode(mc.BigValueGraphMode.NONE)
            .text_mode(mc.BigValueTextMode.VALUE)
            .reduce_options(gc.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        )
    return built


def _variable(name: str, query: str, *, multi: bool = True) -> gd.QueryVariable:
    variable = (
        gd.QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(md.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(md.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        variable = variable.all_value(".*").current(
            md.VariableOption(selected=True, text=["All"], value=["$__all"])
        )
    return variable


def _window_variable(settings: Settings) -> gd.CustomVariable:
    names = list(settings.windows)
    return (
        gd.CustomVariable("window")
        .label("window")
        .values(",".join(names))
        .options([md.VariableOption(selected=i == 0, text=n, value=n) for i, n in enumerate(names)])
        .current(md.VariableOption(selected=True, text=names[0], value=names[0]))
        .multi(False)
        .include_all(False)
    )


def dashboard(
    uid: str,
    title: str,
    panels: list[Panel],
    variables: list[Any],
    *,
    refresh: str = "30s",
    time_from: str = "now-6h",
    description: str = "",
) -> dict[str, Any]:
    """The dashboard's JSON, as Grafana's own schema types encode it."""
    built = (
        gd.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .timezone("browser")
        .version(1)
        .editable()
        .readonly()
        .tooltip(md.DashboardCursorSync.CROSSHAIR)
        .refresh(refresh)
        .time(time_from, "now")
        .link(
            gd.DashboardLink("ticketpulse")
            .type(md.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
        )
    )
    for variable in variables:
        built = built.with_variable(variable)
    for p in panels:
        built = built.with_row(p) if isinstance(p, gd.Row) else built.with_panel(p)
    out: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(built.build()))
    return out


def _deployment_vars() -> list[gd.QueryVariable]:
    """The deployment shown: one scrape job and one ``env`` in it, never several summed (their
    figures and their completeness are each their own); Grafana picks the first on load. With
    no ``env`` label at all the variable is empty, and ``env=""`` selects every series."""
    return [
        _variable("job", "label_values(ticketpulse_topic_partitions, job)", multi=False),
        _variable(
            "env", 'label_values(ticketpulse_topic_partitions{job="$job"}, env)', multi=False
        ),
    ]


def _queue_vars() -> list[gd.QueryVariable]:
    offered = f"{W('contacts_offered')}{IN_DEPLOYMENT}"
    return [
        *_deployment_vars(),
        _variable("queue", f"label_values({offered}, queue)"),
        _variable("channel", f"label_values({offered}, channel)"),
    ]


def _whole(expr: str) -> str:
    """A figure summed over every label of the selected job, shown only from that job's
    complete reading, as the recorded figures are (``streams.ops.rules.complete``): a tile
    keeps its last complete value."""
    return f"({expr}) and on () {COMPLETE}{IN_DEPLOYMENT}"


def _now(name: str, agg: str = "sum") -> str:
    """A Now gauge over the workers, per queue and channel, from complete readings."""
    return complete(f"{agg} without (instance) ({N(name)}{{{SEL}}})")


def _alerted(name: str) -> str:
    """The recorded Now figure that the alerts read (``streams.ops.rules.now_rules``), so the
    panel shows what an alert sees, held through a handover as it is."""
    return f"{now_record(name)}{{{SEL}}}"


def _share(num: str, den: str, selector: str) -> str:
    """A ratio of summed components (over workers and the selected channels)."""
    return f"sum({num}{{{selector}}}) / sum({den}{{{selector}}})"


def _objective_from_query(tile: Panel, selector: str) -> Panel:
    """Colour a service-level tile against its queue's own objective, not a static one: a
    second query reads ``ticketpulse_service_level_objective_ratio`` and Grafana's "config
    from query results" transformation makes it the tile's green threshold (red below)."""
    objective = f"max({N('service_level_objective_ratio')}{{{selector}}})"
    mapping = {
        "fieldName": "objective",
        "handlerKey": "threshold1",
        "handlerArguments": {"threshold": {"color": "green"}},
    }
    config = {
        "configRefId": "B",
        "mappings": [mapping],
        "applyTo": {"id": "byFrameRefID", "options": "A"},
    }
    return (
        tile.with_target(_target(objective, "objective", "B"))
        .thresholds(_thresholds([("red", None)]))
        .with_transformation(md.DataTransformerConfig(id_val="configFromData", options=config))
    )


def wallboard(settings: Settings) -> dict[str, Any]:
    """Kiosk wallboard: one row of big tiles per queue, coloured from the configured targets.
    Tiles divide summed components, so a channel filter still gives exact ratios."""
    objective = settings.service_level_objective
    phone = settings.policy().for_queue("", "phone").first_response_target_s
    layout = Layout()
    q = f'{DEPLOYMENT}, queue="$queue", channel=~"$channel"'
    f15, f24 = f'{q}, window="15m"', f'{q}, window="24h"'
    row = gd.Row("$queue").id(layout.id()).repeat("queue").grid_pos(layout.place(24, 1))
    layout.new_row()
    frt_buckets = W("first_response_seconds", "_bucket")
    # (title, expr, unit, thresholds as (colour, from value)); one stat tile each
    specs: list[tuple[str, str, str, list[tuple[str, float | None]]]] = [
        ("Waiting now", f"sum({N('contacts_waiting')}{{{q}}})", "short",
         [("green", None), ("orange", 5), ("red", 15)]),
        ("Oldest wait", f"max({N(OLDEST)}{{{q}}})", "s",
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
        panel(
            layout, title, [(_whole(expr), title)], kind="stat", unit=unit, w=4, h=6,
            thresholds=steps,
        )
        for title, expr, unit, steps in specs
    ]  # fmt: skip
    tiles[2] = _objective_from_query(tiles[2], q)
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
    panels: list[Panel] = []

    def counts(title: str, metric: str, **kw: Any) -> None:
        expr = complete(f"sum without (instance) ({W(metric)}{{{WSEL}}})")
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
                    complete(
                        f"max without (instance) ({W('first_response_max_seconds')}{{{WSEL}}})"
                    ),
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
                (_now("contacts_open"), f"open {legend}"),
                (_now("contacts_waiting"), f"waiting {legend}"),
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
            [(_alerted("first_response_breaches"), legend)],
            description=f"{BUSINESS_TIME} {HELD}",
        ),
        panel(
            layout,
            "Resolution breaches now",
            [(_alerted("resolution_breaches"), legend)],
            description=f"{BUSINESS_TIME} {HELD}",
        ),
        panel(
            layout,
            "Target clock per queue: a business-hours calendar, or 24x7",
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
            "Oldest wait against target (on the target's clock)",
            [
                (_alerted(OLDEST_ON_TARGET_CLOCK), legend),
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


def _flow_panels(layout: Layout) -> list[Panel]:
    """Throughput, dead letters, lag and event-time delay."""
    return [
        panel(
            layout,
            "Events accepted per second",
            [
                (
                    f"sum by (event_type) (rate(ticketpulse_events_accepted_total{IN_DEPLOYMENT}"
                    "[$__rate_interval]))",
                    "{{event_type}}",
                )
            ],
            unit="ops",
        ),
        panel(
            layout,
            "Dead-lettered per second",
            [
                (
                    f"sum by (reason) (rate(ticketpulse_events_rejected_total{IN_DEPLOYMENT}"
                    "[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            unit="ops",
        ),
        panel(
            layout,
            "Consumer lag",
            [
                (
                    f"sum by (partition) (ticketpulse_consumer_lag_records{IN_DEPLOYMENT})",
                    "partition {{partition}}",
                )
            ],
        ),
        panel(
            layout,
            "Event time behind wall clock",
            [
                (
                    f"time() - ticketpulse_event_time_watermark_timestamp_seconds{IN_DEPLOYMENT}",
                    "partition {{partition}}",
                )
            ],
            unit="s",
        ),
    ]


def _ownership_panels(layout: Layout) -> list[Panel]:
    """Partition ownership, rebalances, duplicates and late events, heartbeat."""
    return [
        panel(
            layout,
            "Partitions per worker",
            [(f"ticketpulse_partitions_assigned{IN_DEPLOYMENT}", "{{instance}} {{role}}")],
        ),
        panel(
            layout,
            "Partitions not held exactly once (no active owner, tables recovering, or two "
            "workers' scrapes)",
            [
                (
                    f"max(ticketpulse_topic_partitions{IN_DEPLOYMENT}) - (count(sum by (partition)"
                    f" (ticketpulse_partition_active{IN_DEPLOYMENT}) == 1) or vector(0))",
                    "not held once",
                )
            ],
            kind="stat",
            thresholds=[("green", None), ("red", 1)],
        ),
        panel(
            layout,
            "Rebalances",
            [
                (
                    "sum by (instance) "
                    f"(increase(ticketpulse_rebalances_total{IN_DEPLOYMENT}[1h]))",
                    "{{instance}}",
                )
            ],
        ),
        panel(
            layout,
            "Duplicate and late events (24h)",
            [
                (f'sum({W("duplicate_events")}{{{DEPLOYMENT}, window="24h"}})', "duplicates"),
                (f'sum({W("late_events")}{{{DEPLOYMENT}, window="24h"}})', "late"),
            ],
        ),
        panel(
            layout,
            "Seconds since a worker last processed a record",
            [
                (
                    f"time() - ticketpulse_last_processed_timestamp_seconds{IN_DEPLOYMENT}",
                    "{{instance}}",
                )
            ],
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
        _deployment_vars(),
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
