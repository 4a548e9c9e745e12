"""A write-back cache in front of the worker's Faust tables: one write per key per batch.

Faust sends one changelog record for every table assignment and nothing coalesces
them (docs/architecture.md, faust.md §1), and every read decodes JSON from RocksDB.
The agents take records in batches, and most keys change many times per batch (a
bucket is touched by every record of its minute, a partition's watermark by every
record that moves it). So each table is read into a plain dict on first use after
a rebalance, the processors read and write the dict, and ``flush`` writes every key
a batch changed once, under an event of that key's partition, before the batch is
acked. A crash before the flush loses nothing: the batch was not acked, so it is
delivered again, and every key skips what it already holds (its stored offset).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    MutableMapping,
    ValuesView,
)
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_GONE = object()
DELETE = object()  # in ``changes``: the key was removed


@dataclass(frozen=True)
class TableChanges:
    """One table's changed keys on one partition: (key, encoded value or ``DELETE``)."""

    table: str
    partition: int
    items: list[tuple[str, Any]]


def write_changes(store: MutableMapping[str, Any], items: Iterable[tuple[str, Any]]) -> int:
    """A batch's changed keys into a plain store (``TableChanges.items``): each value, or
    the key gone for ``DELETE``. Returns how many keys went."""
    deleted = 0
    for key, value in items:
        if value is DELETE:
            store.pop(key, None)
            deleted += 1
        else:
            store[key] = value
    return deleted


def _same(value: Any) -> Any:
    return value


class CacheStateError(RuntimeError):
    """The cache was dropped or reloaded while it held writes that were never flushed."""


@dataclass
class BadRows:
    """Stored rows that could not be read back, per table: left out, counted, logged once."""

    counts: dict[str, int] = field(default_factory=dict)

    def record(self, table: str, key: str, error: Exception) -> None:
        if table not in self.counts:
            log.error(
                "table %s: stored row %s cannot be read (%s); it is left out and counted on "
                "ticketpulse_stored_rows_unreadable_total (further ones are not logged)",
                table,
                _loggable(table, key),
                error,
            )
        self.counts[table] = self.counts.get(table, 0) + 1


PERSONAL_KEYS = frozenset({"customers"})  # keyed by customer_id: never in a log


def _loggable(table: str, key: str) -> str:
    """The key as logged: a customer id only as its SHA-256 (``printf %s ID | sha256sum``
    finds it), any other key as it is."""
    if table in PERSONAL_KEYS:
        return f"sha256:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return repr(key)


@dataclass
class TableCache:
    """The caches of one agent's tables; writes belong to the partition of the open batch."""

    partition: int | None = None  # set by ``batch(partition)`` only: writes outside one fail
    tables: list[CachedTable] = field(default_factory=list)
    bad_rows: BadRows = field(default_factory=BadRows)
    _in_flight: bool = False
    _reset_pending: bool = False

    def table(
        self,
        backing: MutableMapping[str, Any],
        encode: Callable[[Any], Any] = _same,
        decode: Callable[[Any], Any] = _same,
        name: str = "",
        rows: Callable[[], Iterable[tuple[str, Any]]] | None = None,
        reread: Callable[[int, str], Any] | None = None,
        packed: bool = False,
    ) -> CachedTable:
        """``decode`` turns a stored value into what the processor holds (raising for a row
        it cannot use: the row is then left out and counted); ``encode`` back. ``rows``
        reads the stored rows (default ``backing.items()``); ``reread(partition, key)`` one
        stored row (as ``rows`` yields it), for the keys the cache lets go of. ``packed``:
        hold each row encoded and decode it on every read (``PackedTable``)."""
        name = name or f"table{len(self.tables)}"
        kind = PackedTable if packed else CachedTable
        cached = kind(backing, self, encode, decode, name, rows, reread)
        self.tables.append(cached)
        return cached

    def flush(self, under: Callable[[int], AbstractContextManager[Any]]) -> int:
        """Write the changed keys; ``under(p)`` makes partition ``p``'s writes go to ``p``."""
        return sum(t.flush(under) for t in self.tables)

    def changes(self) -> list[TableChanges]:
        """What ``flush`` would write, for a writer that writes it itself (the worker's
        commit sequence, ``streams.runtime.commit``), by table name."""
        return [
            TableChanges(t.name, partition, items)
            for t in self.tables
            for partition, items in t.changes().items()
        ]

    def reset(self) -> None:
        """Forget every table's copy (partitions changed hands; tables are recovered anew).

        While a batch is in flight (applied to the copies, not yet in the store) the reset
        waits for its end: dropping the copies then, a scrape could read them back from a
        store that lacks the batch, and every later batch would build on that stale copy
        (a hazard read from the code: a rebalance hook may run during a batch's awaits)."""
        if self._in_flight:
            self._reset_pending = True
            return
        for t in self.tables:
            t.reset()

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """A batch from its apply to its done (streams.runtime.commit): resets wait."""
        self._in_flight = True
        try:
            yield
        finally:
            self._in_flight = False
            if self._reset_pending:
                self._reset_pending = False
                self.reset()

    def discard(self) -> None:
        """Drop the copies and the writes not flushed yet: a batch failed half-way, and its
        records (never acked) will be processed again from what the tables hold."""
        for t in self.tables:
            t.discard()

    @contextmanager
    def batch(self, partition: int | None = None) -> Iterator[None]:
        """Writes inside belong to ``partition`` (a batch is one partition's records);
        discard on any error inside, so a failed batch leaves no half-applied copy."""
        outer, self.partition = self.partition, partition if partition is not None else 0
        for t in self.tables:  # the previous batch is in the store now
            t.settle()
        try:
            yield
        except BaseException:
            self.discard()
            raise
        finally:
            self.partition = outer


