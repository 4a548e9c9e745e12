"""Stored rows are typed and checked as they are read back: an unusable row is left out,
counted and logged once, and the worker goes on (issue 11: one bucket holding ``null``
where a sum belonged crash-looped a worker and made every scrape answer 500)."""

from __future__ import annotations

import logging
import math

import orjson
import pytest

from streams.core.buckets import Entry
from streams.ingest.schema import Accepted, classify
from streams.processing.bucket_store import bucket_contents
from streams.processing.held_tickets import read_ticket
from streams.processing.kpi import KpiProcessor, Tables
from streams.processing.local import LocalPipeline
from streams.processing.settings import KpiSettings
from streams.processing.stored_rows import (
    BadRowError,
    BucketRow,
    CustomerRow,
    WatermarkRow,
    encode_row,
    read_bucket,
    read_customer,
    read_watermark,
)
from streams.processing.table_cache import TableCache
from streams.processing.table_codecs import CODECS

HANDLED = ["handled", "", "", ""]
GOOD_BUCKET = BucketRow(
    3, ((Entry("handled"), 12.5, 2), (Entry("first_response", le="20"), 4.0, 1)), {}
)


def _event(n: int, kind: str, at: str, **extra: object):
    fields = "".join(f',"{k}":{v}' for k, v in extra.items())
    raw = (
        f'{{"event_id":"e{n}","type":"{kind}","ticket_id":"T","occurred_at":"{at}",'
        f'"queue":"q","channel":"chat"{fields}}}'
    ).encode()
    outcome = classify(b"T", raw, now=2e9, future_tolerance_s=300)
    assert isinstance(outcome, Accepted), outcome
    return outcome.event


def _bucket_with_sum(total: str) -> bytes:
    """A stored bucket whose one sum is ``total`` as written in the JSON."""
    return b'[1,[[["handled","","",""],' + total.encode() + b",2]],{}]"


@pytest.mark.parametrize(
    "row",
    [
        b"null",
        b"[]",
        b'{"o": 1}',
        _bucket_with_sum("null"),  # what json made of an infinite sum
        _bucket_with_sum("1e400"),  # a number no float holds
        _bucket_with_sum('"1"'),
        orjson.dumps([1, [[HANDLED, 1.0, 2.5]], {}]),  # a fractional count
        orjson.dumps([1, [[HANDLED, 1.0]], {}]),
        orjson.dumps(["1", [], {}]),
        orjson.dumps([True, [], {}]),
        orjson.dumps([1, [], {"first_response": [1.0, None]}]),
        b"[1, [",
    ],
)
def test_a_bucket_with_a_missing_or_non_finite_number_is_refused(row: bytes) -> None:
    with pytest.raises(BadRowError):
        read_bucket(row)


def test_good_rows_read_back_as_written() -> None:
    assert read_bucket(encode_row(GOOD_BUCKET)) == GOOD_BUCKET
    meta = WatermarkRow(9, ((1, 60.0), (9, 120.0)))
    assert read_watermark(encode_row(meta)) == meta
    contact = (1, 10.0, "q", "c", None, "", "", (), None)
    customer = CustomerRow(0, 4, {"T": ((4, contact),)})
    assert read_customer(encode_row(customer)) == customer


@pytest.mark.parametrize(
    "row",
    [
        orjson.dumps([9, [[1, None]]]),
        orjson.dumps([9, [[1]]]),
        orjson.dumps([9, None]),
    ],
)
def test_a_watermark_row_without_numbers_is_refused(row: bytes) -> None:
    with pytest.raises(BadRowError):
        read_watermark(row)


def test_a_customer_row_without_tickets_or_versions_is_refused() -> None:
    for row in ([0, 4, {}], [0, 4, {"T": []}], [0, 4, {"T": [[4, [1, None]]]}]):
        with pytest.raises(BadRowError):
            read_customer(orjson.dumps(row))


def test_a_ticket_row_with_a_null_time_is_refused() -> None:
    pipeline = LocalPipeline()
    pipeline.process(0, _event(1, "opened", "2026-01-05T08:00:00Z"))
    stored = CODECS["tickets"].encode(pipeline.tickets.tables.tickets["T"])
    assert read_ticket(stored).ticket.events  # the row as written reads back
    row = orjson.loads(stored)
    row[2][0][0][3] = None  # occurred_at of the first event
    with pytest.raises(BadRowError):
        read_ticket(orjson.dumps(row))
    row[2][0][0][3] = "infinity"
    with pytest.raises(BadRowError):
        read_ticket(orjson.dumps(row).replace(b'"infinity"', b"1e400"))
    with pytest.raises(BadRowError):
        read_ticket(b'{"p": 0}')


def test_the_cache_leaves_out_unreadable_rows_counts_them_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backing = {
        "0|60|q|chat": encode_row(GOOD_BUCKET),
        "0|120|q|chat": _bucket_with_sum("null"),
        "0|180|q|chat": _bucket_with_sum("1e400"),
        "0|240|q|chat": None,
    }
    cache = TableCache()
    table = cache.table(backing, decode=read_bucket, name="buckets")
    with caplog.at_level(logging.ERROR):
        assert dict(table.items()) == {"0|60|q|chat": GOOD_BUCKET}
    assert cache.bad_rows.counts == {"buckets": 3}
    assert len([r for r in caplog.records if "buckets" in r.getMessage()]) == 1


def test_processing_and_reading_go_on_over_a_poisoned_bucket() -> None:
    """The issue's sequence: a bucket whose sum is null, then a new event in that bucket."""
    settings = KpiSettings()
    cache = TableCache()
    start = 1_767_600_000  # 2026-01-05T08:00:00Z
    poisoned = {f"0|{start}|q|chat": _bucket_with_sum("null")}
    tables = Tables(
        **{
            name: cache.table(store, *CODECS[name], name)
            for name, store in (("tickets", {}), ("buckets", poisoned), ("meta", {}))
        }
    )
    processor = KpiProcessor(tables, settings)
    with cache.batch(0):
        processor.process(0, 10, _event(1, "opened", "2026-01-05T08:00:10Z"))
        processor.process(0, 11, _event(2, "resolved", "2026-01-05T08:00:30Z", handle_seconds=5))
    rows = bucket_contents(tables.buckets, {0})[0][0]
    assert all(math.isfinite(r[4]) for r in rows)
    assert [r[4:] for r in rows if r[1] == Entry("handled")] == [(5.0, 1)]
    assert cache.bad_rows.counts == {"buckets": 1}
