"""A batch writes each bucket it changes once, at its end (``BucketStore.deferred``): the
tables equal those written one record at a time, for any batch boundaries, and after a
crash that persisted any subset of a batch's keys and replayed it in other batches."""

from __future__ import annotations

import math
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.facts import DAY, Fact
from streams.ingest.schema import Accepted, classify
from streams.processing.bucket_store import BucketStore
from streams.processing.customers import CustomerProcessor, CustomerTables
from streams.processing.kpi import KpiProcessor, Tables
from streams.processing.settings import KpiSettings
from streams.processing.stored_rows import BucketRow
from streams.tools.simulator import SimParams, generate
from tests.oracle import partition_of

PARTITIONS = 3
Records = list[tuple[int, int, object]]  # (partition, offset, event)


def simulated(seed: int, rate: float, n: int) -> Records:
    """Accepted events of a simulated log, with their partitions and offsets, partition by
    partition (the ticket side's partitions share nothing), so batches can be long."""
    params = SimParams(
        seed=seed, rate=rate, max_events=n, duplicates=0.05, out_of_order=0.1, late=0.02
    )
    out: Records = []
    offsets: dict[int, int] = {}
    now = time.time() + 400 * DAY
    for record in generate(params):
        if record.key is None:
            continue
        p = partition_of(record.key, PARTITIONS)
        off = offsets[p] = offsets.get(p, -1) + 1
        outcome = classify(record.key, record.value, now=now, future_tolerance_s=300)
        if isinstance(outcome, Accepted):
            out.append((p, off, outcome.event))
    return sorted(out, key=lambda r: (r[0], r[1]))


def one_at_a_time(records: Records) -> KpiProcessor:
    proc = KpiProcessor(Tables(), KpiSettings())
    for p, off, event in records:
        proc.process(p, off, event)
    return proc


def in_batches(proc: KpiProcessor, records: Records, rng: random.Random) -> None:
    """Consecutive records of one partition per batch, as the worker's agent gets them."""
    i = 0
    while i < len(records):
        size = rng.choice([1, 2, 7, 40, 500])
        end = i + 1
        while end < min(i + size, len(records)) and records[end][0] == records[i][0]:
            end += 1
        chunk = records[i:end]
        with proc.batch():
            for p, off, event in chunk:
                proc.process(p, off, event)
        i += len(chunk)


def assert_same_buckets(live: dict, reference: dict) -> None:
    assert live.keys() == reference.keys()
    for key, row in reference.items():
        mine = live[key]
        assert mine.offset == row.offset, key
        assert mine.maxima == row.maxima, key
        assert {e: c for e, _, c in mine.sums} == {e: c for e, _, c in row.sums}, key
        for (entry, total, _), theirs in zip(
            sorted(mine.sums), sorted(row.sums), strict=True
        ):  # netted in another order: the same sum up to float rounding
            assert math.isclose(total, theirs[1], rel_tol=1e-12, abs_tol=1e-6), (key, entry)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rate=st.sampled_from([20.0, 0.002]), order=st.randoms())
def test_batches_write_the_same_buckets_as_records_one_at_a_time(seed, rate, order) -> None:
    """Slow logs (0.002 events/s: days apart) expire buckets in the middle of batches."""
    records = simulated(seed, rate, 300)
    reference = one_at_a_time(records)
    batched = KpiProcessor(Tables(), KpiSettings())
    in_batches(batched, records, order)
    assert_same_buckets(batched.tables.buckets, reference.tables.buckets)
    assert batched.tables.meta == reference.tables.meta


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rng=st.randoms(), kept=st.floats(0, 1))
def test_a_batch_persisted_in_part_and_replayed_in_other_batches_counts_once(
    seed, rng, kept
) -> None:
    """The crash at step 3: some of a batch's keys reached the store, others not. The
    restarted worker re-reads the batch's records (other batch boundaries) and goes on."""
    records = simulated(seed, 20.0, 300)
    reference = one_at_a_time(records)
    proc = KpiProcessor(Tables(), KpiSettings())
    cut = rng.randrange(len(records))
    in_batches(proc, records[:cut], rng)
    before = {name: dict(getattr(proc.tables, name)) for name in ("tickets", "buckets", "meta")}
    end = cut + 1
    while end < len(records) and records[end][0] == records[cut][0] and end - cut < 60:
        end += 1
    in_batches(proc, records[cut:end], random.Random(0))  # applied, then the crash
    stored = Tables()
    for name, was in before.items():
        table, now = getattr(stored, name), getattr(proc.tables, name)
        table.update(was)
        for key in now.keys() | was.keys():  # each key persisted or not, by chance
            if rng.random() < kept:
                if key in now:
                    table[key] = now[key]
                else:
                    table.pop(key, None)
    restarted = KpiProcessor(stored, KpiSettings())
    in_batches(restarted, records[cut:], rng)
    assert_same_buckets(restarted.tables.buckets, reference.tables.buckets)


