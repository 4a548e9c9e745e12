"""Closed, quiet tickets are held packed (their stored bytes) or shelved (left to the store
of the worker's cache), and that changes no figure, no stored row and no forwarded contact,
for any log, late events and redeliveries included."""

from __future__ import annotations

import math
import random
from contextlib import nullcontext
from itertools import groupby

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.processing.held_tickets import (
    PackedTicket,
    ShelvedTicket,
    TicketRecord,
    encode_ticket,
    read_held_ticket,
    read_ticket,
)
from streams.processing.kpi import KpiProcessor, Tables, open_rows
from streams.processing.settings import KpiSettings
from streams.processing.table_cache import CacheStateError, TableCache
from streams.processing.table_codecs import CODECS, REREADABLE_DECODE
from tests.unit.processing.test_batched_buckets import (
    PARTITIONS,
    Records,
    assert_same_buckets,
    simulated,
)


def run(records: Records, pack_closed_s: float) -> tuple[KpiProcessor, list]:
    proc = KpiProcessor(Tables(), KpiSettings(pack_closed_s=pack_closed_s))
    outputs = [proc.process(p, off, event) for p, off, event in records]
    return proc, outputs


def stored(proc: KpiProcessor) -> dict[str, bytes]:
    return {key: encode_ticket(held) for key, held in proc.tables.tickets.items()}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), pack_closed_s=st.sampled_from([0.0, 60.0]))
def test_packing_closed_tickets_changes_nothing_but_how_they_are_held(
    seed: int, pack_closed_s: float
) -> None:
    records = simulated(seed, rate=30, n=3000)
    reference, expected = run(records, math.inf)
    packed, outputs = run(records, pack_closed_s)
    assert outputs == expected  # outcomes, contacts forwarded, watermark moves
    assert stored(packed) == stored(reference)  # the very bytes of every stored row
    assert_same_buckets(dict(packed.tables.buckets), dict(reference.tables.buckets))
    assert packed.cumulative == reference.cumulative
    everywhere = set(range(PARTITIONS))
    assert list(open_rows(packed.tables.tickets, everywhere)) == list(
        open_rows(reference.tables.tickets, everywhere)
    )  # the Now gauges' backlog
    held = [t for t in packed.tables.tickets.values() if isinstance(t, PackedTicket)]
    assert held, "the log packed some ticket"
    for ticket in held:  # what retention reads of it is the ticket's own
        record = read_ticket(ticket.row)
        assert (ticket.partition, ticket.newest) == (record.partition, record.newest)
    assert not any(isinstance(t, PackedTicket) for t in reference.tables.tickets.values())


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), replayed=st.integers(1, 800))
def test_redelivered_records_of_packed_tickets_change_nothing(seed: int, replayed: int) -> None:
    """A crash after the tables were written: the last records come again, and meet tickets
    packed meanwhile; each is a replay, and every table stays as it was."""
    records = simulated(seed, rate=30, n=3000)
    proc, _ = run(records, 0.0)
    before = (stored(proc), dict(proc.tables.buckets), dict(proc.tables.meta))
    rng = random.Random(seed)
    tail = records[-replayed:]
    for p, off, event in rng.sample(tail, len(tail)):  # in any order
        proc.process(p, off, event)
    assert (stored(proc), dict(proc.tables.buckets), dict(proc.tables.meta)) == before


def test_a_stored_ticket_reads_back_packed_when_closed_and_decoded_when_open() -> None:
    records = simulated(3, rate=30, n=3000)
    proc, _ = run(records, math.inf)
    rows = {key: encode_ticket(record) for key, record in proc.tables.tickets.items()}
    held = {key: read_held_ticket(row) for key, row in rows.items()}
    for key, record in proc.tables.tickets.items():
        if record.open is None:
            assert held[key] == PackedTicket(record.partition, record.newest, rows[key])
        else:
            assert isinstance(held[key], TicketRecord) and held[key].open == record.open
    assert {type(h) for h in held.values()} == {PackedTicket, TicketRecord}


def test_a_tickets_newest_time_is_its_latest_events_kept_or_read_back() -> None:
    """Kept as events come (out of order too) and worked out again when a row is read."""
    proc, _ = run(simulated(5, rate=30, n=3000), math.inf)
    for record in proc.tables.tickets.values():
        latest = max(e.occurred_at for e, _ in record.ticket.events)
        assert record.newest == latest == read_ticket(encode_ticket(record)).newest


def test_packing_in_the_worker_cache_writes_nothing() -> None:
    """``hold`` replaces the held value; only real changes reach the changelog."""
    cache = TableCache()
    codec = CODECS["tickets"]
    backing: dict[str, bytes] = {}
    table = cache.table(backing, codec.encode, codec.decode, "tickets")
    proc = KpiProcessor(Tables(tickets=table), KpiSettings(pack_closed_s=0.0))
    records = simulated(5, rate=30, n=2000)
    with cache.batch(0):
        for p, off, event in records:
            if p == 0:
                proc.process(p, off, event)
    written = {key: value for c in cache.changes() for key, value in c.items}
    assert any(isinstance(v, PackedTicket) for v in table.values())
    assert written == {key: encode_ticket(held) for key, held in table.items()}
    key, held = next((k, v) for k, v in table.items() if isinstance(v, TicketRecord))
    table.hold(key, held)
    assert cache.changes() == []


