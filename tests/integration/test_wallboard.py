"""The wallboard on the real broker, the real workers, the real Debian Prometheus and a real
browser (issue 14): its JSON equals the workers' components summed, in both source modes;
its totals equal ``ticketpulse report``; the page shows those numbers, turns a breach red
within two refreshes and shows the stale marker when the source stops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from streams.cli import main
from streams.config import DEFAULT_WINDOWS, load_settings
from streams.runtime import processes
from streams.tools.broker import launcher
from streams.tools.produce import key_of, read_jsonl
from streams.tools.report import report
from streams.wallboard.figures import COMPONENTS
from tests.conftest import wait_for
from tests.integration.test_kpis import combined, replay_into_new_topics, wait_equal
from tests.integration.test_prometheus import Prometheus
from tests.oracle import expected

pytestmark = pytest.mark.integration
# the README's picture is refreshed only on request, so a test run leaves the checkout clean:
# TICKETPULSE_WALLBOARD_SCREENSHOT=docs/wallboard.png .venv/bin/pytest tests/integration -k page
SCREENSHOT_TO = os.environ.get("TICKETPULSE_WALLBOARD_SCREENSHOT")
REFRESH_S = 1.0


class Wallboard:
    def __init__(self, tmp: Path, *source: str, refresh_s: float = REFRESH_S) -> None:
        self.port = launcher.free_port()
        self.log_path = tmp / f"wallboard-{self.port}.log"
        cmd = [sys.executable, "-m", "streams.cli", "wallboard", *source]
        cmd += ["--wallboard-port", str(self.port)]
        cmd += ["--wallboard-refresh-seconds", str(refresh_s)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=processes.die_with_parent
            )
        wait_for(self.answers, 30, "the wallboard to answer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def answers(self) -> bool:
        try:
            return self.figures()["at"] is not None
        except OSError:
            return False

    def figures(self, query: str = "") -> dict:
        with urllib.request.urlopen(f"{self.url}api/v1/figures{query}", timeout=5) as r:
            return json.load(r)

    def stop(self) -> None:
        processes.stop(self.process, 10)

    def diagnosis(self) -> str:
        """What the board holds and its log's end, for a failed assertion's message."""
        doc = self.figures()
        held = {k: doc[k] for k in ("at", "stale", "error", "incomplete", "missing")}
        held["series"] = len(doc["series"])
        return f"{held}\n{self.log_path.read_text(errors='replace')[-3000:]}"


@pytest.fixture
def wallboards(tmp_path: Path):
    started: list[Wallboard] = []

    def start(*source: str, refresh_s: float = REFRESH_S) -> Wallboard:
        board = Wallboard(tmp_path, *source, refresh_s=refresh_s)
        started.append(board)
        return board

    yield start
    for board in started:
        board.stop()


def components_of(doc: dict) -> dict[tuple[str, str, str, str], float]:
    """(queue, channel, window, component) -> value, from the JSON's series."""
    return {
        (s["queue"], s["channel"], w, name): value
        for s in doc["series"]
        for w, figures in s["windows"].items()
        for name, value in figures["components"].items()
    }


def workers_components(workers, windows) -> dict[tuple[str, str, str, str], float]:
    """The same, summed from the workers' own /metrics by this test."""
    total = combined(*workers)
    out: dict[tuple[str, str, str, str], float] = {}
    for (metric, labels), value in total.items():
        lab = dict(labels)
        for name, source in COMPONENTS.items():
            if metric == source and lab.get("window") in windows:
                out[(lab["queue"], lab["channel"], lab["window"], name)] = value
    return out


def nonzero(values: dict) -> dict:
    return {k: v for k, v in values.items() if v}


SLOW_WORKER = Path(__file__).with_name("slow_worker.py")
SLOW_S = 4.0


@pytest.fixture
def two_workers(kafka, names, start_worker, tmp_path: Path):
    """Two workers (clock event) that have processed a seeded log: (workers, log)."""
    return started_on_a_log(kafka, names, start_worker, tmp_path)


