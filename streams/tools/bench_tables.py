"""The bench's table-copies row: the worker's apply steps and table copies, no Kafka.

Between the core row (one partition, plain dicts, batches of 2,000) and the product, this row
runs the worker's own apply steps (``streams.runtime.apply``: validation, both processors,
the worker's counters) with the worker's settings, without Faust, a Kafka client or RocksDB:

- the log's records split by partition as Kafka's default partitioner places them (murmur2
  of the key, before the clock starts; a record without a key on partition 0), and applied
  in batches of one partition's records, the partitions in turn;
- through the worker's table copies (``TableCache``, with the worker's codecs): bucket and
  customer rows held packed, closed tickets let go of and read back, each batch's changed
  rows encoded (the values its changelog records carry) and written to a dict that stands
  in for the store;
- each contact forwarded as the value the contacts topic carries, with a watermark mark to
  every contacts partition when an input partition's watermark moved; contacts are spread
  over the contacts partitions by CRC-32 of the customer (the worker's producer hashes it
  with murmur2 in step 5, which is not part of this row), and a contacts partition's records
  are applied as one batch once it holds ``CONTACT_BATCH`` of them (and at the end).

So the core row, this row and the product split what a record costs: our processing; the
apply steps as the worker runs them (its table copies, the partitions with their watermarks
and marks, its counters); and the rest (reading through Faust and aiokafka, producing and
its acknowledgements, RocksDB). ``time.perf_counter`` covers the applying only.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

from aiokafka.partitioner import DefaultPartitioner

from streams.config import Settings
from streams.processing import customers as customer_side
from streams.processing import kpi
from streams.processing.customers import CustomerProcessor, CustomerTables
from streams.processing.kpi import KpiProcessor, Tables
from streams.processing.table_cache import TableCache, TableChanges, write_changes
from streams.processing.table_codecs import worker_copy
from streams.runtime.apply import ContactApply, TicketApply
from streams.runtime.processes import tune_gc
from streams.runtime.state import PipelineState

BATCH = 750  # one partition's records per batch: about the worker's catch-up bundles here
# a contacts partition's records per batch: the worker's customer agent took 216 on average
# while catching up on this log (a scratch run on 2026-12-06 that timed each batch)
CONTACT_BATCH = 200


class Record(NamedTuple):
    """A record as the apply steps read it (a Faust message in the worker)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


def partition_of(key: bytes | None, partitions: int) -> int:
    """Where Kafka's default partitioner puts a keyed record (aiokafka's, as the bench's
    load producer picks); a record without a key on partition 0 (Kafka picks at random)."""
    every = list(range(partitions))
    return int(_DEFAULT_PARTITIONER(key, every, every)) if key else 0


_DEFAULT_PARTITIONER = DefaultPartitioner()


class _Side:
    """One agent's table copies over dict stores, and the writing of a batch's changes;
    ``cached`` False: the plain dicts of the core row instead (for the tests)."""

    def __init__(self, names: tuple[str, ...], cached: bool) -> None:
        self.cache = TableCache()
        self.stores: dict[str, dict[str, Any]] = {name: {} for name in names}
        self.tables: dict[str, Any] = (
            {name: self._table(name) for name in names} if cached else dict(self.stores)
        )
        self.deleted = 0  # rows deleted from the stores (expired buckets and customers)

    def _table(self, name: str) -> Any:
        store = self.stores[name]

        def reread(partition: int, key: str) -> Any:
            return store.get(key)

        return worker_copy(self.cache, name, store, None, reread)

    def write(self, changes: list[TableChanges]) -> None:
        """Steps 2 and 3 of the worker's commit, without Kafka: a batch's changed rows,
        encoded, into their stores (the next batch lets go of what it may, as the worker's)."""
        for change in changes:
            self.deleted += write_changes(self.stores[change.table], change.items)


class WorkerTables:
    """The worker's two apply steps (``streams.runtime.apply``) on the worker's table
    copies over dict stores, the contacts topic as a list per partition."""

    def __init__(self, settings: Settings, cached: bool = True) -> None:
        kpi_settings = settings.kpi_settings()
        self.partitions = partitions = settings.partitions
        self.ticket_side = _Side(kpi.TABLES, cached)
        self.customer_side = _Side(customer_side.TABLES, cached)
        self.tickets = KpiProcessor(Tables(**self.ticket_side.tables), kpi_settings)
        self.customers = CustomerProcessor(
            CustomerTables(**self.customer_side.tables), kpi_settings
        )
        self.state = PipelineState()
        self.apply_tickets = TicketApply(
            self.ticket_side.cache,
            self.tickets,
            self.state,
            partitions,
            settings.future_tolerance_seconds,
            settings.max_record_bytes,
        )
        self.apply_contacts = ContactApply(self.customer_side.cache, self.customers, self.state)
        self.contacts: list[list[bytes]] = [[] for _ in range(partitions)]
        self.contact_offsets = [0] * partitions
        self.forwarded = 0  # contacts forwarded (watermark marks aside)

    def input_batch(self, records: list[Record]) -> None:
        """One input batch (one partition's records), its contacts forwarded."""
        batch = self.apply_tickets(records)
        self.ticket_side.write(batch.changes)
        for forward in batch.contacts:
            target = forward.partition
            if target is None:  # a contact, keyed by customer (a mark names its partition)
                target = zlib.crc32(forward.key) % self.partitions
                self.forwarded += 1
            self.contacts[target].append(forward.value)

    def contact_batches(self, least: int = CONTACT_BATCH) -> None:
        """Each contacts partition's forwarded records, as one batch once it holds ``least``
        of them (1: every one left)."""
        for partition, queue in enumerate(self.contacts):
            if len(queue) < max(least, 1):
                continue
            first = self.contact_offsets[partition]
            self.contact_offsets[partition] += len(queue)
            records = [Record(partition, first + i, None, v) for i, v in enumerate(queue)]
            queue.clear()
            self.customer_side.write(self.apply_contacts(records).changes)


def batches(
    records: list[tuple[bytes | None, bytes]], partitions: int, size: int
) -> Iterator[list[Record]]:
    """Each batch's records (of one partition, with their offsets), the partitions in turn."""
    split: list[list[Record]] = [[] for _ in range(partitions)]
    for key, value in records:
        partition = partition_of(key, partitions)
        part = split[partition]
        part.append(Record(partition, len(part), key, value))
    longest = max((len(part) for part in split), default=0)
    for first in range(0, longest, size):
        for part in split:
            if first < len(part):
                yield part[first : first + size]


def core_with_tables(
    records: list[tuple[bytes | None, bytes]], settings: Settings
) -> tuple[str, int, float]:
    """The row: the whole log through ``WorkerTables`` (see the module docstring)."""
    worker = WorkerTables(settings)
    planned = list(batches(records, settings.partitions, BATCH))  # before the clock starts
    tune_gc()  # as the worker does
    t0 = time.perf_counter()
    for batch in planned:
        worker.input_batch(batch)
        worker.contact_batches()
    worker.contact_batches(least=1)
    label = f"the worker's apply steps and table copies: {settings.partitions} partitions, no Kafka"
    return label, len(records), time.perf_counter() - t0
