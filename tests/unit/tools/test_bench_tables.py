"""The bench's table-copies row does the core row's work through the worker's table copies:
the same figures as plain dicts, every row encoded into its store, nothing skipped."""

from __future__ import annotations

from streams.processing.stored_rows import read_bucket, read_customer
from streams.tools.bench_tables import BATCH, WorkerTables, batches, partition_of
from streams.tools.simulator import SimParams, generate

PARTITIONS = 4


def _log() -> list[tuple[bytes | None, bytes]]:
    params = SimParams(seed=3, rate=1, max_events=4_000, duplicates=0.03, out_of_order=0.05)
    return [(r.key, r.value) for r in generate(params)]


def _run(cached: bool) -> WorkerTables:
    worker = WorkerTables(PARTITIONS, cached=cached)
    for batch in batches(_log(), PARTITIONS, 300):
        worker.input_batch(batch)
        worker.contact_batches()
    return worker


def test_the_table_copies_give_the_plain_dicts_figures_and_store_every_row_encoded() -> None:
    cached, plain = _run(cached=True), _run(cached=False)
    for side, table, read in (
        ("ticket_side", "buckets", read_bucket),
        ("customer_side", "cbuckets", read_bucket),
        ("customer_side", "customers", read_customer),
    ):
        stored = getattr(cached, side).stores[table]
        expected = getattr(plain, side).stores[table]
        assert expected, f"the log must fill {table}"
        assert all(isinstance(value, bytes) for value in stored.values())
        assert {key: read(value) for key, value in stored.items()} == expected, table
    # every ticket of the log reached the ticket store, and closed quiet ones were let go of
    # to it and read back for a late event, as in the worker
    assert cached.ticket_side.stores["tickets"].keys() == plain.ticket_side.stores["tickets"].keys()
    assert cached.tickets.held.shelved > 0
    assert cached.tickets.held.read_back > 0


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


def test_every_record_is_counted_as_the_worker_counts_it() -> None:
    """The worker's own apply steps ran: its counters saw every record and contact."""
    worker = _run(cached=True)
    state = worker.state
    assert sum(state.accepted.values()) + sum(state.rejected.values()) == len(_log())
    # every forwarded record was applied: the contacts, and the watermark marks besides
    assert 0 < state.contacts_received < sum(worker.contact_offsets)
    assert not any(worker.contacts)