def started_on_a_log(kafka, names, start_worker, tmp_path: Path, *options: dict):
    """``options``: how to start each worker (``start_worker``'s keywords), if not as is."""
    log = tmp_path / "board.jsonl"
    simulate = ["simulate", "--seed", "21", "--rate", "6", "--events", "12000"]
    simulate += ["--duplicates", "0.03", "--recontact-mean", "1800", "--output", str(log)]
    assert main(simulate) == 0
    replay_into_new_topics(kafka, names, log)
    workers = [start_worker("--clock", "event", **kw) for kw in options or ({}, {})]
    records = [(key_of(line), line) for line in read_jsonl(log)]
    oracle = expected(
        records, partitions=4, policy=load_settings().policy(), now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
    )  # fmt: skip
    wait_equal(oracle, *workers)
    return workers, log


def test_the_json_equals_the_workers_prometheus_and_report(
    two_workers, wallboards, tmp_path: Path
) -> None:
    workers, log = two_workers
    windows = list(DEFAULT_WINDOWS)
    board = wallboards("--workers", ",".join(f"http://127.0.0.1:{w.port}" for w in workers))
    doc = board.figures()
    assert doc["version"] == 1 and doc["stale"] is False and doc["missing"] == []
    from_workers = nonzero(workers_components(workers, windows))
    assert nonzero(components_of(doc)) == from_workers
    assert len(from_workers) > 300

    # the same through Prometheus, once it has scraped both (idle) workers
    prom = Prometheus(tmp_path, [f"127.0.0.1:{w.port}" for w in workers])
    try:
        wait_for(prom.ready, 60, "prometheus to be ready")
        via_prometheus = wallboards("--prometheus", f"http://127.0.0.1:{prom.port}")
        wait_for(
            lambda: nonzero(components_of(via_prometheus.figures())) == from_workers,
            90,
            "the Prometheus-mode figures to equal the workers'",
        )
    finally:
        prom.stop()

    # and ticketpulse report: the today window's totals and the open/waiting gauges do not
    # depend on where each partition's window ends (one day, no late events in this log)
    offline = report(read_jsonl(log), load_settings(), now=time.time())
    for series, figures in offline["windows"]["today"].items():
        queue, channel = series.split("/")
        mine = {
            name: doc_value
            for (q, c, w, name), doc_value in components_of(doc).items()
            if (q, c, w) == (queue, channel, "today")
        }
        theirs = figures["components"]
        assert mine["offered"] == theirs["contacts_offered"], series
        assert mine["answered"] == theirs["first_responses"], series
        assert mine["resolved"] == theirs["contacts_resolved"], series
        assert mine["abandoned"] == theirs["contacts_abandoned"], series
        assert mine["handle_time_seconds"] == pytest.approx(theirs["handle_time_seconds"]), series
    live_now = {(s["queue"], s["channel"]): s["now"] for s in doc["series"]}
    for series, now in offline["now"].items():
        queue, channel = series.split("/")
        assert live_now[(queue, channel)]["open"] == now["open"], series
        assert live_now[(queue, channel)]["waiting"] == now["waiting"], series


def test_a_worker_leaving_never_puts_figures_too_low_on_the_board(
    kafka, names, start_worker, wallboards, tmp_path: Path
) -> None:
    """The survivor of a worker that leaves is assigned the leaver's partitions before it
    has recovered their tables: here it kept no standby copy of them, and its recovery
    takes SLOW_S (as with large changelogs). Its figures of those partitions are missing
    meanwhile, so they must not count as active: the board shows a reading only when the
    workers' active partitions cover the topic. Every document the board serves, polled
    fast until the survivor serves every partition, holds every partition's figures (no
    event arrives meanwhile). Before the fix, the board showed the survivor's own
    partitions' figures alone, as complete, for those seconds."""
    no_standbys = {"NO_STANDBYS": "1"}
    leaver = {"program": (str(SLOW_WORKER),), "env": no_standbys}
    slow = {"program": (str(SLOW_WORKER),), "env": {**no_standbys, "SLOW_RECOVERY_S": str(SLOW_S)}}
    workers, _ = started_on_a_log(kafka, names, start_worker, tmp_path, leaver, slow)
    before = nonzero(workers_components(workers, list(DEFAULT_WINDOWS)))
    urls = [f"http://127.0.0.1:{w.port}" for w in workers]
    board = wallboards("--workers", ",".join(urls), refresh_s=0.2)
    wait_for(lambda: components_of(board.figures()), 30, "the board's first reading")
    workers[0].process.terminate()  # SIGTERM: it leaves the group, the survivor takes over
    withheld, deadline = 0, time.monotonic() + 120  # readings with the survivor recovering
    while True:
        doc = board.figures()
        shown = nonzero(components_of(doc))  # sums of floats: summed in another order
        assert shown == pytest.approx(before, rel=1e-12), (doc["incomplete"], doc["missing"])
        withheld += doc["incomplete"] == "0 of 4 partitions owned"  # the leaver gone too
        if len(doc["missing"]) == 1 and not doc["incomplete"] and not doc["stale"]:
            break  # the survivor serves every partition
        assert time.monotonic() < deadline, "the survivor to serve every partition"
        time.sleep(0.02)
    assert workers[0].stop() == 0
    assert withheld > 10, "the board never saw the survivor recovering the leaver's tables"


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1920,1080", "--disable-gpu"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def cell(driver, queue: str, field: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'td[data-queue="{queue}"][data-field="{field}"]')