def fact(at: float, value: float) -> Fact:
    return Fact(at, "first_response", "sales", "chat", value)


def test_nothing_is_written_when_a_batch_fails() -> None:
    store = BucketStore({}, 60, (10.0, 60.0), retention_s=DAY)
    with pytest.raises(RuntimeError), store.deferred():
        store.write(0, 1, [], [fact(100.0, 5.0)], 100.0)
        raise RuntimeError("a defect in the middle of the batch")
    assert store.buckets == {}
    store.write(0, 1, [], [fact(100.0, 5.0)], 100.0)  # the batch again, after the restart
    row = store.buckets["0|60|sales|chat"]
    assert isinstance(row, BucketRow) and {e.le: c for e, _, c in row.sums} == {"": 1, "10": 1}


def test_a_batch_writes_a_bucket_once_with_every_record_in_it() -> None:
    writes: list[str] = []

    class Counting(dict):
        def __setitem__(self, key, value) -> None:
            writes.append(key)
            super().__setitem__(key, value)

    store = BucketStore(Counting(), 60, (10.0, 60.0), retention_s=DAY)
    with store.deferred():
        for offset in range(1, 6):
            store.write(0, offset, [], [fact(100.0 + offset, 20.0)], 100.0)
        assert writes == []  # nothing before the batch ends
    assert writes == ["0|60|sales|chat"]
    row = store.buckets["0|60|sales|chat"]
    assert row.offset == 5 and row.maxima == {"first_response": (20.0,) * 5}
    assert {e.le: (s, c) for e, s, c in row.sums} == {"": (100.0, 5), "60": (100.0, 5)}


def test_customer_batches_write_the_same_buckets_as_contacts_one_at_a_time() -> None:
    records = simulated(7, 20.0, 600)
    tickets = one_at_a_time(records)
    contacts = []
    proc = KpiProcessor(Tables(), KpiSettings())
    for p, off, event in records:
        done = proc.process(p, off, event)
        if done.contact is not None:
            contacts.append(done.contact)
    assert contacts and tickets.tables.buckets
    single = CustomerProcessor(CustomerTables(), KpiSettings())
    for off, contact in enumerate(contacts):
        single.process(0, off, *contact)
    batched = CustomerProcessor(CustomerTables(), KpiSettings())
    for first in range(0, len(contacts), 37):
        with batched.batch():
            for off in range(first, min(first + 37, len(contacts))):
                batched.process(0, off, *contacts[off])
    assert_same_buckets(batched.tables.cbuckets, single.tables.cbuckets)


def test_a_watermark_moving_mid_batch_writes_only_the_buckets_that_expire() -> None:
    """Expiry in the middle of a batch writes (then drops) the buckets it ends; the batch's
    other buckets are still written once, at its end, with every record in them."""
    writes: list[str] = []

    class Counting(dict):
        def __setitem__(self, key, value) -> None:
            writes.append(key)
            super().__setitem__(key, value)

    store = BucketStore(Counting(), 60, (10.0, 60.0), retention_s=3600)
    with store.deferred():
        store.write(0, 1, [], [fact(100.0, 5.0)], 100.0)  # bucket 60: expires below
        store.write(0, 2, [], [fact(7300.0, 5.0)], 7300.0)  # bucket 7260: stays
        store.write(1, 1, [], [fact(100.0, 5.0)], 100.0)  # another partition: stays
        store.expire(0, 7300.0)  # horizon 3700: partition 0's bucket 60 goes
        assert writes == ["0|60|sales|chat"] and "0|60|sales|chat" not in store.buckets
        store.write(0, 3, [], [fact(7310.0, 20.0)], 7310.0)
    assert sorted(writes) == ["0|60|sales|chat", "0|7260|sales|chat", "1|60|sales|chat"]
    row = store.buckets["0|7260|sales|chat"]
    assert row.offset == 3 and {e.le: c for e, _, c in row.sums} == {"": 2, "10": 1, "60": 1}
    assert {e.le: s for e, s, _ in row.sums}[""] == 25.0
