"""A 25 s broker outage (issue 15): the worker survives, says so in a few lines instead of
thousands, reports ``ticketpulse_broker_up 0`` and answers 503 on /ready while Kafka is
away, and once the broker is back every figure equals the oracle."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streams.cli import main
from streams.config import DEFAULT_WINDOWS, load_settings
from streams.runtime import processes
from streams.runtime.processes import STOP_EXIT_S
from streams.tools.broker import launcher
from streams.tools.produce import key_of, read_jsonl
from tests.conftest import WorkerProcess, wait_for
from tests.integration.test_kpis import wait_equal
from tests.oracle import expected

pytestmark = pytest.mark.integration
OUTAGE_S = 25
MAX_LINES = 200  # the target for a 25 s outage at the default log level


def replay(bootstrap: str, topic: str, log: Path) -> None:
    args = ["replay", str(log), "--bootstrap-servers", bootstrap, "--topic", topic]
    assert main([*args, "--partitions", "4", "--no-progress"]) == 0


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # not listening (yet)


def test_a_broker_outage_is_a_few_log_lines_and_changes_no_figure(tmp_path: Path) -> None:
    broker = launcher.start(tmp_path / "kafka")
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    lines = tmp_path / "all.jsonl"
    assert main(["simulate", "--seed", "5", "--rate", "6", "--events", "8000",
                 "--output", str(lines)]) == 0  # fmt: skip
    records = lines.read_bytes().splitlines(keepends=True)
    first.write_bytes(b"".join(records[:4000]))
    second.write_bytes(b"".join(records[4000:]))
    metrics_port = launcher.free_port()
    log_path = tmp_path / "worker.log"
    cmd = [sys.executable, "-m", "streams.cli", "worker", "--bootstrap-servers", broker.bootstrap,
           "--partitions", "4", "--metrics-port", str(metrics_port), "--clock", "event",
           "--data-dir", str(tmp_path / "worker"), "--app-id", "outage"]  # fmt: skip
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=processes.die_with_parent)  # fmt: skip
    worker = WorkerProcess(proc, metrics_port, log_path)
    base = f"http://127.0.0.1:{metrics_port}"
    try:
        wait_for(lambda: status(f"{base}/ready") == 200, 120, "the worker to be ready", worker)
        replay(broker.bootstrap, "ticket-events", first)
        wait_for(lambda: worker.counter_sum("ticketpulse_events_accepted_total") >= 3900, 120,
                 "the first half", worker)  # fmt: skip
        broker.stop()
        before = len(log_path.read_text().splitlines())
        wait_for(lambda: status(f"{base}/ready") == 503, 15, "readiness to turn 503", worker)
        down = worker.metrics()[("ticketpulse_broker_up", ())]
        time.sleep(OUTAGE_S)
        broker = launcher.start(tmp_path / "kafka", port=port)
        wait_for(lambda: status(f"{base}/ready") == 200, 90, "the worker to be ready again", worker)
        during = len(log_path.read_text().splitlines()) - before  # outage and recovery
        assert proc.poll() is None, "the worker survived the outage"
        assert down == 0.0 and worker.metrics()[("ticketpulse_broker_up", ())] == 1.0
        print(f"log lines from the broker's stop to ready again ({OUTAGE_S} s away): {during}")
        assert during < MAX_LINES, log_path.read_text()[-4000:]
        text = log_path.read_text()
        assert "Kafka is unreachable" in text and "Kafka is reachable again" in text
        replay(broker.bootstrap, "ticket-events", second)
        oracle = expected(
            [(key_of(line), line) for line in read_jsonl(lines)], partitions=4,
            policy=load_settings().policy(), now=time.time(), windows=dict(DEFAULT_WINDOWS),
        )  # fmt: skip
        wait_equal(oracle, worker)
        broker.stop()  # gone for good: a SIGTERM'd worker still exits within its bound
        began = time.monotonic()
        code = worker.stop(signal.SIGTERM, timeout=STOP_EXIT_S + 30)
        took = time.monotonic() - began
        print(f"SIGTERM with the broker gone: exit {code} after {took:.1f} s")
        assert took < STOP_EXIT_S + 10, log_path.read_text()[-4000:]
    finally:
        worker.stop()
        broker.stop()
