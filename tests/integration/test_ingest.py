"""The worker on a real broker: valid events counted by type, bad records dead-lettered."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from streams.cli import main
from streams.config import load_settings
from streams.ingest.schema import REJECT_REASONS, Accepted, classify
from streams.tools.produce import key_of, read_jsonl
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
    )
    records: list = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    consumer.close()
    return records


def test_worker_counts_valid_events_and_dead_letters_the_rest(
    kafka, names, start_worker, tmp_path: Path, promtool: str
) -> None:
    settings = load_settings(
        bootstrap_servers=kafka.bootstrap,
        topic=names["topic"],
        dlq_topic=names["dlq"],
        partitions=4,
    )
    log = tmp_path / "traffic.jsonl"
    assert (
        main(
            [
                "simulate",
                "--seed",
                "21",
                "--events",
                "4000",
                "--output",
                str(log),
                "--duplicates",
                "0.03",
                "--out-of-order",
                "0.03",
                "--malformed",
                "0.03",
            ]
        )
        == 0
    )
    worker = start_worker()

    lines = list(read_jsonl(log))
    by_hand = [
        (b"T-someone-else", (Path("schemas/examples/valid/opened.json")).read_bytes().strip()),
        (b"T-1", None),
    ]
    expected_types: Counter[str] = Counter()
    expected_reasons: Counter[str] = Counter()
    for key, value in [(key_of(line), line) for line in lines] + by_hand:
        outcome = classify(key, value, now=time.time(), future_tolerance_s=300)
        if isinstance(outcome, Accepted):
            expected_types[outcome.event.type] += 1
        else:
            expected_reasons[outcome.reason] += 1
    assert set(expected_reasons) == set(REJECT_REASONS) - {"bad_contact"}  # internal topic only

    assert (
        main(
            [
                "replay",
                str(log),
                "--bootstrap-servers",
                kafka.bootstrap,
                "--topic",
                names["topic"],
                "--no-progress",
            ]
        )
        == 0
    )
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for key, value in by_hand:
        producer.send(settings.topic, key=key, value=value)
    producer.flush()
    producer.close()

    total = len(lines) + len(by_hand)

    def processed() -> float:
        return worker.counter_sum(
            "ticketpulse_events_accepted_total", "ticketpulse_events_rejected_total"
        )

    wait_for(lambda: processed() >= total, 180, f"{total} records processed", worker)
    m = worker.metrics()
    for kind in ("opened", "assigned", "replied", "resolved", "abandoned", "survey", "transferred"):
        accepted = m[("ticketpulse_events_accepted_total", (("event_type", kind),))]
        assert accepted == expected_types[kind]
    for reason, n in expected_reasons.items():
        assert m[("ticketpulse_events_rejected_total", (("reason", reason),))] == n
    assert processed() == total  # nothing counted twice, nothing lost
    assert worker.process.poll() is None, "the worker must survive bad input"

    dead = consume_all(kafka.bootstrap, settings.dlq_topic, sum(expected_reasons.values()))
    assert len(dead) == sum(expected_reasons.values())
    seen: Counter[str] = Counter()
    originals = {value for _, value in [(key_of(x), x) for x in lines] + by_hand}
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        seen[headers["ticketpulse.reason"]] += 1
        assert headers["ticketpulse.detail"]
        assert headers["ticketpulse.source.topic"] == settings.topic
        assert 0 <= int(headers["ticketpulse.source.partition"]) < 4
        assert int(headers["ticketpulse.source.offset"]) >= 0
        assert record.value in originals, "the DLQ keeps the original bytes"
    assert seen == expected_reasons

    watermark = [
        v for (n, _), v in m.items() if n == "ticketpulse_event_time_watermark_timestamp_seconds"
    ]
    assert watermark and all(v > 1.7e9 for v in watermark)
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=worker.raw_metrics(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_replay_keeps_each_tickets_order_on_one_partition(kafka, names, tmp_path: Path) -> None:
    settings = load_settings(
        bootstrap_servers=kafka.bootstrap,
        topic=names["topic"],
        dlq_topic=names["dlq"],
        partitions=4,
    )
    from streams.runtime.topics import ensure_topics

    assert ensure_topics(settings)[settings.topic] == 4
    log = tmp_path / "t.jsonl"
    assert main(["simulate", "--seed", "8", "--events", "3000", "--output", str(log)]) == 0
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ticketpulse"),
            "replay",
            str(log),
            "--bootstrap-servers",
            kafka.bootstrap,
            "--topic",
            settings.topic,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "3000 records (3000 keyed, 0 without a key)" in result.stderr
    records = consume_all(kafka.bootstrap, settings.topic, 3000)
    assert len(records) == 3000
    partitions: dict[bytes, set[int]] = {}
    order: dict[bytes, list[str]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        partitions.setdefault(r.key, set()).add(r.partition)
        order.setdefault(r.key, []).append(orjson.loads(r.value)["event_id"])
    file_order: dict[bytes, list[str]] = {}
    for line in read_jsonl(log):
        doc = orjson.loads(line)
        file_order.setdefault(doc["ticket_id"].encode(), []).append(doc["event_id"])
    assert all(len(p) == 1 for p in partitions.values())
    assert order == file_order
    assert len({p for ps in partitions.values() for p in ps}) == 4


def test_the_benchs_paced_load_lands_where_the_log_would(kafka, names) -> None:
    """The bench's freshness load (``produce_paced``) sends each record once, to the
    partition Kafka's default partitioner picks for its key (as ``replay`` does), and
    knows each record's offset: its latencies are measured per (partition, offset)."""
    import asyncio

    from kafka.partitioner.default import murmur2  # what replay's producer partitions by

    from streams.runtime.topics import ensure_topics
    from streams.tools.bench_live import produce_paced

    settings = load_settings(bootstrap_servers=kafka.bootstrap, topic=names["topic"], partitions=4)
    ensure_topics(settings)
    records = [(f"T-{i % 97}".encode(), f'{{"n": {i}}}'.encode()) for i in range(600)]
    began = time.monotonic()
    sent = asyncio.run(produce_paced(kafka.bootstrap, settings.topic, records, rate=2000))
    assert len(sent) == 600
    assert all(began <= at <= time.monotonic() for at in sent.values())
    got = consume_all(kafka.bootstrap, settings.topic, 600)
    assert sorted((r.partition, r.offset) for r in got) == sorted(sent)
    assert sorted(r.value for r in got) == sorted(value for _, value in records)
    assert all(r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 4 for r in got)


def test_the_dead_letter_topic_is_created_with_a_short_retention(kafka, names) -> None:
    """It holds the original records, customer data included: ``dlq_retention_hours``."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    from streams.runtime.topics import ensure_topics

    settings = load_settings(
        bootstrap_servers=kafka.bootstrap, topic=names["topic"], dlq_topic=names["dlq"]
    )
    assert settings.dlq_retention_hours == 72
    ensure_topics(settings.model_copy(update={"dlq_retention_hours": 2.5}))
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, names["dlq"], configs=["retention.ms"])]
        )
    finally:
        admin.close()
    (configs,) = described["topic"].values()
    assert configs["retention.ms"]["value"] == "9000000", configs  # 2.5 h in ms
