"""Regression tests of issue 11, on the real broker: each failed before its fix.

- Offsets: the committed offset reaches the end of every partition once the worker has
  caught up (it stuck at the end of the first batch), a clean restart reads nothing
  again, and the dead-letter topic holds each rejected record once.
- One schema-valid event crash-looped a worker: extreme numbers are dead-lettered, and a
  stored row that cannot be read is contained, counted and logged, never fatal.
- Two apps on one input topic no longer share (and consume) each other's contacts.
"""

from __future__ import annotations

import math
import signal
import time
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from streams.cli import main
from streams.config import DEFAULT_WINDOWS, load_settings
from streams.runtime.topics import ensure_topics
from streams.tools.produce import key_of, read_jsonl
from tests.conftest import wait_for
from tests.integration.offsets import committed_and_end, stats, wait_committed_to_end
from tests.integration.test_ingest import consume_all
from tests.integration.test_kpis import wait_equal
from tests.oracle import expected

pytestmark = pytest.mark.integration
PARTITIONS = 4


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12,000 records with duplicates, reordering, late and malformed records."""
    path = tmp_path_factory.mktemp("defects") / "log.jsonl"
    args = ["simulate", "--seed", "11", "--events", "12000", "--output", str(path)]
    assert main([*args, "--duplicates", "0.02", "--late", "0.01", "--malformed", "0.02"]) == 0
    return path


def _topics(kafka, names, partitions: int = PARTITIONS, tables: tuple[str, ...] = ()) -> None:
    settings = load_settings(
        bootstrap_servers=kafka.bootstrap,
        app_id=names["app_id"],
        topic=names["topic"],
        dlq_topic=names["dlq"],
        partitions=partitions,
    )
    ensure_topics(settings, tables)


def _replay(kafka, topic: str, log: Path) -> None:
    args = ["replay", str(log), "--bootstrap-servers", kafka.bootstrap, "--topic", topic]
    assert main([*args, "--no-progress"]) == 0


def _processed(worker) -> int:
    try:
        s = stats(worker)
    except OSError:  # not serving yet
        return 0
    return s["accepted"] + s["rejected"]


def test_offsets_reach_the_end_and_a_clean_restart_reads_nothing_again(
    kafka, names, start_worker, log, tmp_path
) -> None:
    _topics(kafka, names)
    _replay(kafka, names["topic"], log)
    total = sum(1 for _ in read_jsonl(log))
    data = tmp_path / "store"
    first = start_worker("--clock", "event", data_dir=data)
    wait_for(lambda: _processed(first) == total, 180, "the backlog to be processed", first)
    topics = [names["topic"], f"{names['app_id']}-contacts"]
    wait_committed_to_end(kafka.bootstrap, names["app_id"], topics, first)
    rejected = stats(first)["rejected"]
    assert rejected > 100, "the log must dead-letter records"
    assert first.stop(signal.SIGTERM) == 0
    offsets = committed_and_end(kafka.bootstrap, names["app_id"], topics)
    assert all(c == e for c, e in offsets.values()), offsets

    second = start_worker("--clock", "event", data_dir=data)
    time.sleep(8)  # several commit intervals: anything re-read would show by now
    again = stats(second)
    assert (again["accepted"], again["rejected"], again["contacts_received"]) == (0, 0, 0)
    dead = consume_all(kafka.bootstrap, names["dlq"], rejected, timeout=30)
    sources = Counter(
        (
            dict(r.headers)["ticketpulse.source.partition"],
            dict(r.headers)["ticketpulse.source.offset"],
        )
        for r in dead
    )
    assert len(dead) == rejected and max(sources.values()) == 1, "a dead letter was sent twice"


def test_two_workers_commit_every_partition_to_the_end(kafka, names, start_worker, log) -> None:
    _topics(kafka, names)
    a = start_worker("--clock", "event")
    b = start_worker("--clock", "event", wait=False)
    _replay(kafka, names["topic"], log)
    total = sum(1 for _ in read_jsonl(log))
    wait_for(lambda: _processed(a) + _processed(b) >= total, 180, "the backlog", a)
    topics = [names["topic"], f"{names['app_id']}-contacts"]
    wait_committed_to_end(kafka.bootstrap, names["app_id"], topics, a, b)


def test_two_apps_on_one_topic_keep_their_own_contacts_and_figures(
    kafka, names, start_worker, log
) -> None:
    """App B drops everything late (lateness 0); each must equal the oracle of its settings."""
    _topics(kafka, names)
    _replay(kafka, names["topic"], log)
    records = [(key_of(line), line) for line in read_jsonl(log)]
    apps = {names["app_id"]: 600.0, f"{names['app_id']}-b": 0.0}
    policy = load_settings().policy()
    workers = {}
    for app_id, lateness in apps.items():
        workers[app_id] = start_worker(
            "--clock", "event", "--app-id", app_id, "--lateness-seconds", str(lateness)
        )
    for app_id, lateness in apps.items():
        oracle = expected(
            records,
            partitions=PARTITIONS,
            policy=policy,
            now=time.time(),
            windows=dict(DEFAULT_WINDOWS),
            lateness_s=lateness,
        )
        wait_equal(oracle, workers[app_id], timeout=240)
    for worker in workers.values():
        s = stats(worker)
        assert s["contacts_received"] == s["contacts_forwarded"] > 0


def _doc(event_id: str, kind: str, ticket: str, **extra: object) -> bytes:
    doc = {
        "event_id": event_id,
        "type": kind,
        "ticket_id": ticket,
        "occurred_at": "2026-01-05T08:00:30Z",
        "queue": "inf",
        "channel": "chat",
        **extra,
    }
    return orjson.dumps(doc)


def _all_finite(worker) -> bool:
    with urllib.request.urlopen(worker.url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    values = [line.rsplit(" ", 1)[-1] for line in text.splitlines() if not line.startswith("#")]
    return all(math.isfinite(float(v)) for v in values if v)


def test_extreme_numbers_are_dead_lettered_and_the_worker_goes_on(
    kafka, names, start_worker, tmp_path
) -> None:
    """The issue's reproduction: 1e308 twice in one ticket, a restart, then a normal ticket."""
    _topics(kafka, names, partitions=1)
    data = tmp_path / "store"
    worker = start_worker("--clock", "event", "--partitions", "1", data_dir=data)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    inf = [
        _doc("i1", "opened", "T-INF"),
        _doc("i2", "replied", "T-INF", author="agent", handle_seconds=1e308),
        _doc("i3", "resolved", "T-INF", handle_seconds=1e308),
        _doc("i4", "survey", "T-INF", survey_kind="nps", score=2**63),
    ]
    for value in [*inf, value_with_infinity()]:
        producer.send(names["topic"], key=b"T-INF", value=value)
    producer.flush()
    wait_for(lambda: _processed(worker) == 5, 60, "the extreme records", worker)
    assert stats(worker)["rejected"] == 4 and _all_finite(worker)
    worker.stop()
    worker = start_worker("--clock", "event", "--partitions", "1", data_dir=data)
    for value in (_doc("n1", "opened", "T-OK"), _doc("n2", "resolved", "T-OK", handle_seconds=5)):
        producer.send(names["topic"], key=b"T-OK", value=value)
    producer.flush()
    producer.close()
    wait_for(lambda: _processed(worker) == 2, 60, "the next ticket", worker)
    assert _all_finite(worker)
    handled = worker.metrics()[
        (
            "ticketpulse_window_handle_time_seconds",
            (("channel", "chat"), ("queue", "inf"), ("window", "24h")),
        )
    ]
    assert handled == 5.0
    reasons = [
        dict(r.headers)["ticketpulse.reason"] for r in consume_all(kafka.bootstrap, names["dlq"], 4)
    ]
    assert reasons == [b"schema"] * 4


