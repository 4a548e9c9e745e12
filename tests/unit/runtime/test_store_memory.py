"""One RocksDB memory budget for the whole worker (streams.runtime.faust_internals
.SharedStoreMemory), on real RocksDB databases opened the way Faust's store opens them."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from streams.runtime.faust_internals import SharedStoreMemory

MIB = 1024 * 1024


@pytest.fixture
def tables(tmp_path: Path) -> list:
    app = faust.App("store-memory-test", broker="kafka://127.0.0.1:1", datadir=tmp_path)
    app.conf.store = "rocksdb://"
    return [app.Table(name, partitions=2, value_type=bytes) for name in ("a", "b", "c")]


def fill(db, rows: int, size: int = 1000) -> None:
    for i in range(rows):
        db[f"key-{i:07d}".encode()] = bytes([i % 251]) * size


def test_every_partition_of_every_table_opens_under_one_cache(tables) -> None:
    shared = SharedStoreMemory(8 * MIB, 1 * MIB)
    for table in tables:
        shared.adopt(table)
    dbs = [table.data._db_for_partition(p) for table in tables for p in (0, 1)]
    for db in dbs:
        fill(db, 3000)  # 3 MB each: several flushes of a 1 MB write buffer
        db.flush()
        assert sum(1 for _ in db.values()) == 3000  # reading fills the cache
    # 18 MB of blocks read through caches of 8 MB: one shared cache holds at most its budget,
    # where a cache per database (Faust's way) would hold every block read
    assert 0 < shared.cache.get_usage() <= 8 * MIB + MIB // 2
    options = [
        next(Path(t.data.partition_path(p)).glob("OPTIONS-*")) for t in tables for p in (0, 1)
    ]
    for path in options:
        text = path.read_text()
        assert "cache_index_and_filter_blocks=true" in text
        assert "write_buffer_size=1048576" in text


def test_held_counts_the_shared_cache_once_and_each_memtable(tables) -> None:
    shared = SharedStoreMemory(64 * MIB, 8 * MIB)
    for table in tables:
        shared.adopt(table)
    dbs = [table.data._db_for_partition(0) for table in tables]
    for db in dbs:
        fill(db, 500)
    held = shared.held(tables)
    memtables = sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in dbs)
    assert held["memtables"] == memtables > 500 * 1000 * 3
    # the memtables are charged to the cache: what is left of it is blocks, not counted twice
    assert held["block_cache"] == shared.cache.get_usage() - shared.manager.get_usage()
    assert sum(held.values()) <= 64 * MIB


def test_the_memory_store_is_left_as_it_is(tmp_path: Path) -> None:
    app = faust.App("store-memory-test", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("a", partitions=1)
    shared = SharedStoreMemory(16 * MIB, 1 * MIB)
    shared.adopt(table)
    assert shared.held([table]) == {"memtables": 0, "table_readers": 0, "block_cache": 0}
