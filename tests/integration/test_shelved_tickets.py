"""A closed, quiet ticket is left to the worker's RocksDB store (``ShelvedTicket``), and a
late survey or a reopen reads it back: the figures equal the oracle's, before and after a
restart, which reads closed tickets back shelved. On the real broker and store."""

from __future__ import annotations

import time

import orjson
import pytest
from kafka import KafkaProducer

from streams.config import DEFAULT_WINDOWS, load_settings
from tests.conftest import wait_for
from tests.integration.offsets import stats
from tests.integration.test_defects import _processed, _topics
from tests.integration.test_kpis import wait_equal
from tests.oracle import expected

pytestmark = pytest.mark.integration
T0 = 1_767_600_000  # 2026-01-05T08:00:00Z


def _event(event_id: str, kind: str, ticket: str, at: float, **extra: object) -> bytes:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + at))
    doc = {"event_id": event_id, "type": kind, "ticket_id": ticket, "occurred_at": when}
    return orjson.dumps({**doc, "queue": "billing", "channel": "chat", **extra})


def _send(producer: KafkaProducer, topic: str, sent: list, *values: bytes) -> None:
    """One at a time, each its own batch: a ticket is shelved only once its row is stored."""
    for value in values:
        key = orjson.loads(value)["ticket_id"].encode()
        producer.send(topic, key=key, value=value).get(timeout=30)
        sent.append((key, value))


def _oracle(sent: list) -> dict:
    return expected(
        sent,
        partitions=1,
        policy=load_settings().policy(),
        now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
    )


def test_a_closed_quiet_ticket_is_left_to_the_store_and_read_back(
    kafka, names, start_worker, tmp_path
) -> None:
    _topics(kafka, names, partitions=1)
    data = tmp_path / "store"
    args = ("--clock", "event", "--partitions", "1")
    worker = start_worker(*args, data_dir=data)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    topic, sent = names["topic"], []

    def processed(n: int) -> None:
        wait_for(lambda: _processed(worker) == n, 60, f"{n} records processed", worker)

    opening = [_event("a1", "opened", "T-A", 0, customer_id="C-1")]
    opening.append(_event("a2", "replied", "T-A", 30, author="agent", handle_seconds=20))
    opening.append(_event("a3", "resolved", "T-A", 60, handle_seconds=5))
    for i, value in enumerate(opening, 1):
        _send(producer, topic, sent, value)
        processed(i)
    # another ticket moves the watermark 16 minutes on: T-A is closed and quiet past
    # closed_ticket_pack_seconds (10 min), and its row is stored, so the worker lets go of it
    _send(producer, topic, sent, _event("b1", "opened", "T-B", 1000, customer_id="C-2"))
    processed(4)
    assert stats(worker)["tickets"] == {"shelved": 1, "packed": 0, "read_back": 0}
    _send(producer, topic, sent, _event("a4", "survey", "T-A", 900, survey_kind="csat", score=4))
    processed(5)
    assert stats(worker)["tickets"]["read_back"] == 1, "the survey read T-A back"
    wait_equal(_oracle(sent), worker, timeout=60)

    assert worker.stop() == 0
    worker = start_worker(*args, data_dir=data)  # reads every row back: T-A shelved again
    _send(producer, topic, sent, _event("a5", "reopened", "T-A", 1010, customer_id="C-1"))
    wait_for(lambda: _processed(worker) == 1, 60, "the reopen processed", worker)
    assert stats(worker)["tickets"]["read_back"] == 1, "the reopen read T-A back after a restart"
    wait_equal(_oracle(sent), worker, timeout=60)
    producer.close()
