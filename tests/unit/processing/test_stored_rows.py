"""Stored rows are checked as they are read back: an unusable row is left out, counted and
logged once, and the worker goes on (issue 11: one bucket holding ``null`` where a sum
belonged crash-looped a worker and made every scrape answer 500)."""

from __future__ import annotations

import logging
import math

import pytest

from streams.ingest.schema import Accepted, classify
from streams.processing.bucket_store import bucket_contents
from streams.processing.kpi import KpiProcessor, Tables, encode_ticket
from streams.processing.local import LocalPipeline
from streams.processing.settings import KpiSettings
from streams.processing.stored_rows import (
    BadRowError,
    check_bucket,
    check_customer,
    check_meta,
    read_ticket,
)
from streams.processing.table_cache import TableCache

GOOD_BUCKET = {"o": 3, "v": {"handled": [12.5, 2], "first_response#20": [4.0, 1]}}


def _event(n: int, kind: str, at: str, **extra: object):
    fields = "".join(f',"{k}":{v}' for k, v in extra.items())
    raw = (
        f'{{"event_id":"e{n}","type":"{kind}","ticket_id":"T","occurred_at":"{at}",'
        f'"queue":"q","channel":"chat"{fields}}}'
    ).encode()
    outcome = classify(b"T", raw, now=2e9, future_tolerance_s=300)
    assert isinstance(outcome, Accepted), outcome
    return outcome.event


@pytest.mark.parametrize(
    "row",
    [
        None,
        [],
        {"o": 1},
        {"o": 1, "v": {"handled": [None, 2]}},  # what json made of an infinite sum
        {"o": 1, "v": {"handled": [float("inf"), 2]}},
        {"o": 1, "v": {"handled": [float("nan"), 2]}},
        {"o": 1, "v": {"handled": [1.0, 2.5]}},
        {"o": 1, "v": {"handled": [1.0]}},
        {"o": "1", "v": {}},
        {"o": 1, "v": {}, "m": {"first_response": [1.0, None]}},
    ],
)
def test_a_bucket_with_a_missing_or_non_finite_number_is_refused(row: object) -> None:
    with pytest.raises(BadRowError):
        check_bucket(row)


def test_good_rows_pass_unchanged() -> None:
    assert check_bucket(GOOD_BUCKET) is GOOD_BUCKET
    meta = {"o": 9, "h": [[1, 60], [9, 120.0]]}
    assert check_meta(meta) is meta
    customer = {"p": 0, "o": 4, "t": {"T": [[4, [1, 10.0, "q", "c", None, None, None, [], None]]]}}
    assert check_customer(customer) is customer


@pytest.mark.parametrize(
    "row",
    [
        {"o": 9, "h": [[1, None]]},
        {"o": 9, "h": [[1]]},
        {"o": 9, "h": None},
    ],
)
def test_a_watermark_row_without_numbers_is_refused(row: object) -> None:
    with pytest.raises(BadRowError):
        check_meta(row)


def test_a_ticket_row_with_a_null_time_is_refused() -> None:
    pipeline = LocalPipeline()
    pipeline.process(0, _event(1, "opened", "2026-01-05T08:00:00Z"))
    stored = encode_ticket(pipeline.tickets.tables.tickets["T"])
    assert read_ticket(stored).ticket.events  # the row as written reads back
    stored["e"][0][3] = None  # occurred_at
    with pytest.raises(BadRowError):
        read_ticket(stored)
    with pytest.raises(BadRowError):
        read_ticket({"p": 0})


def test_the_cache_leaves_out_unreadable_rows_counts_them_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backing = {
        "0|60|q|chat": GOOD_BUCKET,
        "0|120|q|chat": {"o": 5, "v": {"handled": [None, 2]}},
        "0|180|q|chat": {"o": 6, "v": {"handled": [None, 1]}},
        "0|240|q|chat": None,
    }
    cache = TableCache()
    table = cache.table(backing, decode=check_bucket, name="buckets")
    with caplog.at_level(logging.ERROR):
        assert dict(table.items()) == {"0|60|q|chat": GOOD_BUCKET}
    assert cache.bad_rows.counts == {"buckets": 3}
    assert len([r for r in caplog.records if "buckets" in r.getMessage()]) == 1


def test_processing_and_reading_go_on_over_a_poisoned_bucket() -> None:
    """The issue's sequence: a bucket whose sum is null, then a new event in that bucket."""
    settings = KpiSettings()
    cache = TableCache()
    start = 1_767_600_000  # 2026-01-05T08:00:00Z
    poisoned = {f"0|{start}|q|chat": {"o": 1, "v": {"handled": [None, 2]}}}
    tables = Tables(
        tickets=cache.table({}, encode_ticket, read_ticket, "tickets"),
        buckets=cache.table(poisoned, decode=check_bucket, name="buckets"),
        meta=cache.table({}, decode=check_meta, name="meta"),
    )
    processor = KpiProcessor(tables, settings)
    with cache.batch(0):
        processor.process(0, 10, _event(1, "opened", "2026-01-05T08:00:10Z"))
        processor.process(0, 11, _event(2, "resolved", "2026-01-05T08:00:30Z", handle_seconds=5))
    rows = bucket_contents(tables.buckets, {0})[0][0]
    assert all(math.isfinite(r[4]) for r in rows)
    assert [r[4:] for r in rows if r[1] == "handled"] == [(5.0, 1)]
    assert cache.bad_rows.counts == {"buckets": 1}
