"""The worker's write-back table cache: reads from memory, each changed key written once
per flush under its own partition, deletes passed on, nothing lost or written twice."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from streams.processing.table_cache import DELETE, CacheStateError, TableCache, write_changes


class Backing(dict):
    """A table that records every write and the partition it was routed to."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.partition: int | None = None
        self.writes: list[tuple[int | None, str, object]] = []

    def __setitem__(self, key, value) -> None:
        self.writes.append((self.partition, key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self.writes.append((self.partition, key, None))
        super().__delitem__(key)


def routed(*tables: Backing):
    @contextmanager
    def under(partition: int):
        for t in tables:
            t.partition = partition
        yield
        for t in tables:
            t.partition = None

    return under


def test_reads_come_from_the_backing_table_once_then_from_memory() -> None:
    backing = Backing({"a": 1})
    cache = TableCache()
    table = cache.table(backing)
    assert table["a"] == 1
    backing["a"] = 99  # the worker is the only writer: the copy is what counts
    assert table.get("a") == 1
    assert "a" in table and len(table) == 1
    assert dict(table.items()) == {"a": 1}


def test_each_changed_key_is_written_once_per_flush_under_its_partition() -> None:
    backing = Backing({"gone": 0})
    backing.writes.clear()
    cache = TableCache()
    table = cache.table(backing)
    cache.partition = 3
    for i in range(10):
        table["bucket"] = i  # many changes to one key in a batch
    del table["gone"]
    cache.partition = 5
    table["other"] = "x"
    assert backing.writes == []  # nothing reaches the table before the flush
    written = cache.flush(routed(backing))
    assert written == 3
    assert sorted(backing.writes, key=str) == sorted(
        [(3, "bucket", 9), (3, "gone", None), (5, "other", "x")], key=str
    )
    assert backing == {"bucket": 9, "other": "x"}
    backing.writes.clear()
    assert cache.flush(routed(backing)) == 0  # a second flush has nothing to write
    assert backing.writes == []


def test_a_key_set_then_deleted_in_one_batch_is_deleted_once_or_not_at_all() -> None:
    backing = Backing()
    cache = TableCache()
    table = cache.table(backing)
    with cache.batch(0):
        table["k"] = 1
        assert table.pop("k") == 1
        assert table.pop("k", None) is None
        with pytest.raises(KeyError):
            table.pop("k")
    cache.flush(routed(backing))
    assert backing == {}
    assert backing.writes == []  # never stored, so no tombstone either


def test_codec_applies_at_the_boundary_only() -> None:
    backing = Backing({"t": [1, 2]})
    cache = TableCache()
    table = cache.table(backing, encode=list, decode=tuple)
    assert table["t"] == (1, 2)
    with cache.batch(0):
        table["t"] = (*table["t"], 3)
    cache.flush(routed(backing))
    assert backing["t"] == [1, 2, 3]


def test_reset_drops_the_copy_and_refuses_to_lose_writes() -> None:
    backing = Backing({"a": 1})
    cache = TableCache()
    table = cache.table(backing)
    assert table["a"] == 1
    backing["a"] = 2  # e.g. recovered from the changelog after a rebalance
    cache.reset()
    assert table["a"] == 2
    with cache.batch(0):
        table["a"] = 3
    with pytest.raises(CacheStateError):
        cache.reset()
    cache.flush(routed(backing))
    cache.reset()
    assert table["a"] == 3


def test_a_failed_batch_leaves_nothing_half_applied() -> None:
    backing = Backing({"a": 1})
    cache = TableCache()
    table = cache.table(backing)
    with pytest.raises(ZeroDivisionError), cache.batch():
        table["a"] = 2
        table["b"] = 1 / 0
    assert table["a"] == 1  # re-read from the table: the batch will come again
    assert cache.flush(routed(backing)) == 0
    assert backing.writes == []


def test_a_write_outside_a_batch_belongs_to_no_partition_and_fails() -> None:
    """The partition is the open batch's (issue 12): a missed assignment can no longer send
    writes silently to the wrong partition."""
    cache = TableCache()
    table = cache.table(Backing(), name="buckets")
    with pytest.raises(CacheStateError, match="buckets"):
        table["k"] = 1
    with cache.batch(7):
        table["k"] = 1
    assert [(c.table, c.partition, c.items) for c in cache.changes()] == [
        ("buckets", 7, [("k", 1)])
    ]


def test_a_reset_while_a_batch_is_in_flight_waits_for_its_end() -> None:
    """Dropped mid-batch, the copy could be read back (by a scrape) from a store that does
    not hold the batch yet, and later batches would build on that stale copy."""
    backing = Backing({"a": 1})
    cache = TableCache()
    table = cache.table(backing)
    with cache.in_flight():
        with cache.batch(0):
            table["a"] = 2
        changes = cache.changes()
        cache.reset()  # a rebalance hook, while the batch's writes are on their way
        assert table["a"] == 2, "the copy must survive until the batch is done"
        backing["a"] = changes[0].items[0][1]  # step 3: the store gets the batch
    backing["a"] = 3  # e.g. recovered anew
    assert table["a"] == 3, "the deferred reset happens at the batch's end"


def _customer_rows(n: int) -> dict[str, bytes]:
    from streams.processing.stored_rows import CustomerRow, encode_row

    contact = (3, 100.0, "billing", "chat", 160.0, "a1", "t-1", (5.0,), None)
    return {
        f"c{i}": encode_row(CustomerRow(i % 2, i, {f"t{i}": ((i, contact),)})) for i in range(n)
    }


def test_a_packed_table_holds_the_stored_bytes_and_decodes_on_every_read() -> None:
    from streams.processing.stored_rows import CustomerRow, encode_row, read_customer

    stored = _customer_rows(3)
    cache = TableCache()
    table = cache.table(Backing(stored), encode_row, read_customer, "customers", packed=True)
    assert table.data == stored  # held as the store holds it, not decoded
    assert table["c1"] == read_customer(stored["c1"]) == table.get("c1")
    assert dict(table.items()) == {k: read_customer(v) for k, v in stored.items()}
    assert list(table.values()) == [read_customer(v) for v in stored.values()]
    changed = CustomerRow(1, 9, {"t9": ((9, (3, 1.0, "q", "chat", None, "", "t", (), None)),)})
    cache.partition = 1
    table["c1"] = changed
    assert table.data["c1"] == encode_row(changed) and table["c1"] == changed
    (changes,) = cache.changes()
    assert changes.items == [("c1", encode_row(changed))]  # already encoded: written as held
    assert not table.can_let_go and not table.let_go("c0", object())


def test_a_packed_row_that_does_not_decode_is_left_out_and_counted_never_fatal() -> None:
    from streams.processing.stored_rows import encode_row, read_customer

    stored = _customer_rows(2)
    cache = TableCache()
    table = cache.table(Backing(stored), encode_row, read_customer, "customers", packed=True)
    table.data["c0"] = b'[0, 1, {"t": [[1, [3, null]]]}]'  # what JSON makes of a non-finite sum
    assert table.get("c0", "absent") == "absent"
    assert "c0" not in table and cache.bad_rows.counts == {"customers": 1}
    table.data["c0"] = b"[]"
    assert dict(table.items()).keys() == {"c1"}
    with pytest.raises(KeyError):
        table["c0"]
    assert cache.bad_rows.counts == {"customers": 2}


def test_a_batchs_changes_written_to_a_plain_store() -> None:
    """Values are set, DELETE removes the key (a key already gone is no error), and the
    keys that went are counted."""
    store = {"a": b"1", "b": b"2"}
    gone = write_changes(store, [("a", DELETE), ("c", b"3"), ("b", b"4"), ("x", DELETE)])
    assert store == {"b": b"4", "c": b"3"}
    assert gone == 2


def test_an_unreadable_customer_row_is_logged_by_a_hash_of_its_customer_id(caplog) -> None:
    """The first unreadable row of a table is logged with its key; a customers row's key is
    the customer_id (an e-mail address, often), which no log should hold."""
    import hashlib
    import logging

    from streams.processing.table_cache import BadRows

    with caplog.at_level(logging.ERROR):
        BadRows().record("customers", "alice@example.com", ValueError("null sum"))
        BadRows().record("tickets", "T-1", ValueError("null sum"))
    digest = hashlib.sha256(b"alice@example.com").hexdigest()[:16]
    assert "alice@example.com" not in caplog.text and f"sha256:{digest}" in caplog.text
    assert "'T-1'" in caplog.text
