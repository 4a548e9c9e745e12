"""The commit sequence's collaborators on Faust and Kafka (``streams.runtime.commit``).

Faust's own table path (``table[key] = value``) costs, for every key, a ``FutureMessage``
through its producer buffer, an aiokafka ``send``, a callback and a RocksDB put of the
changelog offset: most of the worker's time once records arrive in bundles
(docs/performance.md). ``FaustChangelog`` produces the same records, the store's own
encoding of key and value, which Faust's recovery applies verbatim, as aiokafka record
batches per partition and waits for the broker's acknowledgement; ``FaustStore`` then
writes the store and records the last changelog offset as the partition's persisted
offset, as Faust does after each send. Tables are found by name.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, AppT

from streams.processing.table_cache import DELETE, TableChanges, write_changes
from streams.runtime.commit import Encoded, Forward
from streams.runtime.faust_internals import aiokafka_producer, put_rocksdb

DLQ_HEADER_PREFIX = "ticketpulse."


@dataclass
class FaustChangelog:
    """Step 2: a table's changed keys to its changelog, acknowledged by the broker."""

    app: AppT
    tables: dict[str, Any]  # name -> faust Table

    def encode(self, table: Any, key: str, value: Any) -> tuple[bytes, bytes | None]:
        serializers = self.app.serializers
        key_bytes = serializers.dumps_key(table.key_type, key, serializer=table.key_serializer)
        if key_bytes is None:
            msg = "a table key cannot be None"
            raise TypeError(msg)
        if value is DELETE:
            return key_bytes, None
        return key_bytes, serializers.dumps_value(
            table.value_type, value, serializer=table.value_serializer
        )

    async def send(self, changes: TableChanges) -> tuple[Encoded, int]:
        table = self.tables[changes.table]
        records = [self.encode(table, key, value) for key, value in changes.items]
        topic = table.changelog_topic.get_topic_name()
        last = await send_batches(self.app, topic, changes.partition, records)
        return records, last


@dataclass
class FaustStore:
    """Step 3: the same keys into the local store, with the changelog offset."""

    tables: dict[str, Any]  # name -> faust Table

    def write(self, changes: TableChanges, encoded: Encoded, changelog_offset: int) -> None:
        table = self.tables[changes.table]
        store = table.data
        if isinstance(store, RocksDBStore):  # straight into the partition's database
            put_rocksdb(store, changes.partition, encoded)
        elif isinstance(store, MemoryStore):  # decoded values, no partitions
            write_changes(store, changes.items)
        else:
            msg = f"the table writer knows the rocksdb and memory stores, not {type(store)}"
            raise TypeError(msg)
        topic = table.changelog_topic.get_topic_name()
        store.set_persisted_offset(TP(topic, changes.partition), changelog_offset)


def dlq_headers(message: Any, rejected: Any, now: float) -> list[tuple[str, bytes]]:
    """Original headers first, then why and where from (docs/events.md, Dead letters)."""
    original = message.headers or []
    items = list(original.items()) if isinstance(original, dict) else list(original)
    ours = {
        "reason": rejected.reason,
        "detail": rejected.detail,
        "source.topic": message.topic,
        "source.partition": str(message.partition),
        "source.offset": str(message.offset),
        "rejected_at": f"{now:.3f}",
    }
    return items + [(DLQ_HEADER_PREFIX + k, v.encode()) for k, v in ours.items()]


@dataclass
class DeadLetterSender:
    """Step 4: each rejected record's bytes and reason, through Faust's producer (which
    Faust flushes before it commits offsets)."""

    topic: Any  # a faust Topic of raw bytes

    async def send(self, rejects: list[tuple[Any, Any]]) -> None:
        for message, rejected in rejects:
            headers = dlq_headers(message, rejected, time.time())
            await self.topic.send(key=message.key, value=message.value, headers=headers)


@dataclass
class ContactForwarder:
    """Step 5: forwarded contacts, keyed by customer, acknowledged by the broker."""

    app: AppT
    topic: str
    partitions: int

    async def send(self, records: list[Forward]) -> None:
        if records:
            await send_forwarded(self.app, self.topic, self.partitions, records)


async def send_batches(app: AppT, topic: str, partition: int, records: Encoded) -> int:
    """Send records to one partition in as few record batches as they fit in; the offset
    of the last one, once the broker has acknowledged them all."""
    producer = aiokafka_producer(app)
    pending: list[tuple[asyncio.Future[Any], int]] = []

    async def send(batch: Any, count: int) -> None:
        batch.close()  # complete: sent now, not after the producer's linger (20 ms)
        pending.append((await producer.send_batch(batch, topic, partition=partition), count))

    batch, count = producer.create_batch(), 0
    for key, value in records:
        appended = batch.append(key=key, value=value, timestamp=None) is not None
        if not appended and count:  # full: send it and start the next
            await send(batch, count)
            batch, count = producer.create_batch(), 0
            appended = batch.append(key=key, value=value, timestamp=None) is not None
        if not appended:
            msg = f"a {topic} record of {len(value or b'')} bytes exceeds a producer batch"
            raise ValueError(msg)
        count += 1
    await send(batch, count)
    last = -1
    for future, sent in pending:
        metadata = await future
        last = metadata.offset + sent - 1  # a batch's records take consecutive offsets
    return last


async def send_keyed(
    app: AppT, topic: str, partitions: int, records: list[tuple[bytes, bytes]]
) -> None:
    """Send keyed records to the partitions Kafka's default partitioner picks (murmur2 of
    the key, as Faust's ``send_soon`` does), in batches; return once all are acknowledged."""
    await send_forwarded(app, topic, partitions, [Forward(k, v) for k, v in records])


async def send_forwarded(app: AppT, topic: str, partitions: int, records: list[Forward]) -> None:
    """Send each record to its partition (given, or the default partitioner's for its key),
    in order per partition, in batches; return once all are acknowledged."""
    choose, every = DefaultPartitioner(), list(range(partitions))
    by_partition: dict[int, Encoded] = {}
    for key, value, partition in records:
        target = choose(key, every, every) if partition is None else partition
        by_partition.setdefault(target, []).append((key, value))
    await asyncio.gather(*(send_batches(app, topic, p, batch) for p, batch in by_partition.items()))