@dataclass(eq=False)
class CachedTable(MutableMapping[str, Any]):
    backing: MutableMapping[str, Any]
    owner: TableCache
    encode: Callable[[Any], Any] = _same
    decode: Callable[[Any], Any] = _same
    name: str = ""
    # (key, value or the exception decoding it raised) of every stored row; default: items()
    rows: Callable[[], Iterable[tuple[str, Any]]] | None = None
    # one stored row, (partition, key) -> value as ``rows`` yields it, or None when absent
    reread: Callable[[int, str], Any] | None = None
    _data: dict[str, Any] | None = None
    _dirty: dict[int, set[str]] = field(default_factory=dict)
    # key -> (value, stand-in): to let go of once the store holds the value (``let_go``)
    _letting_go: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    loads: int = 0  # copies read from the store so far: what mirrors of it compare

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._load()
        return self._data

    def _load(self) -> dict[str, Any]:
        """Every readable row, decoded; an unreadable one (a value the store could not
        decode, which ``rows`` yields as the exception, or one ``decode`` refuses) is left
        out and counted, never fatal."""
        decode = self.decode
        self.loads += 1
        data: dict[str, Any] = {}
        rows = self.rows() if self.rows is not None else list(self.backing.items())
        for key, value in rows:
            try:
                if isinstance(value, Exception):
                    raise value
                if value is None:
                    msg = "the stored value is null"
                    raise ValueError(msg)
                data[key] = self._held_form(value, decode(value))
            except Exception as exc:  # any row, any error: contained, not fatal
                self.owner.bad_rows.record(self.name, key, exc)
        return data

    def _held_form(self, stored: Any, row: Any) -> Any:
        """What the cache holds of a stored row ``decode`` made ``row`` of."""
        return row

    def _stored_form(self, held: Any) -> Any:
        """What the store is written of a held row."""
        return self.encode(held)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._mark(key)

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self._mark(key)

    def hold(self, key: str, value: Any) -> None:
        """Hold ``value`` for ``key`` in place of an equal one that encodes to the same
        stored bytes (a packed ticket, ``streams.processing.held_tickets``): not a write."""
        self.data[key] = value

    @property
    def can_let_go(self) -> bool:
        """Whether this table can read a row back from its store (``let_go``)."""
        return self.reread is not None

    def let_go(self, key: str, stand_in: Any) -> bool:
        """Hold ``stand_in`` (what the processor needs of the row without reading it) in
        place of ``key``'s value, which ``stored`` reads back from its store: False when the
        table has no ``reread``. Not a write. A key changed in this batch is let go of when
        the next batch begins (``settle``: its store holds it then) unless it changes again."""
        if not self.can_let_go:
            return False
        if self._changed(key):
            self._letting_go[key] = (self.data[key], stand_in)
        else:
            self.data[key] = stand_in
        return True

    def settle(self) -> None:
        """Let go of the keys ``let_go`` deferred, unchanged since: the batch that changed
        them is in the store (the next batch begins only once the last one is done)."""
        if not self._letting_go or self._data is None:
            self._letting_go.clear()
            return
        data = self._data
        for key, (value, stand_in) in self._letting_go.items():
            if data.get(key) is value and not self._changed(key):
                data[key] = stand_in
        self._letting_go.clear()

    def _changed(self, key: str) -> bool:
        return any(key in keys for keys in self._dirty.values())

    def stored(self, partition: int, key: str) -> Any:
        """The stored row of a key this cache let go of, as ``rows`` yields it."""
        value = self.reread(partition, key) if self.reread is not None else None
        if value is None:
            msg = f"table {self.name}: the store of partition {partition} has no row {key!r}"
            raise CacheStateError(msg)
        return value

    def pop(self, key: str, default: Any = _GONE) -> Any:
        if key in self.data:
            self._mark(key)
            return self.data.pop(key)
        if default is _GONE:
            raise KeyError(key)
        return default

    def keys(self) -> KeysView[str]:
        return self.data.keys()

    def values(self) -> ValuesView[Any]:
        return self.data.values()

    def items(self) -> ItemsView[str, Any]:
        return self.data.items()

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def _mark(self, key: str) -> None:
        partition = self.owner.partition
        if partition is None:
            msg = f"table {self.name}: a write outside a batch belongs to no partition"
            raise CacheStateError(msg)
        dirty = self._dirty.get(partition)
        if dirty is None:
            dirty = self._dirty[partition] = set()
        dirty.add(key)

    def flush(self, under: Callable[[int], AbstractContextManager[Any]]) -> int:
        written = 0
        for partition, items in self.changes().items():
            with under(partition):
                for key, value in items:
                    if value is DELETE:
                        del self.backing[key]
                    else:
                        self.backing[key] = value
                    written += 1
        return written

    def changes(self) -> dict[int, list[tuple[str, Any]]]:
        """The changed keys per partition, encoded, and forget them (see ``flush``)."""
        data = self.data
        out: dict[int, list[tuple[str, Any]]] = {}
        for partition, keys in self._dirty.items():
            items = []
            for key in keys:
                value = data.get(key, _GONE)
                if value is not _GONE:
                    items.append((key, self._stored_form(value)))
                elif key in self.backing:  # else set and deleted in one batch: never stored
                    items.append((key, DELETE))
            if items:
                out[partition] = items
        self._dirty.clear()
        return out

    def discard(self) -> None:
        self._dirty.clear()
        self._letting_go.clear()
        self._data = None

    def reset(self) -> None:
        if self._dirty:
            msg = "a table cache was reset with unflushed writes"
            raise CacheStateError(msg)
        self._letting_go.clear()
        self._data = None


