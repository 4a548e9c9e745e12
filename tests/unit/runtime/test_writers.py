"""streams.runtime.writers batching: how records are split into producer batches and which
changelog offset becomes the partition's persisted offset (the real path runs in the
integration tests, against the broker)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from streams.runtime.writers import send_batches, send_keyed


class FakeBatch:
    def __init__(self, room: int) -> None:
        self.room, self.records, self.closed = room, [], False  # type: ignore[var-annotated]

    def close(self) -> None:
        self.closed = True

    def append(self, *, key: bytes, value: bytes | None, timestamp: None) -> object | None:
        if len(self.records) == self.room:
            return None  # full, as aiokafka's BatchBuilder says it
        self.records.append((key, value))
        return object()


class FakeProducer:
    """Batches of ``room`` records; the broker appends them to a log from ``start``."""

    def __init__(self, room: int, start: int) -> None:
        self.room, self.next_offset = room, start
        self.sent: list[tuple[str, int, list[Any]]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.room)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        assert batch.closed, "closed before it is sent: no linger"
        self.sent.append((topic, partition, batch.records))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=self.next_offset))  # a batch's base offset
        self.next_offset += len(batch.records)
        return done


def app_with(producer: FakeProducer) -> Any:
    return SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))


async def test_records_fill_batches_in_order_and_the_last_offset_is_returned() -> None:
    producer = FakeProducer(room=3, start=100)
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(7)]
    last = await send_batches(app_with(producer), "t-changelog", 4, records)
    assert [len(r) for _, _, r in producer.sent] == [3, 3, 1]
    assert [rec for _, _, r in producer.sent for rec in r] == records
    assert {(t, p) for t, p, _ in producer.sent} == {("t-changelog", 4)}
    assert last == 106, "offsets 100-106: the seventh record is the last one written"


async def test_a_tombstone_is_sent_as_a_record_without_value() -> None:
    producer = FakeProducer(room=10, start=0)
    assert await send_batches(app_with(producer), "t", 0, [(b"k", None)]) == 0
    assert producer.sent[0][2] == [(b"k", None)]


async def test_a_record_too_big_for_any_batch_fails_loudly() -> None:
    producer = FakeProducer(room=0, start=0)
    with pytest.raises(ValueError, match="exceeds a producer batch"):
        await send_batches(app_with(producer), "t", 0, [(b"k", b"v")])


async def test_keyed_records_go_where_kafkas_default_partitioner_puts_them() -> None:
    """Contacts must land where Faust's producer put them before (aiokafka's murmur2
    partitioner), so a customer's contacts stay on one partition across versions."""
    from aiokafka.partitioner import DefaultPartitioner

    producer = FakeProducer(room=100, start=0)
    records = [(f"customer-{i % 5}".encode(), f"v{i}".encode()) for i in range(20)]
    await send_keyed(app_with(producer), "contacts", 8, records)
    every = list(range(8))
    for _, partition, batch in producer.sent:
        assert {DefaultPartitioner()(k, every, every) for k, _ in batch} == {partition}
    sent = [rec for _, _, batch in producer.sent for rec in batch]
    assert sorted(sent) == sorted(records)
    for key in {k for k, _ in records}:  # each customer's records in their original order
        assert [v for k, v in sent if k == key] == [v for k, v in records if k == key]
