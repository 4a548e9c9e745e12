"""`make bench` writes the range of each measure over its runs, not the best run."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import pytest

from streams.tools import bench_now
from streams.tools.bench import (
    BenchRun,
    MemoryTrace,
    StartMemory,
    fit_batch_cost,
    ranges,
    render,
    run_measures,
    scrape_figures,
    target_budgets,
)
from streams.tools.bench_live import cpu_seconds

ROWS = ("core", "calendar", "tables", "aiokafka", "faust", "bundled", "quix", "product")


def a_run(product_rate: float, recovery_s: float) -> BenchRun:
    rates = dict(
        zip(
            ROWS,
            (10_000, 9_000, 8_000, 100_000, 4_000, 30_000, 7_000, product_rate),
            strict=True,
        )
    )
    results = [(name, int(rate * 10), 10.0) for name, rate in rates.items()]
    product = {
        "rss_kib": 300 * 1024, "ready_rss_kib": 100 * 1024, "before_first_rss_kib": 110 * 1024,
        "scrape_s": 0.1, "series": 10_000,
        "scrape_max_s": 0.25, "scrapes": 5,
        "calm_rate": product_rate * 0.95, "storm_rate": product_rate * 0.9,
        "fresh_p50": 0.08, "fresh_p99": 0.15, "fresh_busy": 0.85,
        "fresh_done_p50": 0.11, "fresh_done_p99": 0.19,
        "fresh_batch_records": 150.0, "fresh_writes_per_record": 0.95,
        "recovery_s": recovery_s, "store_kib": 50 * 1024, "table_writes": 90_000,
        "contacts": 40_000, "batches": 120, "open_tickets": 3_000, "storm_answers": 900,
        "storm_seconds": 30.0, "fresh_rate": 3_500.0, "fresh_records": 70_000,
        "half_tickets": 10_000, "half_rss_kib": 250 * 1024, "end_tickets": 20_000,
        "added_bytes_per_ticket": 5_243.0, "memory_samples": 12,
        "shelved": 12_000, "read_back": 1_500,
        "backlog_open": 100_000, "backlog_held": 500_000, "backlog_series": 400,
        "backlog_first_s": 0.3, "backlog_pass_s": 0.7, "backlog_index_s": 0.05,
        "backlog_quiet_s": 0.001,
        "cpu_us": 60.0,
        "fresh_cpu_us": 80.0, "fresh_batches_per_record": 1 / 100,
        "light_cpu_us": 180.0, "light_batches_per_record": 1 / 20, "light_rate": 1_250.0,
        "light_busy": 0.45, "light_p50": 0.04, "light_p99": 0.09,
    }  # fmt: skip
    return BenchRun(results, 5_000.0, product, 20_000, 200_000)


def test_each_measure_shows_its_lowest_and_highest_run() -> None:
    runs = [a_run(4_000, 40.0), a_run(6_000, 20.0), a_run(5_000, 30.0)]
    text = ranges(runs)
    assert "## Over 3 runs" in text
    assert "| product, records/s | 4,000 | 6,000 |" in text
    assert "| product / Faust decode + ack row (target 3x) | 1.00 | 1.50 |" in text
    assert "| recovery into an empty data dir, s (target 30) | 20 | 40 |" in text
    storm = "| records/s under the scrape storm / unloaded (target 0.8) | 0.95 | 0.95 |"
    assert storm in text  # against the unloaded runs paired with the stormed ones
    assert (
        run_measures(runs[0])["bytes of RSS per ticket held (target 2,048)"]
        == 200 * 1024**2 / 20_000
    )


def test_the_document_shows_rocksdbs_share_of_the_memory() -> None:
    run = a_run(5_000, 30.0)
    text = render(*run, over=ranges([run]))
    assert "10,486 bytes per ticket held" in text  # 200 MiB above idle / 20,000 tickets
    assert "RocksDB's\n  share, by its own count: 50 MiB" in text
    assert "2,621 bytes per ticket" in text  # 50 MiB / 20,000
    assert "**5,243 bytes per ticket\n  added**" in text  # the fitted slope of the trace
    assert "Fitted over the 12 readings" in text
    assert "## Over 1 run" in text


def test_the_memory_per_ticket_added_is_the_least_squares_slope_of_every_reading() -> None:
    trace = MemoryTrace()
    for tickets, rss_kib in [(10_000, 300_000), (12_000, 301_000), (14_000, 306_000),
                             (16_000, 303_000), (18_000, 308_000)]:  # fmt: skip
        trace.add(tickets, rss_kib)
    # sum of dx*dy 3.6e7 over sum of dx**2 4e7: 0.9 KiB per ticket
    assert trace.slope_bytes() == 0.9 * 1024
    measures = trace.measures()
    assert (measures["half_tickets"], measures["half_rss_kib"]) == (10_000, 300_000)
    assert measures["memory_samples"] == 5


def test_a_trace_that_cannot_say_gives_zero_not_a_division_error() -> None:
    assert MemoryTrace().measures()["added_bytes_per_ticket"] == 0
    flat = MemoryTrace()
    flat.add(10_000, 300_000)
    flat.add(10_000, 310_000)
    assert flat.slope_bytes() == 0.0


def test_the_start_memory_is_the_first_answer_and_the_last_reading_before_a_record() -> None:
    readings = iter([93, 101, 108, 150, 170])
    start = StartMemory()
    for done in (0, 0, 0, 800, 9_000):  # the polls: records processed by each
        start.add(done, lambda: next(readings))
    assert (start.ready, start.before_first) == (93, 108)  # not 150, read after 800 records
    late = StartMemory()
    late.add(2_000, lambda: 150)  # the first poll found records done: all there is
    assert (late.ready, late.before_first) == (150, 150)


def test_the_scrape_figure_is_the_median_of_the_scrapes_with_the_slowest_shown() -> None:
    figures = scrape_figures([0.050, 0.031, 0.029, 0.090, 0.033])
    assert figures == {"scrape_s": 0.033, "scrape_max_s": 0.090, "scrapes": 5}
    text = render(*a_run(5_000, 30.0), over="")
    assert "took **100 ms**\n  (the median of 5, each rendering anew; the slowest 250 ms)" in text
    assert "| one scrape, median of 5, ms (target 50) | 100 | 100 |" in ranges([a_run(5_000, 30.0)])


def test_the_freshness_load_shows_the_cores_share_and_live_batches_beside_the_catch_ups() -> None:
    """The fixture's log: 200,000 records and 40,000 contacts in 120 batches (2,000 each),
    90,000 table writes (0.38 per record); live: 150 records a batch, 0.95 writes each."""
    run = a_run(5_000, 30.0)
    text = " ".join(render(*run, over="").split())
    assert "the worker's core was busy **85%** of the time" in text
    assert "held 150 records on average and wrote 0.95 table records per record" in text
    assert "against 2,000 and 0.38 caught up (above)" in text
    assert "| the worker's core busy under the freshness load, % | 85 | 85 |" in ranges([run])


def test_each_throughput_target_is_a_time_per_record_against_what_this_run_cost() -> None:
    """Core 25 µs, product 40 µs: the rest is 15 µs. 3x a 10,000/s row is 33.3 µs, leaving
    18.3 for the core; 0.5x a 200,000/s row is 10 µs, below the rest alone."""
    text = target_budgets(
        {"core": 40_000, "product": 25_000, "framework": 10_000, "bundled": 200_000, "peer": 25_000}
    )
    assert "took 25.0 µs a record" in text and "less the core's) 15.0 µs" in text
    assert "3x the Faust decode + ack row: 33.3 µs a record; it leaves 18.3 µs for the core" in text
    assert "0.5x the bundled row: 10.0 µs a record; less than the rest takes alone" in text
    assert "1x the Quix Streams peer: 40.0 µs a record; it leaves 25.0 µs for the core" in text


def test_what_a_record_costs_beyond_the_core_is_split_at_the_table_copies_row() -> None:
    """Core 100 µs, the apply steps on the table copies 125 µs, product 200 µs: 25 µs go to
    the apply steps as the worker runs them, 75 µs to Faust, aiokafka, acks and RocksDB."""
    text = " ".join(render(*a_run(5_000, 30.0), over="").split())
    assert "beyond our own Python (reading, writes, contacts, commits) is 100 microseconds" in text
    assert "Of those, 25.0 go to the apply steps as the worker runs them without Kafka" in text
    assert "and 75.0 to reading through Faust and aiokafka" in text


def test_the_split_beyond_the_core_has_its_range_over_the_runs() -> None:
    """Core 100 µs and the table-copies row 125 µs in each run; the product 250 then 200 µs."""
    text = ranges([a_run(4_000, 30.0), a_run(5_000, 30.0)])
    assert "| µs a record: the apply steps beyond the core row | 25 | 25 |" in text
    rest = "| µs a record: Faust, aiokafka, acks, RocksDB beyond the apply steps | 75 | 125 |"
    assert rest in text


def test_the_document_shows_the_now_gauges_with_a_backlog_both_ways() -> None:
    run = a_run(5_000, 30.0)
    text = render(*run, over=ranges([run]))
    assert "100,000 open tickets among 500,000 held" in text
    assert "**50 ms** (the median of 5)" in text
    assert "against\n  700 ms for the pass over every held ticket" in text
    assert "| Now gauges, 100,000 open tickets, by series, ms | 50 | 50 |" in text
    assert "1.0 ms when none was" in text
    assert "| the same, no ticket stored since the last scrape, ms | 1.00 | 1.00 |" in text


def test_the_backlog_measure_reads_the_index_and_the_pass_over_the_same_tickets() -> None:
    tickets = bench_now.backlog()
    assert len(tickets) == bench_now.HELD
    assert sum(t.open is not None for t in tickets.values()) == bench_now.OPEN


def test_the_busy_backlog_read_sorts_every_series_again(monkeypatch: Any) -> None:
    """The backlog's "stored since" read is of every series sorted anew, not of sorted times
    kept from the read before it (which the quiet read measures)."""
    import streams.processing.open_tickets as module

    sizes: list[int] = []
    sort = module._sorted
    monkeypatch.setattr(
        module, "_sorted", lambda tickets: sizes.append(len(tickets)) or sort(tickets)
    )
    tickets = dict(list(bench_now.backlog().items())[:5_000])
    index = module.OpenTickets(tickets)
    ends = dict.fromkeys(range(bench_now.PARTITIONS), bench_now.START + bench_now.SPAN)
    index.figures(ends, bench_now.backlog_policy())
    every = sorted(sizes)
    sizes.clear()
    index.figures(ends, bench_now.backlog_policy())
    assert sizes == []
    bench_now.restore_one_of_each_series(tickets, index)
    index.figures(ends, bench_now.backlog_policy())
    assert sorted(sizes) == every and len(every) > 100


def test_the_cpu_time_read_from_proc_is_the_processs_own() -> None:
    """``cpu_seconds`` reads utime and stime, fields 14 and 15 of /proc/<pid>/stat: it agrees
    with ``os.times`` for this process to within a clock tick or two."""
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    times = os.times()
    assert abs(cpu_seconds(os.getpid()) - (times.user + times.system)) < 0.05


def test_freshness_shows_on_metrics_against_the_target_and_the_batch_done_beside_it() -> None:
    run = a_run(5_000, 30.0)
    text = " ".join(render(*run, over="").split())
    assert "**p50 80 ms, p99 150 ms** over 70,000 records (target: p99 < 1 s)" in text
    assert "step 6; what this bullet measured until 2026-12-06, an upper bound): p50 110" in text
    assert "ms, p99 190 ms." in text
    table = ranges([run])
    assert "| freshness p99, ms (target 1,000) | 150 | 150 |" in table
    assert "| freshness p99 to the batch done (writes acknowledged), ms | 190 | 190 |" in table


def test_a_batchs_fixed_cost_is_fitted_through_the_two_live_loads() -> None:
    run = a_run(5_000, 30.0)
    # 80 = v + F / 100 and 180 = v + F / 20: F = 2,500 µs a batch, v = 55 µs a record
    assert fit_batch_cost(run.product) == pytest.approx((2_500.0, 55.0))
    text = render(*run, over=ranges([run]))
    assert "caught up\n  **60 µs**" in text
    assert "each batch **2.5 ms** of CPU whatever it holds" in text
    assert "100 input records per batch at 70% and 20 at 25%" in text
    # 25 of 80 µs at 70 %, 125 of 180 at 25 %
    assert "the\n  batches' part of a record's cost was 31% at 70% and\n  69% at 25%." in text
    assert "| CPU a batch costs whatever it holds, fitted, ms | 2.50 | 2.50 |" in text


def test_two_live_loads_with_the_same_batches_fit_nothing() -> None:
    product = dict(a_run(5_000, 30.0).product, light_batches_per_record=1 / 100)
    fixed, per_record = fit_batch_cost(product)
    assert math.isnan(fixed) and math.isnan(per_record)