def tile_class(driver, queue: str, field: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return cell(driver, queue, field).get_attribute("class") or ""
    except (NoSuchElementException, StaleElementReferenceException):
        return ""  # not rendered yet, or re-rendered while read


def test_the_page_shows_the_json_turns_a_breach_red_and_goes_stale(
    two_workers, wallboards, kafka, names
) -> None:
    workers, log = two_workers
    board = wallboards("--workers", ",".join(f"http://127.0.0.1:{w.port}" for w in workers))
    driver = browser()
    try:
        driver.get(board.url)
        wait_for(lambda: driver.find_elements("css selector", "tr.total"), 20, "the rows")
        doc = board.figures()
        for queue in doc["queues"]:
            name = queue["queue"]
            assert cell(driver, name, "waiting").text == str(round(queue["now"]["waiting"]))
            short = queue["windows"]["15m"]["components"]
            shown = f"{round(short.get('answered', 0))} / {round(short.get('offered', 0))}"
            assert cell(driver, name, "answered_offered").text == shown
            assert cell(driver, name, "open").text == str(round(queue["now"]["open"]))
        if SCREENSHOT_TO:
            assert driver.save_screenshot(SCREENSHOT_TO), SCREENSHOT_TO

        # a breach: a chat waiting in a new queue while its partition's clock moves 10 min on
        newest = max(json.loads(line)["occurred_at"] for line in read_jsonl(log))
        opened = datetime.fromisoformat(newest.replace("Z", "+00:00")).timestamp()
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
        for i, (kind, at) in enumerate((("opened", opened + 60), ("assigned", opened + 660))):
            event = {
                "event_id": f"breach-{i}", "type": kind, "ticket_id": "T-BREACH",
                "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
                "queue": "breach-desk", "channel": "chat", "agent_id": "A-late",
            }  # fmt: skip
            producer.send(names["topic"], key=b"T-BREACH", value=json.dumps(event).encode())
        producer.flush()
        producer.close()
        # within two refreshes of the workers having processed it
        wait_for(
            lambda: board.figures("?queues=breach-desk")["total"]["now"]["first_response_breaches"],
            30,
            "the workers to count the breach",
        )
        wait_for(
            lambda: "breach" in tile_class(driver, "breach-desk", "waiting"),
            2 * REFRESH_S + 1,
            "the breach to turn its tile red within two refreshes",
        )
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors

        driver.get(board.url + "?window=7m")  # a window the board has not: said, not blank
        wait_for(
            lambda: "no window 7m: this board has 15m" in driver.find_element("id", "status").text,
            2 * REFRESH_S + 5,
            "the unknown window to be named",
        )
        driver.get(board.url)

        for worker in workers:  # the source stops: the board keeps its figures, marked stale
            worker.stop()
        wait_for(
            lambda: driver.find_element("id", "status").text.startswith("STALE"),
            4 * REFRESH_S + 10,
            "the stale marker",
        )
        shown = driver.find_elements("css selector", "tr.total")
        assert shown, f"the board must not go blank\n{board.diagnosis()}"
    finally:
        driver.quit()
