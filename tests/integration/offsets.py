"""What the integration tests read of a worker's progress: its ``/stats``, and the group's
committed offsets against the end offsets, waited for until they meet."""

from __future__ import annotations

import urllib.request

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from tests.conftest import wait_for


def stats(worker) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/stats", timeout=5) as r:
        return orjson.loads(r.read())


def committed_and_end(bootstrap: str, group: str, topics: list[str]) -> dict[TopicPartition, tuple]:
    """(committed offset or None, end offset) of every partition of ``topics``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        committed = {tp: meta.offset for tp, meta in admin.list_group_offsets(group)[group].items()}
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t)]
        ends = consumer.end_offsets(tps)
        return {tp: (committed.get(tp), ends[tp]) for tp in tps}
    finally:
        consumer.close()
        admin.close()


def wait_committed_to_end(bootstrap: str, group: str, topics: list[str], *workers) -> None:
    last: dict = {}

    def at_end() -> bool:
        nonlocal last
        last = committed_and_end(bootstrap, group, topics)
        return all(c == e for c, e in last.values()) and any(e for _, e in last.values())

    try:
        wait_for(at_end, 60, "committed offsets to reach the end offsets", workers[0])
    except pytest.fail.Exception:
        seen = [stats(w) for w in workers]  # what each worker read, held and released
        pytest.fail(f"committed vs end offsets: {last}; the workers' /stats: {seen}")