def value_with_infinity() -> bytes:
    """Valid JSON whose number no float holds (orjson refuses it): a schema reject too."""
    return _doc("i5", "resolved", "T-INF").replace(b'"queue"', b'"handle_seconds":1e400,"queue"')


def test_an_unreadable_stored_row_is_contained_and_counted(
    kafka, names, start_worker, tmp_path
) -> None:
    """A bucket row with null where a sum belongs (what an overflow once stored) sits in the
    changelog: the worker recovers it, leaves it out, counts it, and processes on."""
    _topics(kafka, names, partitions=1, tables=("buckets",))
    start = 1_767_600_000  # 2026-01-05T08:00:00Z
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    poisoned = [0, [[["handled", "", "", ""], None, 2]], {}]  # a BucketRow, sum null
    producer.send(
        f"{names['app_id']}-buckets-changelog",
        key=orjson.dumps(f"0|{start}|inf|chat"),  # table keys are JSON strings
        value=orjson.dumps(poisoned),
        partition=0,
    )
    producer.flush()
    worker = start_worker("--clock", "event", "--partitions", "1")
    for value in (_doc("n1", "opened", "T-OK"), _doc("n2", "resolved", "T-OK", handle_seconds=5)):
        producer.send(names["topic"], key=b"T-OK", value=value)
    producer.flush()
    producer.close()
    wait_for(
        lambda: _processed(worker) == 2,
        60,
        "the ticket after the bad row",
        worker,
    )
    assert _all_finite(worker)
    metrics = worker.metrics()
    assert metrics[("ticketpulse_stored_rows_unreadable_total", (("table", "buckets"),))] == 1
    assert worker.log().count("cannot be read") == 1
