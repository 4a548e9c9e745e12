"""The deploy assets against a real Prometheus server (Debian's package) scraping a live worker.

One worker (wall clock) is fed a simulated log that ends now; Prometheus scrapes it with the
project's recording rules and alerts loaded. Then: every dashboard panel query returns data,
the recording rules agree with the worker's own window figures, and an SLA breach injected
through events makes the breach alert fire.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml
from kafka import KafkaProducer

from streams.cli import main
from streams.runtime import processes
from streams.tools.broker import launcher
from streams.tools.produce import read_jsonl
from tests.conftest import wait_for
from tests.unit.ops.test_deploy import ROOT, dashboard_queries

pytestmark = pytest.mark.integration
SPAN_S = 4800  # the simulated log covers the last 80 minutes


class Prometheus:
    def __init__(self, tmp: Path, target: str | list[str], **scrape: object) -> None:
        """``scrape``: more of the scrape config (scheme, basic_auth, tls_config)."""
        targets = [target] if isinstance(target, str) else target
        binary = shutil.which("prometheus")
        assert binary, "Debian's prometheus package provides the server (make system-deps)"
        rules = ROOT / "deploy/prometheus/rules"
        config = {
            # a loaded worker's scrape can take over a second: leave it room (timeout = interval)
            "global": {"scrape_interval": "4s", "evaluation_interval": "2s"},
            "rule_files": [
                str(rules / "ticketpulse.rules.yml"),
                str(rules / "ticketpulse.alerts.yml"),
            ],
            "scrape_configs": [
                {"job_name": "ticketpulse", "static_configs": [{"targets": targets}], **scrape}
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = launcher.free_port()
        self.log = (tmp / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=processes.die_with_parent,
        )

    def get(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def query(self, expr: str) -> list[dict]:
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def firing(self, alertname: str) -> list[dict]:
        alerts = self.get("/api/v1/alerts")["data"]["alerts"]
        return [
            a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"
        ]

    def stop(self) -> None:
        processes.stop(self.process, 30)
        self.log.close()


@pytest.fixture
def prometheus_factory(tmp_path: Path):
    started: list[Prometheus] = []

    def start(target: str | list[str], **scrape: object) -> Prometheus:
        prom = Prometheus(tmp_path, target, **scrape)
        started.append(prom)
        wait_for(prom.ready, 60, "prometheus to be ready")
        return prom

    yield start
    for prom in started:
        prom.stop()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def test_rules_dashboards_and_alerts_on_a_real_prometheus(
    kafka, names, start_worker, prometheus_factory, tmp_path: Path, promtool: str, monkeypatch
) -> None:
    monkeypatch.setenv("TICKETPULSE_RECONTACT_DAYS", "[0.01, 0.04]")  # final ACR within the log
    log = tmp_path / "recent.jsonl"
    args = ["simulate", "--seed", "11", "--rate", "6", "--duration", str(SPAN_S)]
    args += ["--start", _iso(time.time() - SPAN_S - 60), "--output", str(log)]
    assert main([*args, "--recontact-mean", "900", "--reopen-mean", "900"]) == 0
    records = sum(1 for _ in read_jsonl(log))

    worker = start_worker("--clock", "wall")
    prom = prometheus_factory(f"127.0.0.1:{worker.port}")  # scraping before the events arrive
    topic = ["--bootstrap-servers", kafka.bootstrap, "--topic", names["topic"], "--no-progress"]
    done = ("ticketpulse_events_accepted_total", "ticketpulse_events_rejected_total")
    # in two halves, with a scrape in between: the worker takes a half in a few batches, and a
    # counter rate() needs Prometheus to have seen the counters before they grew
    lines = log.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    for part, (start, stop) in enumerate(((0, half), (half, len(lines)))):
        piece = tmp_path / f"part-{part}.jsonl"
        piece.write_bytes(b"".join(lines[start:stop]))
        assert main(["replay", str(piece), *topic]) == 0
        expected_done = sum(1 for line in lines[:stop] if line.strip())
        wait_for(
            lambda n=expected_done: worker.counter_sum(*done) >= n,
            300,
            "the worker to catch up",
            worker,
        )

        def scraped(n: int = expected_done) -> bool:
            result = prom.query(
                "sum(ticketpulse_events_accepted_total) + sum(ticketpulse_events_rejected_total)"
            )
            return bool(result) and float(result[0]["value"][1]) >= n

        wait_for(scraped, 60, "prometheus to scrape the worker after this half")

    def customers_caught_up() -> bool:
        sent = worker.counter_sum("ticketpulse_contacts_forwarded_total")
        return sent > 0 and worker.counter_sum("ticketpulse_contacts_received_total") == sent

    wait_for(customers_caught_up, 300, "the customer side to catch up", worker)
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/stats", timeout=5) as response:
        stats = json.load(response)  # the cheap progress endpoint agrees with the counters
    assert stats["accepted"] + stats["rejected"] == records
    assert stats["contacts_forwarded"] == stats["contacts_received"] > 0

    text = worker.raw_metrics()
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr

    def rules_evaluated() -> bool:
        return bool(prom.query('queue_channel:ticketpulse_window_acr_final:ratio{window="1h"}'))

    wait_for(rules_evaluated, 120, "prometheus to scrape the worker and evaluate the rules")

    empty = dashboard_queries()

    def every_panel_has_data() -> bool:
        """Re-asks only the empty ones: a scrape that failed once leaves its series stale
        until the next scrape, and a query landing in that gap sees nothing."""
        nonlocal empty
        empty = [(board, title, expr) for board, title, expr in empty if not prom.query(expr)]
        return not empty

    try:
        wait_for(every_panel_has_data, 60, "every dashboard panel to return data")
    except pytest.fail.Exception:
        pytest.fail(f"panels without data: {empty}")

    _rules_agree_with_the_worker(prom, worker)
    _breach_fires_the_alert(prom, kafka, names)


def _rules_agree_with_the_worker(prom: Prometheus, worker) -> None:
    """Per queue and channel, Prometheus's recording rules give the worker's own 24h figures
    (static: no new events arrive and every event is inside the window)."""
    pairs = {
        "service_level": ("service_level_numerator", "service_level_denominator"),
        "abandonment": ("contacts_abandoned", "contacts_offered"),
    }
    metrics = worker.metrics()
    for rule, (num, den) in pairs.items():
        own = {
            (d["queue"], d["channel"]): metrics[(f"ticketpulse_window_{num}", labels)] / value
            for (name, labels), value in metrics.items()
            if name == f"ticketpulse_window_{den}"
            and (d := dict(labels))["window"] == "24h"
            and value > 0
        }
        assert own, f"no queue has a {rule} denominator"
        if rule == "service_level":
            assert any(0 < v < 1 for v in own.values()), "the comparison must not be trivial"

        def agrees(rule: str = rule, own: dict = own) -> bool:
            result = prom.query(f'queue_channel:ticketpulse_window_{rule}:ratio{{window="24h"}}')
            seen = {
                (r["metric"]["queue"], r["metric"]["channel"]): float(r["value"][1]) for r in result
            }
            return seen.keys() == own.keys() and all(abs(seen[k] - own[k]) < 1e-12 for k in own)

        wait_for(agrees, 30, f"{rule} from Prometheus to equal the worker's {own}")


def _breach_fires_the_alert(prom: Prometheus, kafka, names) -> None:
    """A phone contact waiting 90 s (target 20 s) fires TicketpulseFirstResponseBreaches."""
    queue = "breach-test"
    assert not [
        a for a in prom.firing("TicketpulseFirstResponseBreaches") if a["labels"]["queue"] == queue
    ]
    event = {
        "event_id": "breach-1",
        "type": "opened",
        "ticket_id": "T-breach-1",
        "occurred_at": _iso(time.time() - 90),
        "queue": queue,
        "channel": "phone",
    }
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    producer.send(names["topic"], key=b"T-breach-1", value=orjson.dumps(event)).get(timeout=30)
    producer.close()

    def fired() -> bool:
        return any(
            a["labels"]["queue"] == queue for a in prom.firing("TicketpulseFirstResponseBreaches")
        )

    wait_for(fired, 240, "the breach alert to fire (for: 2m)")
