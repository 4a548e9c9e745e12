"""The bench's table-copies row runs the worker's apply steps through the worker's table
copies: the same rows as those steps over plain dicts, every row stored encoded, every
record and contact counted, nothing skipped."""

from __future__ import annotations

import pytest

from streams.config import load_settings
from streams.processing.stored_rows import read_bucket, read_customer, read_watermark
from streams.tools.bench_tables import BATCH, WorkerTables, batches, partition_of
from streams.tools.simulator import SimParams, generate

PARTITIONS = 4


def _log() -> list[tuple[bytes | None, bytes]]:
    params = SimParams(seed=3, rate=1, max_events=4_000, duplicates=0.03, out_of_order=0.05)
    return [(r.key, r.value) for r in generate(params)]


def _run(cached: bool, monkeypatch: pytest.MonkeyPatch) -> WorkerTables:
    # windows of at most 15 minutes: buckets expire within the log's ~70 minutes (deletes)
    monkeypatch.setenv("TICKETPULSE_WINDOWS", '{"15m": 900}')
    worker = WorkerTables(load_settings(partitions=PARTITIONS), cached=cached)
    for batch in batches(_log(), PARTITIONS, 300):
        worker.input_batch(batch)
        worker.contact_batches()
    worker.contact_batches(least=1)
    return worker


def test_the_table_copies_store_what_plain_dicts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    cached, plain = _run(True, monkeypatch), _run(False, monkeypatch)
    for side, table, read in (
        ("ticket_side", "buckets", read_bucket),
        ("ticket_side", "meta", read_watermark),
        ("customer_side", "cbuckets", read_bucket),
        ("customer_side", "cmeta", read_watermark),
        ("customer_side", "customers", read_customer),
    ):
        stored = getattr(cached, side).stores[table]
        expected = getattr(plain, side).stores[table]
        assert expected, f"the log must fill {table}"
        assert all(isinstance(value, bytes) for value in stored.values())
        assert {key: read(value) for key, value in stored.items()} == expected, table
    # the ticket side's buckets expired: its store lost them as the plain dict did (the
    # DELETE path; the customer side keeps its buckets for the recontact days)
    assert cached.ticket_side.deleted > 0
    # every ticket reached the ticket store; closed quiet ones were let go of to it and read
    # back for a late event, as in the worker
    assert cached.ticket_side.stores["tickets"].keys() == plain.ticket_side.stores["tickets"].keys()
    assert cached.tickets.held.shelved > 0
    assert cached.tickets.held.read_back > 0


def test_every_record_and_contact_is_counted_as_the_worker_counts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = _run(True, monkeypatch)
    state = worker.state
    assert sum(state.accepted.values()) + sum(state.rejected.values()) == len(_log())
    assert state.contacts_received == worker.forwarded > 0  # the marks are not counted
    assert sum(worker.contact_offsets) > worker.forwarded  # the marks were applied too
    assert not any(worker.contacts)  # the last contacts were applied at the end


def test_batches_keep_each_partitions_order_and_lose_no_record() -> None:
    log = _log()
    seen: dict[int, list[tuple[bytes | None, bytes]]] = {}
    for batch in batches(log, PARTITIONS, BATCH):
        assert 0 < len(batch) <= BATCH
        partition = batch[0].partition
        done = seen.setdefault(partition, [])
        assert [r.offset for r in batch] == list(range(len(done), len(done) + len(batch)))
        assert all(r.partition == partition == partition_of(r.key, PARTITIONS) for r in batch)
        done.extend((r.key, r.value) for r in batch)
    assert sum(map(len, seen.values())) == len(log)
    for partition, records in seen.items():
        assert records == [r for r in log if partition_of(r[0], PARTITIONS) == partition]


# Kafka's own murmur2 test vectors (the Java client's UtilsTest.testMurmur2): key -> hash
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize("partitions", [1, 3, 8, 12])
def test_records_go_where_kafkas_default_partitioner_puts_them(partitions: int) -> None:
    """Kafka's rule for a keyed record: the key's murmur2, its sign bit cleared, modulo
    the partition count; a record without a key goes to partition 0 here."""
    for key, murmur2 in KAFKA_MURMUR2.items():
        assert partition_of(key, partitions) == (murmur2 & 0x7FFFFFFF) % partitions, key
    assert partition_of(None, partitions) == 0
