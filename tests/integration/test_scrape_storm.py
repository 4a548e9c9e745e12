"""A scrape storm (20 clients scraping /metrics back to back) does not stop consumption:
the worker keeps accepting records while every client keeps getting fresh answers, and the
figures at the end equal the oracle. How fast it consumes meanwhile is measured by
`make bench` ("scrape storm" row), never asserted here."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.conftest import wait_for
from tests.integration.test_kpis import replay_into_new_topics, simulated, wait_equal

pytestmark = pytest.mark.integration
CLIENTS = 20


class Storm:
    """``CLIENTS`` threads scraping /metrics as fast as answers come."""

    def __init__(self, url: str) -> None:
        self.url, self.answers, self.errors = url, 0, 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]

    def client(self) -> None:
        while not self.stopping.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=30) as response:
                    ok = response.status == 200 and b"ticketpulse_window" in response.read()
            except OSError:
                ok = False
            with self.lock:
                self.answers += ok
                self.errors += not ok

    def __enter__(self) -> Storm:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)


def accepted(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
        return int(orjson.loads(response.read())["accepted"])


def test_consumption_goes_on_during_a_scrape_storm(kafka, names, start_worker, tmp_path: Path):
    log = tmp_path / "storm.jsonl"
    records, oracle = simulated(log, seed=21, rate=4, events=96000)  # several seconds
    worker = start_worker("--clock", "event")
    with Storm(worker.url) as storm:
        wait_for(lambda: storm.answers >= CLIENTS, 60, "the storm to be under way", worker)
        producing = threading.Thread(target=replay_into_new_topics, args=(kafka, names, log))
        producing.start()  # consumption overlaps it: count from the first record accepted
        wait_for(lambda: accepted(worker.port) > 0, 120, "a first record accepted", worker)
        seen = [accepted(worker.port)]
        answers = [storm.answers]

        def progressed() -> bool:
            seen.append(accepted(worker.port))
            answers.append(storm.answers)
            return seen[-1] >= len(records) - 200  # all but the invalid ones (1 %)

        wait_for(progressed, 300, "the records to be consumed during the storm", worker)
        during = storm.answers - answers[0]
        producing.join()
    assert during >= CLIENTS, "the clients kept getting answers while records were consumed"
    assert storm.errors == 0
    wait_equal(oracle, worker)
