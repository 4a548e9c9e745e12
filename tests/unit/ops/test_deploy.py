"""The deploy assets, checked by real tooling: promtool, the Compose specification schema
(check-jsonschema's vendored copy) and the Kubernetes OpenAPI schemas (kubernetes-validate)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.config import load_settings
from streams.core.calendar import Calendar, parse_ranges
from streams.core.policy import Policy, QueueOverride
from streams.ingest.schema import Accepted, classify
from streams.metrics.kpi_exporter import KpiCollector, LabelFolder, pseudonyms
from streams.metrics.pipeline_exporter import PipelineCollector, build_registry
from streams.ops import generate
from streams.ops.dashboards import panel_queries
from streams.ops.rules import COMPLETE, NOW_ALERTED, now_record
from streams.processing.local import LocalPipeline
from streams.processing.settings import KpiSettings
from streams.runtime.state import PipelineState
from streams.tools.simulator import SimParams
from streams.tools.simulator import generate as simulate

ROOT = Path(__file__).resolve().parents[3]
PROM = ROOT / "deploy/prometheus"
DASHBOARDS = ROOT / "deploy/grafana/dashboards"
BIN = Path(sys.executable).parent
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
KEYWORDS = {
    "sum", "max", "min", "without", "by", "rate", "increase", "and", "or", "unless", "ignoring",
    "on", "group_left", "group_right", "histogram_quantile", "clamp_max", "time", "absent",
    "bool", "count", "avg",
}  # fmt: skip


def run(*cmd: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_prometheus_config_and_rules_pass_promtool_with_lint_fatal(promtool: str) -> None:
    lint = ("--lint=all", "--lint-fatal")
    for name in ("prometheus.yml", "prometheus-kubernetes.yml"):
        config = run(promtool, "check", "config", *lint, name, cwd=PROM)
        assert config.returncode == 0, name + config.stdout + config.stderr
        scrape = yaml.safe_load((PROM / name).read_text())["scrape_configs"]
        # the alerts on workers select up{job="ticketpulse"}
        assert [job["job_name"] for job in scrape] == ["ticketpulse"], name
        assert scrape[0]["sample_limit"] == 250_000, name  # TicketpulseSeriesHigh names it
    rules = sorted((PROM / "rules").glob("*.yml"))
    check = run(promtool, "check", "rules", *lint, *rules)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_kubernetes_scrape_names_each_worker_by_its_pod() -> None:
    """Relabelled as Prometheus does (a fully anchored RE2 match, ``$1``): a stable
    ``instance`` per pod, and its namespace as ``env`` (what tells deployments apart in the
    dashboards and alerts), from the SRV record of the headless Service."""
    config = yaml.safe_load((PROM / "prometheus-kubernetes.yml").read_text())
    (job,) = config["scrape_configs"]
    service = yaml.safe_load((ROOT / "deploy/k8s/service.yaml").read_text())
    (port,) = service["spec"]["ports"]
    (name,) = job["dns_sd_configs"][0]["names"]
    assert name.startswith(f"_{port['name']}._tcp.{service['metadata']['name']}.")
    target = "ticketpulse-1.ticketpulse.prod.svc.cluster.local."
    labels = {}
    for rule in job["relabel_configs"]:
        assert rule["source_labels"] == ["__meta_dns_srv_record_target"]
        match = re.fullmatch(rule["regex"], target)
        assert match is not None, rule
        labels[rule["target_label"]] = match.expand(r"\1")
    assert labels == {"instance": "ticketpulse-1", "env": "prod"}


def test_every_alert_has_promtool_tests_that_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", "tests/alerts.test.yml", cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = yaml.safe_load((PROM / "rules/ticketpulse.alerts.yml").read_text())
    names = {r["alert"] for g in alerts["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROM / "tests/alerts.test.yml").read_text())["tests"]
    tested: dict[str, list[bool]] = {}
    for t in tests:
        for case in t.get("alert_rule_test", []):
            tested.setdefault(case["alertname"], []).append(bool(case["exp_alerts"]))
    for name in names:
        outcomes = tested.get(name, [])
        assert True in outcomes and outcomes.count(False) >= 2, f"{name}: fire, quiet and resolve"
    for group in alerts["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
            assert "{{" not in rule["annotations"]["summary"], "summary is static"
            assert "{{" in rule["annotations"]["description"], "description is templated"
            anchor = rule["annotations"]["runbook_url"].split("#")[1]
            runbooks = (ROOT / "docs/runbooks.md").read_text().lower().splitlines()
            assert f"## {anchor}" in runbooks, f"docs/runbooks.md has no heading {anchor}"


def test_alerts_on_now_gauges_read_the_recorded_figures_that_hold_through_handovers() -> None:
    """Each reads its recorded Now figure (``rules.now_rules``: complete, or held while
    incomplete), never a completeness condition of its own (a copy could drift from the rule)
    nor a hold of its own (``last_over_time`` of a range brought back ended series)."""
    alerts = yaml.safe_load((PROM / "rules/ticketpulse.alerts.yml").read_text())
    exprs = {r["alert"]: " ".join(r["expr"].split()) for g in alerts["groups"] for r in g["rules"]}
    assert not [a for a, e in exprs.items() if "ticketpulse_partition_active" in e]
    for name in NOW_ALERTED:
        (alert,) = [a for a, e in exprs.items() if e.startswith(f"{now_record(name)} ")]
        assert "last_over_time(queue_channel" not in exprs[alert], alert


def test_generated_rules_and_dashboards_are_up_to_date() -> None:
    assert generate.main(["--check"]) == 0, "run `make assets` and commit the result"


def test_dashboards_have_fixed_uids_the_provisioned_datasource_and_no_inputs() -> None:
    boards = {p.name: json.loads(p.read_text()) for p in DASHBOARDS.glob("*.json")}
    assert set(boards) == {"wallboard.json", "overview.json", "sla.json", "pipeline.json"}
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == 4 and all(u.startswith("ticketpulse-") for u in uids)
    for board in boards.values():
        text = json.dumps(board)
        assert "__inputs" not in text and "${DS_" not in text
        for p in board["panels"]:
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus", "uid": "prometheus"}
    for name in ("wallboard.json", "overview.json", "sla.json"):
        variables = {v["name"] for v in boards[name]["templating"]["list"]}
        assert {"job", "env", "queue", "channel"} <= variables
    for name in ("job", "env"):
        (var,) = [v for v in boards["pipeline.json"]["templating"]["list"] if v["name"] == name]
        assert not var["multi"] and not var["includeAll"], "one deployment at a time"
    provisioned = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert provisioned["datasources"][0]["uid"] == "prometheus"


def test_dashboards_decode_as_grafanas_schema_types_and_back() -> None:
    """Each dashboard decodes into grafana-foundation-sdk's Grafana 11.6 types and encodes
    back to the same JSON: no key the schema does not know, none it would drop."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        again = json.loads(JSONEncoder(sort_keys=True).encode(Dashboard.from_json(board)))
        assert again == board, path.name
        assert board["schemaVersion"] == 41


