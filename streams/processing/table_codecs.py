"""How each table's rows become the bytes a store and its changelog hold, and back.

One place for the worker (``streams.runtime.worker``) and the tests to look up a
table's codec by name. Reading raises ``BadRowError`` for a row the code cannot use
(``streams.processing.stored_rows``); ``TableCache`` contains it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, NamedTuple

from streams.processing.held_tickets import encode_ticket, read_held_ticket, read_shelved_ticket
from streams.processing.stored_rows import (
    encode_row,
    read_bucket,
    read_customer,
    read_watermark,
)
from streams.processing.table_cache import CachedTable, TableCache


class TableCodec(NamedTuple):
    encode: Callable[[Any], bytes]
    decode: Callable[[Any], Any]


CODECS: dict[str, TableCodec] = {
    "tickets": TableCodec(encode_ticket, read_held_ticket),
    "buckets": TableCodec(encode_row, read_bucket),
    "meta": TableCodec(encode_row, read_watermark),
    "customers": TableCodec(encode_row, read_customer),
    "cbuckets": TableCodec(encode_row, read_bucket),
    "cmeta": TableCodec(encode_row, read_watermark),
}

# How a cache that reads rows back from its store (``CachedTable.reread``: the worker's)
# decodes a table's rows, where it differs: a closed ticket is left to the store.
REREADABLE_DECODE: dict[str, Callable[[Any], Any]] = {"tickets": read_shelved_ticket}

# Tables whose rows the worker's cache holds encoded, decoding each on every read
# (``PackedTable``): their rows are read about once per change (a customer once per
# contact, a bucket once per batch), and take a fifth of their decoded memory so
# (docs/architecture.md, "Customer and bucket rows are held packed").
PACKED = frozenset({"customers", "buckets", "cbuckets"})


def worker_copy(
    cache: TableCache,
    name: str,
    backing: MutableMapping[str, Any],
    rows: Callable[[], Iterable[tuple[str, Any]]] | None,
    reread: Callable[[int, str], Any],
) -> CachedTable:
    """Table ``name``'s copy as the worker holds it: its codec, rows read back from the
    store (``reread``) decoded as such, held packed when in ``PACKED``. The worker passes
    its Faust table; the bench's table-copies row a dict."""
    codec = CODECS[name]
    decode = REREADABLE_DECODE.get(name, codec.decode)
    return cache.table(backing, codec.encode, decode, name, rows, reread, name in PACKED)