class PackedTable(CachedTable):
    """A table that holds every row as ``encode`` makes it (the bytes its store holds) and
    decodes it on each read: a customer row takes ~170 bytes so, against ~1 KB decoded. For
    tables whose rows are read about once per change (customers, buckets). Never let go of
    (``let_go``): the packed row is already what the store would give back."""

    def _held_form(self, stored: Any, row: Any) -> Any:
        return stored if isinstance(stored, bytes) else self.encode(row)

    def _stored_form(self, held: Any) -> Any:
        return held  # encoded when written: the flush sends it as held

    def _unpack(self, key: str, value: Any, default: Any = None) -> Any:
        """A packed row, decoded; one that does not decode (a non-finite sum, which JSON
        holds as null) is left out and counted, as ``_load`` would leave it out."""
        try:
            return self.decode(value)
        except Exception as exc:  # contained, not fatal
            self.owner.bad_rows.record(self.name, key, exc)
            self.data.pop(key, None)
            return default

    def __getitem__(self, key: str) -> Any:
        row = self._unpack(key, self.data[key], _GONE)
        if row is _GONE:
            raise KeyError(key)
        return row

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key, _GONE)
        return default if value is _GONE else self._unpack(key, value, default)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, self.encode(value))

    def hold(self, key: str, value: Any) -> None:
        super().hold(key, self.encode(value))

    @property
    def can_let_go(self) -> bool:
        return False

    def pop(self, key: str, default: Any = _GONE) -> Any:
        if key in self.data:
            return self._unpack(key, super().pop(key))
        return super().pop(key, default)

    def values(self) -> ValuesView[Any]:
        return _PackedValues(self)

    def items(self) -> ItemsView[str, Any]:
        return _PackedItems(self)

    def unpacked(self) -> Iterator[tuple[str, Any]]:
        """Every row, decoded one at a time as the scan goes (a full scan after a
        rebalance): never every row decoded at once, which would take the memory packing
        saves. The scan sees the rows held when it began."""
        for key, value in list(self.data.items()):
            row = self._unpack(key, value, _GONE)
            if row is not _GONE:
                yield key, row


class _PackedItems(ItemsView[str, Any]):
    _mapping: PackedTable

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._mapping.unpacked()


class _PackedValues(ValuesView[Any]):
    _mapping: PackedTable

    def __iter__(self) -> Iterator[Any]:
        return (row for _, row in self._mapping.unpacked())
