"""A producer that writes the input topic in transactions (Kafka Connect's exactly-once
sources, Flink's exactly-once sinks, any producer with a ``transactional.id``), on the
real broker. Each transaction ends with a marker that takes an offset no consumer receives.

Both failed before their fix: the worker read the events of aborted transactions and
counted them (Faust reads uncommitted records unless its own exactly-once guarantee is
on), and after a restart, the commit of a partition whose committed offset was a marker
waited for that marker for ever (so every later restart read everything since again).
A partition's last marker also read as one record of lag for as long as the producer was
quiet, enough, with the watermark behind, to page ``TicketpulseWatermarkBehind``; and the
group's commit stood at it, one below the end offset, so lag tools that read the group's
offsets (``kafka-consumer-groups``, Burrow) showed every partition 1 behind and stalled.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from streams.config import DEFAULT_WINDOWS, load_settings
from streams.tools.produce import key_of, read_jsonl
from tests.conftest import wait_for
from tests.integration.offsets import committed_and_end, stats, wait_committed_to_end
from tests.integration.test_defects import PARTITIONS, _topics
from tests.integration.test_kpis import wait_equal
from tests.oracle import expected

pytestmark = pytest.mark.integration
TRANSACTION = 400  # records per transaction: every partition gets some of each


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    from streams.cli import main

    path = tmp_path_factory.mktemp("transactions") / "log.jsonl"
    args = ["simulate", "--seed", "17", "--events", "8000", "--output", str(path)]
    assert main([*args, "--duplicates", "0.02", "--late", "0.01", "--malformed", "0.01"]) == 0
    return list(read_jsonl(path))


def never_happened(lines: list[bytes], tag: str) -> list[bytes]:
    """New tickets opened by the aborted transaction ``tag``: counted, they would add
    offered contacts that never were."""
    aborted = []
    for line in lines:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("type") == "opened":
            event["ticket_id"] = f"{tag}-{event['ticket_id']}"
            event["event_id"] = f"{tag}-{event['event_id']}"
            aborted.append(orjson.dumps(event))
    return aborted


def _go_on() -> None:
    return None


def produce_in_transactions(
    bootstrap: str, topic: str, lines: list[bytes], tag: str, hold: Callable[[], None] = _go_on
) -> None:
    """``lines`` in committed transactions of ``TRANSACTION`` records, with an aborted
    transaction after every second one, of new tickets opened as late as the last lines
    (inside every window); the last transaction is committed. ``hold`` runs while the first
    transaction is open, its records on the broker."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"{topic}-{tag}",
        transaction_timeout_ms=300_000,  # above the longest hold: never aborted by the broker
    )
    producer.init_transactions()
    try:
        for n, first in enumerate(range(0, len(lines), TRANSACTION)):
            if n % 2:
                producer.begin_transaction()
                for line in never_happened(lines[-TRANSACTION:], f"{tag}{n}"):
                    producer.send(topic, key=key_of(line), value=line)
                producer.flush()  # on the broker, then aborted (unsent ones would be dropped)
                producer.abort_transaction()
            producer.begin_transaction()
            for line in lines[first : first + TRANSACTION]:
                producer.send(topic, key=key_of(line), value=line)
            if n == 0:
                producer.flush()
                hold()
            producer.commit_transaction()
    finally:
        producer.close()


def wait_committed_to_the_end(kafka, names, *workers) -> None:
    """Every partition's commit passes its last marker, which no consumer receives."""
    topics = [names["topic"], f"{names['app_id']}-contacts"]
    wait_committed_to_end(kafka.bootstrap, names["app_id"], topics, *workers)


def commit_at_the_last_markers(bootstrap: str, group: str, topic: str) -> None:
    """Set the group's offsets of ``topic`` back to each partition's last offset, the marker
    of its last transaction: where a worker stopped before its commit passed it resumes."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        consumer.commit({tp: OffsetAndMetadata(ends[tp] - 1, "", -1) for tp in tps})
    finally:
        consumer.close()
    now = committed_and_end(bootstrap, group, [topic])
    assert all(c == e - 1 for c, e in now.values()), now


def oracle_of(lines: list[bytes]) -> dict:
    records = [(key_of(line), line) for line in lines]
    return expected(
        records,
        partitions=PARTITIONS,
        policy=load_settings().policy(),
        now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
    )


def test_aborted_transactions_are_never_counted_and_markers_never_hold_the_commit(
    kafka, names, start_worker, log, tmp_path: Path
) -> None:
    _topics(kafka, names)
    half = len(log) // 2
    produce_in_transactions(kafka.bootstrap, names["topic"], log[:half], "a")
    data = tmp_path / "store"
    first = start_worker("--clock", "event", data_dir=data)
    wait_equal(oracle_of(log[:half]), first, timeout=240)  # no aborted event counted
    wait_committed_to_the_end(kafka, names, first)
    assert first.stop(signal.SIGTERM) == 0

    # resumed at a marker with records after it: the first record read is the one after it
    commit_at_the_last_markers(kafka.bootstrap, names["app_id"], names["topic"])
    produce_in_transactions(kafka.bootstrap, names["topic"], log[half:], "b")
    second = start_worker("--clock", "event", data_dir=data)
    wait_equal(oracle_of(log), second, timeout=240)
    wait_committed_to_the_end(kafka, names, second)
    assert stats(second)["accepted"] + stats(second)["rejected"] == len(log) - half
    # each partition's last offset is a marker: nothing is behind, and nothing pages
    lag = "ticketpulse_consumer_lag_records"
    lags = {dict(labels)["partition"]: v for (n, labels), v in second.metrics().items() if n == lag}
    assert lags == {str(p): 0 for p in range(PARTITIONS)}
    assert stats(second)["lag"] == 0


def test_two_workers_rebalancing_while_a_transaction_is_open_count_each_event_once(
    kafka, names, start_worker, log
) -> None:
    """The second worker joins while a transaction is open on the broker, its records
    written: the first worker, done with everything before it, is held at the transaction's
    start (the last stable offset), and the group rebalances then. Each worker resumes the
    partitions it was handed where the last commit left them."""
    _topics(kafka, names)
    half = len(log) // 2
    first = start_worker("--clock", "event")
    produce_in_transactions(kafka.bootstrap, names["topic"], log[:half], "c")
    wait_equal(oracle_of(log[:half]), first, timeout=240)
    wait_committed_to_the_end(kafka, names, first)
    workers = [first]

    def second_joins() -> None:
        workers.append(start_worker("--clock", "event", wait=False))
        wait_for(lambda: all(owned(w) for w in workers), 120, "both workers to own partitions")

    produce_in_transactions(kafka.bootstrap, names["topic"], log[half:], "d", hold=second_joins)
    wait_equal(oracle_of(log), *workers, timeout=240)
    wait_committed_to_the_end(kafka, names, *workers)
    lag = "ticketpulse_consumer_lag_records"
    lags = [
        {dict(labels)["partition"]: v for (n, labels), v in w.metrics().items() if n == lag}
        for w in workers
    ]
    assert not lags[0].keys() & lags[1].keys(), "no partition exported by both"
    assert {**lags[0], **lags[1]} == {str(p): 0 for p in range(PARTITIONS)}


def owned(worker) -> int:
    """Partitions the worker owns actively (0 while it cannot answer yet)."""
    try:
        metrics = worker.metrics()
    except OSError:
        return 0
    return int(metrics.get(("ticketpulse_partitions_assigned", (("role", "active"),)), 0))
