"""What a batch sends: its changed table keys (changelog first, in producer record batches,
then the store) and its forwarded contacts, each acknowledged before the batch is done.

Faust's own path (``table[key] = value``) costs, for every key, a ``FutureMessage``
through its producer buffer, an aiokafka ``send``, a callback and a RocksDB put of the
changelog offset: most of the worker's time once records arrive in bundles
(docs/performance.md). This writer produces the same records, the store's own encoding
of key and value, which Faust's recovery applies verbatim, and sends each partition's
records as aiokafka record batches. It waits until the broker has acknowledged them,
then writes the store and records the last changelog offset as the partition's
persisted offset, as Faust does after each send.

Changelog before store: a crash in between leaves the changelog ahead, and the recovery
that follows a restart (from the persisted offset) brings the store up to it. Faust's
own order, store first with the changelog record still buffered, can leave a store
ahead of its changelog, which a later owner of the partition never sees. The agent
awaits the write before its batch is marked done, so a failed send fails the batch and
nothing is committed past it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, AppT

from streams.table_cache import DELETE, Changes


@dataclass
class TableWriter:
    """Writes one Faust table's changed keys (``TableCache.changes``)."""

    app: AppT
    table: Any  # a faust Table

    def encode(self, key: str, value: Any) -> tuple[bytes, bytes | None]:
        t, serializers = self.table, self.app.serializers
        key_bytes = serializers.dumps_key(t.key_type, key, serializer=t.key_serializer)
        if key_bytes is None:
            msg = "a table key cannot be None"
            raise TypeError(msg)
        if value is DELETE:
            return key_bytes, None
        return key_bytes, serializers.dumps_value(
            t.value_type, value, serializer=t.value_serializer
        )

    async def write(self, partition: int, items: list[tuple[str, Any]]) -> int:
        records = [self.encode(key, value) for key, value in items]
        topic = self.table.changelog_topic.get_topic_name()
        last = await send_batches(self.app, topic, partition, records)
        store = self.table.data
        if isinstance(store, RocksDBStore):  # straight into the partition's database
            db = store._db_for_partition(partition)
            for key_bytes, value_bytes in records:
                if value_bytes is None:
                    db.delete(key_bytes)
                    store._key_index.pop(key_bytes, None)
                else:
                    db.put(key_bytes, value_bytes)
        elif isinstance(store, MemoryStore):  # decoded values, no partitions
            for key, value in items:
                if value is DELETE:
                    store.pop(key, None)
                else:
                    store[key] = value
        else:
            msg = f"the table writer knows the rocksdb and memory stores, not {type(store)}"
            raise TypeError(msg)
        store.set_persisted_offset(TP(topic, partition), last)
        return len(records)


async def send_batches(
    app: AppT, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]
) -> int:
    """Send records to one partition in as few record batches as they fit in; the offset
    of the last one, once the broker has acknowledged them all."""
    producer = app.producer._ensure_producer()  # type: ignore[attr-defined]  # aiokafka's
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
    choose, every = DefaultPartitioner(), list(range(partitions))
    by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
    for key, value in records:
        by_partition.setdefault(choose(key, every, every), []).append((key, value))
    await asyncio.gather(*(send_batches(app, topic, p, batch) for p, batch in by_partition.items()))


async def write_changes(writers: dict[int, TableWriter], changes: Changes) -> int:
    """Write every table's changes of a batch, all partitions' sends in flight at once."""
    written = await asyncio.gather(
        *(writers[id(t.backing)].write(partition, items) for t, partition, items in changes)
    )
    return sum(written)