def test_a_packed_ticket_is_not_an_open_one() -> None:
    with pytest.raises(AttributeError):
        PackedTicket(0, 1.0, b"[]").ticket  # noqa: B018 - the processor must unpack it
    assert PackedTicket(0, 1.0, b"[]").open is None


class WorkerLikeTickets:
    """A tickets table as the worker's: a cache over a store it flushes to after each batch
    (one partition's run of records, at most ``size``), and reads rows back from."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.store: dict[str, bytes] = {}
        self.cache = TableCache()
        codec = CODECS["tickets"]
        self.table = self.cache.table(
            self.store,
            codec.encode,
            REREADABLE_DECODE["tickets"],
            "tickets",
            reread=lambda _partition, key: self.store.get(key),
        )

    def run(self, proc: KpiProcessor, records: Records) -> list:
        outputs = []
        for i, (p, run) in enumerate(groupby(records, key=lambda r: r[0])):
            run = list(run)
            for first in range(0, len(run), self.size):
                with self.cache.batch(p):
                    outputs += [proc.process(*r) for r in run[first : first + self.size]]
                self.cache.flush(lambda _p: nullcontext())
            if i % 50 == 49:  # now and then a rebalance: every row read back from the store
                self.cache.reset()
        return outputs


def shelving_run(records: Records, size: int) -> tuple[KpiProcessor, list, WorkerLikeTickets]:
    worker = WorkerLikeTickets(size)
    proc = KpiProcessor(Tables(tickets=worker.table), KpiSettings(pack_closed_s=0.0))
    return proc, worker.run(proc, records), worker


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), size=st.integers(1, 40))
def test_shelving_closed_tickets_in_the_worker_cache_changes_nothing(seed: int, size: int) -> None:
    records = simulated(seed, rate=30, n=3000)
    reference, expected = run(records, math.inf)
    proc, outputs, worker = shelving_run(records, size)
    assert outputs == expected  # outcomes, contacts forwarded, watermark moves
    assert worker.store == stored(reference)  # the very bytes of every stored row
    assert_same_buckets(dict(proc.tables.buckets), dict(reference.tables.buckets))
    assert proc.cumulative == reference.cumulative
    everywhere = set(range(PARTITIONS))
    assert list(open_rows(worker.table, everywhere)) == list(
        open_rows(reference.tables.tickets, everywhere)
    )  # the Now gauges' backlog
    shelved = {k: t for k, t in worker.table.items() if isinstance(t, ShelvedTicket)}
    assert shelved, "the log shelved some ticket"
    for key, ticket in shelved.items():  # what retention reads of it is the stored row's
        record = read_ticket(worker.store[key])
        assert (ticket.partition, ticket.newest) == (record.partition, record.newest)
        assert record.open is None


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), replayed=st.integers(1, 800))
def test_redelivered_records_of_shelved_tickets_change_nothing(seed: int, replayed: int) -> None:
    records = simulated(seed, rate=30, n=3000)
    proc, _, worker = shelving_run(records, 25)
    before = (dict(worker.store), dict(proc.tables.buckets), dict(proc.tables.meta))
    tail = records[-replayed:]
    worker.run(proc, random.Random(seed).sample(tail, len(tail)))  # in any order
    assert (worker.store, dict(proc.tables.buckets), dict(proc.tables.meta)) == before


def test_a_cache_lets_go_only_of_a_row_its_store_holds() -> None:
    store = {"a": b"1"}
    cache = TableCache()
    table = cache.table(store, reread=lambda _p, key: store.get(key), name="tickets")
    assert table.let_go("a", "stand-in") and table["a"] == "stand-in"
    assert table.stored(0, "a") == b"1"
    with cache.batch(0):
        table["b"] = b"2"  # changed, not flushed: its store does not hold it yet
        table["c"] = b"3"
        assert table.let_go("b", "b stand-in") and table.let_go("c", "c stand-in")
        assert (table["b"], table["c"]) == (b"2", b"3")  # kept until the batch is stored
        table["c"] = b"4"  # and "c" changes again
    with pytest.raises(CacheStateError, match="no row 'b'"):
        table.stored(0, "b")  # never flushed
    assert {k: v for c in cache.changes() for k, v in c.items} == {"b": b"2", "c": b"4"}
    store.update(b=b"2", c=b"4")  # the commit writes the store
    with cache.batch(0):  # the next batch begins: "b" is let go of
        assert table["b"] == "b stand-in"
        assert table["c"] == b"4", "a value changed since it was let go of is kept"
    assert cache.changes() == []  # letting go wrote nothing
    plain = TableCache().table({"a": b"1"})
    assert not plain.let_go("a", "stand-in")  # no way to read it back: kept


def test_a_shelved_ticket_is_never_written_and_reads_back_shelved() -> None:
    with pytest.raises(TypeError, match="store only"):
        encode_ticket(ShelvedTicket(0, 1.0))
    records = simulated(3, rate=30, n=3000)
    proc, _ = run(records, math.inf)
    for record in proc.tables.tickets.values():
        held = REREADABLE_DECODE["tickets"](encode_ticket(record))
        if record.open is None:
            assert held == ShelvedTicket(record.partition, record.newest)
        else:
            assert isinstance(held, TicketRecord) and held.open == record.open