def test_the_wallboard_colours_service_level_from_each_queues_objective() -> None:
    board = json.loads((DASHBOARDS / "wallboard.json").read_text())
    (tile,) = [p for p in board["panels"] if p["title"] == "Service level (15m)"]
    objective = {t["refId"]: t["expr"] for t in tile["targets"]}["B"]
    assert objective.startswith("max(ticketpulse_service_level_objective_ratio{")
    (config,) = tile["transformations"]
    assert config["id"] == "configFromData" and config["options"]["configRefId"] == "B"
    assert config["options"]["mappings"][0]["handlerKey"] == "threshold1"


def substitute(expr: str, queue: str = "sales") -> str:
    """Dashboard variables as Grafana would fill them in."""
    return (
        expr.replace('queue="$queue"', f'queue="{queue}"')
        .replace("$job", "ticketpulse")
        .replace("$env", "")  # a scrape with no env label: the variable is empty
        .replace("$queue", ".*")
        .replace("$channel", ".*")
        .replace("$window", "15m")
        .replace("$__rate_interval", "1m")
    )


def dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for title, expr in panel_queries(json.loads(path.read_text())):
            out.append((path.name, title, substitute(expr)))
    return out


def test_dashboard_queries_parse_as_promql(tmp_path: Path, promtool: str) -> None:
    """promtool parses each panel query, wrapped in a throwaway recording rule."""
    rules = [
        {"record": f"panel:check_{i}:expr", "expr": expr}
        for i, (_, _, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def exporter_text(fold_agent: LabelFolder | None = None) -> str:
    """What a populated worker exports, every family on."""
    office = Calendar("office", "UTC", {d: parse_ranges("08:00-18:00") for d in range(5)})
    policy = Policy(
        recontact_days=(0.01, 1),
        per_agent=True,
        queues={"billing": QueueOverride(calendar="office")},
        calendars={"office": office},
    )
    pipeline = LocalPipeline(KpiSettings(policy=policy))
    state = PipelineState()
    params = SimParams(seed=2, rate=6, max_events=4000, recontact_mean_s=900, reopen_mean_s=900)
    for offset, record in enumerate(simulate(params)):
        outcome = classify(record.key, record.value, now=2e9, future_tolerance_s=300)
        if isinstance(outcome, Accepted):
            state.record_offset(0, offset)
            state.record_accepted(0, outcome.event, 1.0)
            pipeline.process(offset, outcome.event)
    kpis = KpiCollector(
        pipeline.tickets,
        pipeline.customers,
        owned=lambda: {0},
        owned_contacts=lambda: {0},
        clock="event",
        windows={"15m": 900, "1h": 3600, "24h": 86400, "today": None},
        timezone="UTC",
        fold=LabelFolder(None, 50, {}),
        fold_agent=fold_agent,
    )
    pipeline = PipelineCollector(state, 1, lambda: ({0}, set()), highwater=lambda p: 5000)
    return generate_latest(build_registry([pipeline, kpis])).decode()


def exporter_names() -> set[str]:
    """Every sample name a populated worker exports, every family on."""
    families = text_string_to_metric_families(exporter_text())
    return {s.name for f in families for s in f.samples}


def test_no_exported_label_is_one_a_scrape_config_adds() -> None:
    """Target labels (job, instance, env, cluster, region, service) and ``type`` come from
    the scrape config: one the exporter used too would be renamed ``exported_*`` on the way
    in. ``le`` and ``quantile`` belong to histograms and summaries alone."""
    reserved = {"type", "job", "instance", "env", "namespace", "cluster", "region", "service"}
    clashes = set()
    for family in text_string_to_metric_families(exporter_text()):
        histogram = family.type in ("histogram", "gaugehistogram")
        forbidden = reserved | {"quantile"} | (set() if histogram else {"le"})
        for sample in family.samples:
            clashes |= {(family.name, name) for name in set(sample.labels) & forbidden}
    assert not clashes


def test_agents_can_be_labelled_by_a_keyed_hash_never_their_id() -> None:
    """``agent_label_salt_file``: each agent's label is ``a-`` and an HMAC of its id, the
    same for the same salt (every worker), another for another salt; ``other`` and
    ``unknown`` (no agent_id) stay; no id is exported."""

    def agents(text: str) -> set[str]:
        families = text_string_to_metric_families(text)
        return {s.labels["agent"] for f in families for s in f.samples if "agent" in s.labels}

    raw = agents(exporter_text())
    shown = pseudonyms(b"a secret salt")
    hashed = agents(exporter_text(LabelFolder.of(None, 50, "agent", shown)))
    ids = raw - {"other", "unknown"}
    assert len(ids) > 5 and shown("unknown") == "unknown"
    assert hashed == {shown(a) for a in ids} | (raw - ids)
    assert not ids & hashed and all(re.fullmatch(r"a-[0-9a-f]{16}", shown(a)) for a in ids)
    one = sorted(ids)[0]
    assert pseudonyms(b"a secret salt")(one) == shown(one) != pseudonyms(b"another")(one)


def test_each_exported_family_has_help_of_its_own() -> None:
    """Two families with one HELP text leave a reader of /metrics guessing which is the count
    and which the sum (the per-agent twins did)."""
    helps: dict[str, list[str]] = {}
    for family in text_string_to_metric_families(exporter_text()):
        if family.name.endswith(("_gcount", "_gsum")):
            continue  # a gauge histogram's parts: prometheus_client's parser splits them
        helps.setdefault(family.documentation, []).append(family.name)
    assert not [names for names in helps.values() if len(names) > 1]


def test_every_dashboard_query_reads_the_selected_deployment_only() -> None:
    """A Prometheus may scrape several deployments (jobs, and ``env`` within a job): every
    series a panel reads is selected by ``job="$job", env="$env"``, or matched on all but the
    figure labels (the completeness gate of ``rules.complete``), so no panel sums two
    deployments or gates one on another's reading."""
    unselected = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for title, expr in panel_queries(json.loads(path.read_text())):
            gated = re.sub(r"ignoring \([^)]*\) " + re.escape(COMPLETE) + r"(?!\{)", "", expr)
            for match in re.finditer(r"[a-z0-9_:]*ticketpulse_[a-z0-9_:]+(\{[^}]*\})?", gated):
                selector = match.group(1) or ""
                if 'job="$job"' not in selector or 'env="$env"' not in selector:
                    unselected.append((path.name, title, match.group(0)))
    assert not unselected


def test_every_metric_in_rules_and_dashboards_is_exported() -> None:
    exported = exporter_names() | {"up"}
    rules = yaml.safe_load((PROM / "rules/ticketpulse.rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"]}
    alerts = yaml.safe_load((PROM / "rules/ticketpulse.alerts.yml").read_text())
    exprs = [r["expr"] for doc in (rules, alerts) for g in doc["groups"] for r in g["rules"]]
    exprs += [expr for _, _, expr in dashboard_queries()]
    missing = set()
    for expr in exprs:
        for name in NAME.findall(re.sub(r'"[^"]*"|\[[^]]*\]', "", expr)):
            if ":" in name:
                if name not in recorded:
                    missing.add(name)
            elif name.startswith("ticketpulse_") and name not in exported:
                missing.add(name)
    assert not missing, f"used but never produced: {sorted(missing)}"
    assert len(recorded) > 50


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = run(
        BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {
        "kafka",
        "worker-1",
        "worker-2",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    } <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image version"
        assert "healthcheck" in service, f"{name}: needs a healthcheck"
    for name, service in services.items():  # nothing reachable without authentication
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", ())), name
    assert "--web.enable-lifecycle" not in services["prometheus"]["command"]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_DISABLE_LOGIN"] == "true" == grafana["GF_AUTH_DISABLE_LOGIN_FORM"]
    assert grafana["GF_AUTH_BASIC_ENABLED"] == "false"
    mounts = services["grafana"]["volumes"] + services["prometheus"]["volumes"]
    for mount in mounts:
        if mount.startswith("./deploy/"):
            assert mount.endswith(":ro"), f"{mount} must be read-only"
    for mount in mounts:
        if mount.startswith("./"):
            assert (ROOT / mount.split(":")[0]).exists(), mount


@pytest.mark.parametrize(
    "manifest", sorted((ROOT / "deploy/k8s").glob("*.yaml")), ids=lambda p: p.name
)
def test_kubernetes_manifests_validate_strictly(manifest: Path) -> None:
    result = run(BIN / "kubernetes-validate", "--strict", manifest)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_config_map_is_a_valid_settings_file(tmp_path: Path) -> None:
    config_map = yaml.safe_load((ROOT / "deploy/k8s/configmap.yaml").read_text())
    path = tmp_path / "ticketpulse.toml"
    path.write_text(config_map["data"]["ticketpulse.toml"])
    settings = load_settings(path)
    assert settings.policy().for_queue("vip", "phone").service_level_objective == 0.9
    workers = yaml.safe_load((ROOT / "deploy/k8s/statefulset.yaml").read_text())
    pod = workers["spec"]["template"]["spec"]["containers"][0]
    assert pod["readinessProbe"]["httpGet"]["path"] == "/ready"
    env = {e["name"]: e for e in pod["env"]}
    assert env["TICKETPULSE_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
