"""The scrape-time collector: promtool-clean names, only owned partitions exported."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry

from streams.core.events import TicketEvent
from streams.ingest.schema import Accepted, classify
from streams.metrics.exposition import TextRenderer, render_collectors
from streams.metrics.kpi_exporter import (
    BUSY,
    KpiCollector,
    LabelFolder,
    SelfChecks,
    self_check,
    warm_in_background,
    warm_log,
)
from streams.metrics.pipeline_exporter import PipelineCollector, build_registry
from streams.metrics.serving import PAUSE
from streams.processing import window_totals
from streams.processing.local import LocalPipeline
from streams.processing.settings import KpiSettings
from streams.runtime.quiet_logs import RepeatFilter
from streams.runtime.state import PipelineState
from streams.tools.simulator import SimParams, generate
from tests.unit.loaded import kpi_collector as _collector
from tests.unit.loaded import loaded_pipeline as _pipeline


def _event(kind: str, t: float) -> TicketEvent:
    return TicketEvent("e", kind, "T", t, "q", "chat")  # type: ignore[arg-type]


def _registry(state: PipelineState, active: set[int]):
    return build_registry([PipelineCollector(state, 4, lambda: (active, {9}))])


def test_counts_and_owned_partitions_only() -> None:
    state = PipelineState()
    state.record_accepted(0, _event("opened", 100.0), now=1.0)
    state.record_accepted(0, _event("replied", 90.0), now=2.0)  # older: watermark stays
    state.record_accepted(3, _event("opened", 50.0), now=3.0)
    state.record_rejected("schema", now=4.0)
    registry = _registry(state, active={0, 1})
    value = registry.get_sample_value
    assert value("ticketpulse_events_accepted_total", {"event_type": "opened"}) == 2
    assert value("ticketpulse_events_accepted_total", {"event_type": "survey"}) == 0
    assert value("ticketpulse_events_rejected_total", {"reason": "schema"}) == 1
    assert value("ticketpulse_event_time_watermark_timestamp_seconds", {"partition": "0"}) == 100
    assert value("ticketpulse_event_time_watermark_timestamp_seconds", {"partition": "3"}) is None
    assert value("ticketpulse_partitions_assigned", {"role": "active"}) == 2
    assert value("ticketpulse_partitions_assigned", {"role": "standby"}) == 1
    assert value("ticketpulse_last_processed_timestamp_seconds") == 4.0


def test_active_partitions_count_as_recovering_while_their_figures_are_withheld() -> None:
    """As while their tables are recovered (partial copies): a consumer that
    sums the active role to tell whether the figures cover the topic (the wallboard) must
    not count them; lag and watermarks go on, since they are read from the consumer."""
    state = PipelineState()
    state.record_accepted(0, _event("opened", 100.0), now=1.0)
    served: set[int] = set()
    collector = PipelineCollector(state, 4, lambda: ({0, 1}, {9}), served=lambda: served)
    value = build_registry([collector]).get_sample_value
    assert value("ticketpulse_partitions_assigned", {"role": "active"}) == 0
    assert value("ticketpulse_partitions_assigned", {"role": "recovering"}) == 2
    assert value("ticketpulse_partitions_assigned", {"role": "standby"}) == 1
    assert value("ticketpulse_event_time_watermark_timestamp_seconds", {"partition": "0"}) == 100
    assert value("ticketpulse_partition_active", {"partition": "0"}) is None
    served = {0, 1}
    assert value("ticketpulse_partitions_assigned", {"role": "active"}) == 2
    assert value("ticketpulse_partitions_assigned", {"role": "recovering"}) == 0


def test_each_served_partition_is_one_series_for_the_completeness_check() -> None:
    """Summed over the workers, a complete reading has every partition at exactly 1: a
    partition counted twice and another missing show as a 2 and an absence, where the count
    of active partitions would add up (docs/metrics.md, "Complete readings")."""
    served = {1, 3}
    collector = PipelineCollector(
        PipelineState(), 4, lambda: ({1, 2, 3}, set()), served=lambda: served
    )
    value = build_registry([collector]).get_sample_value
    assert [value("ticketpulse_partition_active", {"partition": str(p)}) for p in range(4)] == [
        None,
        1.0,
        None,
        1.0,
    ]


def test_a_partition_handed_over_exports_its_stored_watermark_until_a_later_record() -> None:
    """A worker handed a partition on a quiet topic has read none of its records: the
    watermark its table holds (bucketed) is exported at once, and the later of the two
    once records arrive; a partition not owned is never exported."""
    state = PipelineState()
    stored = {0: 60.0, 1: 120.0, 2: 300.0}
    registry = build_registry(
        [PipelineCollector(state, 4, lambda: ({0, 1, 3}, set()), stored_watermark=stored.get)]
    )

    def watermark(partition: int) -> float | None:
        name = "ticketpulse_event_time_watermark_timestamp_seconds"
        return registry.get_sample_value(name, {"partition": str(partition)})

    assert [watermark(p) for p in range(4)] == [60.0, 120.0, None, None]
    state.record_accepted(0, _event("opened", 75.0), now=1.0)  # later than the table's
    state.record_accepted(1, _event("opened", 110.0), now=1.0)  # a replay of older records
    assert [watermark(p) for p in range(4)] == [75.0, 120.0, None, None]


def test_lag_counts_from_the_committed_offset_until_this_worker_has_gone_past_it() -> None:
    """A worker just handed a partition resumes at the group's committed offset: its lag is
    known at once. One that gets a partition back is not measured from where it left it."""
    state = PipelineState()
    committed = {0: 60, 1: 20}
    pipeline = PipelineCollector(
        state, 4, lambda: ({0, 1, 2}, set()), lambda p: 100, committed=committed.get
    )
    registry = build_registry([pipeline])

    def lag(partition: int) -> float | None:
        name = "ticketpulse_consumer_lag_records"
        return registry.get_sample_value(name, {"partition": str(partition)})

    state.record_offset(0, 41)  # processed up to 41 before another worker took it on to 60
    state.record_offset(1, 29)  # 9 records past the last commit
    assert [lag(p) for p in range(3)] == [40, 70, None]  # partition 2: nothing known yet
    assert [pipeline.lag(p) for p in range(3)] == [40, 70, None]  # what /stats sums


def test_offsets_that_hold_no_record_past_the_last_one_processed_are_not_lag() -> None:
    """A transactional producer's last marker takes a partition's last offset: processed up
    to the record before it, the partition is not behind (its lag read 1 for as long as the
    producer was quiet). Records read and not processed yet still count."""
    state = PipelineState()
    markers = {0: (41, 43), 1: (29, 31)}
    pipeline = PipelineCollector(
        state, 4, lambda: ({0, 1}, set()), lambda p: 43 if p == 0 else 31,
        past_markers=markers.get,
    )  # fmt: skip
    state.record_offset(0, 41)  # processed up to 41; 42 is a marker
    state.record_offset(1, 20)  # 21-29 read, not processed yet; 30 is a marker
    assert [pipeline.lag(p) for p in (0, 1)] == [0, 9]


def test_an_assignment_keeps_what_is_known_of_the_partitions_kept_only() -> None:
    """Faust revokes every partition at each rebalance; the new assignment tells the kept
    ones apart. A partition moved away loses its watermark and next offset, so if it comes
    back its lag is not read from where this worker left it while recovery runs (no
    committed offset known yet); a kept one goes on exporting both."""
    state = PipelineState()
    for partition in (0, 1):
        state.record_accepted(partition, _event("opened", 75.0), now=1.0)
        state.record_offset(partition, 41)
    state.keep_partitions({1, 2})
    assert state.watermark == {1: 75.0} and state.next_offset == {1: 42}
    registry = build_registry(
        [PipelineCollector(state, 4, lambda: ({0, 1}, set()), highwater=lambda p: 100)]
    )
    lag = "ticketpulse_consumer_lag_records"
    assert registry.get_sample_value(lag, {"partition": "0"}) is None  # back, not yet known
    assert registry.get_sample_value(lag, {"partition": "1"}) == 58


def test_promtool_accepts_the_output(promtool: str) -> None:
    state = PipelineState()
    state.record_accepted(1, _event("opened", 100.0), now=1.0)
    text = generate_latest(_registry(state, {1})).decode()
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.split()[2].endswith("_timestamp_seconds"):
            assert line.split()[3] == "gauge"
        assert "_percent" not in line


def test_a_contacts_partition_moved_away_during_a_pause_is_left_out_of_repeats() -> None:
    """The repeat counts pause before each partition (a first read scans the customers);
    a partition that moved to another worker meanwhile is not read, as for the buckets."""
    pipeline = _pipeline(1500)

    def collector(owned_contacts) -> KpiCollector:
        return _collector(pipeline, owned_contacts=owned_contacts)

    kept = collector(lambda: {0})
    assert list(kept.families()).count(PAUSE) >= 3  # buckets, contact buckets, repeats
    assert 0 in kept.repeats.parts

    answers = iter([{0}, {0}])  # ends, then the contact buckets' check; then it is gone
    moved = collector(lambda: next(answers, set()))
    list(moved.families())
    assert 0 not in moved.repeats.parts  # never read, so never built


def _rendered(collector: KpiCollector) -> bytes:
    return render_collectors([collector], TextRenderer())


NONE_BUILT = {"tickets": [], "customers": [], "repeats": []}


def test_warming_builds_what_a_first_scrape_would_and_it_renders_the_same() -> None:
    """The worker builds each owned partition's totals in the background (``warm``), a
    pause before each: a scrape then reads them, and renders exactly what a scrape that
    builds them itself renders. A second warm-up finds nothing left to build. (The open
    tickets by series and the counters since start are the processor's, kept per label, which
    both collectors read: so they share one folder, as a worker's one collector has one.)"""
    pipeline = _pipeline(1500)
    fold = LabelFolder(None, 50, {})
    warmed, cold = _collector(pipeline, fold=fold), _collector(pipeline, fold=fold)
    assert not pipeline.tickets.open_now.mirroring
    # tickets, contact buckets, the open tickets, repeats
    assert list(warmed.warm()).count(PAUSE) == 4
    assert pipeline.tickets.open_now.mirroring
    assert warmed.built() == {"tickets": [0], "customers": [0], "repeats": [0]}
    assert cold.built() == NONE_BUILT
    assert list(warmed.warm()) == []
    # batches keep the built ones current: a new contact of a customer known already
    customer = next(iter(pipeline.customers.tables.customers))
    at = pipeline.tickets.clock.clock(0)
    opened = TicketEvent("e-new", "opened", "T-new", at, "q", "chat", customer_id=customer)
    assert pipeline.process(10_000, opened).contact is not None
    assert _rendered(warmed) == _rendered(cold)
    assert cold.built() == warmed.built()


def test_a_warm_up_during_a_renderings_pause_leaves_it_exact() -> None:
    """Warm-ups and renderings share the event loop and interleave at their pauses: a
    partition built while a rendering waits to read it is read once, not twice. (One folder,
    as above: the processor keeps its open tickets and counters per label.)"""
    pipeline = _pipeline(1500)
    fold = LabelFolder(None, 50, {})
    interleaved, cold = _collector(pipeline, fold=fold), _collector(pipeline, fold=fold)
    renderer = TextRenderer()
    families = interleaved.families()
    first = [next(families)]  # the pause before the first partition's read
    assert first == [PAUSE]
    list(interleaved.warm())
    assert interleaved.built() == {"tickets": [0], "customers": [0], "repeats": [0]}
    assert renderer.render([*first, *families]) == _rendered(cold)


def test_a_partition_with_no_clock_or_moved_away_during_a_pause_is_not_warmed() -> None:
    idle = _collector(LocalPipeline(KpiSettings()))  # no record yet: no clock, no window end
    assert list(idle.warm()) == []
    assert idle.built() == NONE_BUILT
    answers = iter([{0}])  # owned when listed, gone when its pause is over
    contact_answers = iter([{0}, set(), {0}])  # the same for the buckets, then the repeats
    moved = _collector(
        _pipeline(500),
        owned=lambda: next(answers, set()),
        owned_contacts=lambda: next(contact_answers, set()),
    )
    list(moved.warm())
    assert moved.built() == NONE_BUILT


def _fail_ticket_fills(monkeypatch, collector: KpiCollector):
    """Every fill of the ticket side's totals raises; returns the real one, to put back."""
    fill = collector.totals._fill

    def failing(partition, states):
        raise RuntimeError("a bucket could not be read")

    monkeypatch.setattr(collector.totals, "_fill", failing)
    return fill


def test_a_partition_whose_fill_failed_is_not_built_and_the_next_warm_up_tries_again(
    monkeypatch,
) -> None:
    pipeline = _pipeline(500)
    collector = _collector(pipeline)
    fill = _fail_ticket_fills(monkeypatch, collector)
    with pytest.raises(RuntimeError):
        list(collector.warm())
    assert collector.built() == {"tickets": [], "customers": [0], "repeats": [0]}
    monkeypatch.setattr(collector.totals, "_fill", fill)
    list(collector.warm())
    assert collector.built() == {"tickets": [0], "customers": [0], "repeats": [0]}
    assert _rendered(collector) == _rendered(_collector(pipeline))  # exact after the retry


def test_a_fill_that_fails_partway_leaves_nothing_behind_and_the_others_are_built(
    monkeypatch,
) -> None:
    """A partition whose buckets cannot all be read is left unbuilt, with nothing of the
    rows read before the failure kept; the other sides are built all the same."""
    pipeline = _pipeline(1500)
    collector = _collector(pipeline)
    fill_row, calls = window_totals._fill_row, []

    def failing_partway(*args):
        calls.append(args)
        if len(calls) > 5:
            raise RuntimeError("a bucket could not be read")
        return fill_row(*args)

    monkeypatch.setattr(window_totals, "_fill_row", failing_partway)
    with pytest.raises(RuntimeError):
        list(collector.warm())
    assert collector.built() == {"tickets": [], "customers": [], "repeats": [0]}
    monkeypatch.setattr(window_totals, "_fill_row", fill_row)
    list(collector.warm())
    assert _rendered(collector) == _rendered(_collector(pipeline))


def test_a_partition_a_scrape_built_during_a_warm_ups_pause_is_left_as_it_read_it() -> None:
    """The warm-up pauses before each partition; a scrape that builds it meanwhile, at a
    later clock, is not undone: the warm-up never slides a window back."""
    pipeline = _pipeline(1500)
    collector = _collector(pipeline)
    steps = collector.warm()
    assert next(steps) is PAUSE  # before the tickets' partition 0
    later = pipeline.tickets.clock.clock(0) + 3600
    pipeline.process(10_000, _event("opened", later))  # the clock moves on an hour
    scraped = collector.totals.read(0, pipeline.tickets.clock.clock(0))
    ends = {name: state.last for name, state in scraped.items()}
    list(steps)
    assert {name: s.last for name, s in collector.totals.parts[0].items()} == ends


async def test_the_background_warm_up_stops_at_its_first_pause_once_the_worker_is_busy() -> None:
    """The worker's timer gives up while a rebalance or a recovery runs (the end of
    recovery drops what a copy read meanwhile would build) and builds everything after."""
    collector = _collector(_pipeline(500))
    busy = iter([False, True])  # a rebalance begins while the first partition is built
    assert not await warm_in_background(collector, lambda: next(busy, True))
    assert collector.built() == {"tickets": [0], "customers": [], "repeats": []}
    assert await warm_in_background(collector, lambda: False)
    assert collector.built() == {"tickets": [0], "customers": [0], "repeats": [0]}


async def test_a_failing_background_warm_up_logs_once_and_never_raises(monkeypatch, caplog) -> None:
    """A raise in the worker's timer would stop the worker: a failure is logged instead,
    once while it repeats (``RepeatFilter``), and the next round builds what it could not."""
    pipeline = _pipeline(500)
    collector = _collector(pipeline)
    fill = _fail_ticket_fills(monkeypatch, collector)
    monkeypatch.setattr(warm_log, "filters", [RepeatFilter()])  # none seen before this test
    with caplog.at_level("ERROR", logger="streams.metrics.kpi_exporter.warm"):
        for _ in range(3):
            assert not await warm_in_background(collector, lambda: False)
    failures = [r for r in caplog.records if "window totals failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert collector.built() == {"tickets": [], "customers": [0], "repeats": [0]}
    monkeypatch.setattr(collector.totals, "_fill", fill)
    assert await warm_in_background(collector, lambda: False)
    assert _rendered(collector) == _rendered(_collector(pipeline))


async def test_the_self_check_finds_the_live_totals_equal_and_names_a_drift() -> None:
    """``/selfcheck`` compares the totals kept up to date with the same built afresh from the
    tables: equal on an honest worker, and a total that drifted (here one offered contact
    too many in one window) is named with both values. The check keeps nothing."""
    pipeline = _pipeline(1500)
    collector = _collector(pipeline)
    list(collector.warm())
    customer = next(iter(pipeline.customers.tables.customers))
    at = pipeline.tickets.clock.clock(0)
    opened = TicketEvent("e-new", "opened", "T-new", at, "q", "chat", customer_id=customer)
    pipeline.process(10_000, opened)  # kept up to date by the live totals

    def kept() -> list:  # what a check must leave as it was
        stores = (pipeline.tickets.store, pipeline.customers.store)
        labels = (dict(collector.fold.seen), dict(collector.fold_agent.seen))
        return [*(list(s.listeners) for s in stores), list(pipeline.customers.listeners), labels]

    before = kept()
    check = await self_check(collector)
    assert check["equal"] and check["window_samples"] > 100, check
    assert kept() == before  # the rebuilt copy does not listen, and labels no new queue
    sums = collector.totals.merged["1h"]
    key = next(k for k in sums if k[0].figure == "offered")
    sums[key][1] += 1  # a count that drifted from its buckets
    check = await self_check(collector)
    (live,), (rebuilt,) = check["live_only"], check["rebuilt_only"]
    assert not check["equal"] and "contacts_offered" in live and 'window="1h"' in live
    assert live.split()[0] == rebuilt.split()[0]
    assert float(live.split()[-1]) == float(rebuilt.split()[-1]) + 1


async def test_the_self_check_compares_the_now_gauges_with_a_pass_over_the_tickets() -> None:
    """The Now gauges come from the open tickets kept by series; the check reads them again by
    a pass over every held ticket, and names an open ticket the index lost."""
    pipeline = _pipeline(1500)
    collector = _collector(pipeline)
    list(collector.families())  # a first scrape: the index mirrors the table from here on
    at = pipeline.tickets.clock.clock(0)
    pipeline.process(10_000, TicketEvent("e-new", "opened", "T-new", at, "q", "chat"))
    labels = dict(collector.fold.seen)
    check = await self_check(collector)
    assert check["equal"] and check["now_samples"] > 10, check
    assert collector.fold.seen == labels  # queue names compared unfolded: none labelled
    new = pipeline.tickets.tables.tickets["T-new"]
    pipeline.tickets.open_now._drop(new.partition, "T-new", new.open)  # an index that lost it
    check = await self_check(collector)
    assert not check["equal"]
    live = {line.split()[0]: float(line.split()[-1]) for line in check["live_only"]}
    rebuilt = {line.split()[0]: float(line.split()[-1]) for line in check["rebuilt_only"]}
    series = 'ticketpulse_contacts_open{partition="0",queue="q",channel="chat"}'
    assert series in rebuilt and live.get(series, 0.0) == rebuilt[series] - 1


async def test_self_checks_are_spaced_and_none_runs_while_partitions_change_hands() -> None:
    """A check costs as much as a first scrape: callers get the last answer, with its age,
    until ``spacing_s`` has passed or the partitions changed hands; while they change hands
    the tables are partial, and the answer says so (503)."""
    pipeline = _pipeline(500)
    collector = _collector(pipeline)
    now = [100.0]
    checks = SelfChecks(spacing_s=10, clock=lambda: now[0])
    assert await checks.answer(collector, lambda: True, 1) == (503, BUSY)
    status, first = await checks.answer(collector, idle, 1)
    assert status == 200 and first["equal"] and first["age_seconds"] == 0
    collector.totals.merged["1h"][next(iter(collector.totals.merged["1h"]))][1] += 1  # drift
    now[0] = 105.0
    assert (await checks.answer(collector, idle, 1))[1] == {**first, "age_seconds": 5.0}
    assert not (await checks.answer(collector, idle, 2))[1]["equal"]  # a rebalance
    now[0] = 114.0
    assert (await checks.answer(collector, idle, 2))[1]["age_seconds"] == 9.0
    now[0] = 115.0
    assert (await checks.answer(collector, idle, 2))[1]["age_seconds"] == 0


def idle() -> bool:
    return False


async def test_a_self_check_frees_the_loop_between_partitions_and_holds_the_agents() -> None:
    """The rebuilt figures cost as much as a first scrape; built at one go they held the
    loop, probes and scrapes included. Now the loop runs others between partitions, but no
    batch is applied until the check has read everything (the agents wait)."""
    collector = _collector(_pipeline(1500))
    list(collector.warm())
    checks = SelfChecks()
    check = asyncio.ensure_future(checks.answer(collector, idle, 1))
    await asyncio.sleep(0)  # the check runs to its first pause
    assert not check.done(), "the loop is free while the check reads"
    agent = asyncio.ensure_future(checks.applies_allowed())
    await asyncio.sleep(0)
    assert not agent.done(), "no batch applied while the check reads"
    status, body = await check
    await asyncio.wait_for(agent, 1)
    assert status == 200 and body["equal"]


async def test_an_agent_woken_as_a_check_ends_waits_for_one_begun_meanwhile() -> None:
    """One check ends and another begins before a waiting agent resumes: it waits again."""
    checks = SelfChecks()
    checks._applies.clear()  # a check reads
    agent = asyncio.ensure_future(checks.applies_allowed())
    await asyncio.sleep(0)
    checks._applies.set()  # it ends ...
    checks._applies.clear()  # ... and another begins in the same turn of the loop
    for _ in range(3):
        await asyncio.sleep(0)
    assert not agent.done()
    checks._applies.set()
    await asyncio.wait_for(agent, 1)


async def test_a_self_check_the_partitions_changing_hands_interrupt_answers_busy() -> None:
    """Partitions that begin to change hands during a check leave partial tables: the
    answer is 503, no figure is compared, and the agents go on at once."""
    collector = _collector(_pipeline(1500))
    list(collector.warm())
    checks = SelfChecks()
    busy = iter([False, True])  # a rebalance begins at the check's first pause
    assert await checks.answer(collector, lambda: next(busy, True), 1) == (503, BUSY)
    await asyncio.wait_for(checks.applies_allowed(), 1)


def test_agents_folded_into_other_sum_to_the_same_value_whatever_the_order() -> None:
    """Agents past the cap share the label ``other``: their handle times are added as exact
    integers as they are written, so two workers (or a live and a rebuilt copy) that wrote
    the same facts in another order export the very same value, not one a last digit apart."""
    from streams.core.facts import Fact
    from streams.processing.bucket_store import BucketStore
    from streams.processing.window_totals import WindowTotals

    collector = _collector(LocalPipeline(KpiSettings()))
    seconds = [0.1, 0.2, 0.3]
    at = 1_767_222_000.0
    facts = [
        Fact(at + i, "agent_handled", "q", "chat", v, agent=f"A{i}") for i, v in enumerate(seconds)
    ]
    assert sum(seconds) != sum(reversed(seconds))  # floats would differ by the order
    rendered = []
    for order in (facts, facts[::-1]):
        store = BucketStore({}, 60, (30.0,), retention_s=3600)
        totals = WindowTotals(store, {"1h": 3600.0}, "UTC", str, LabelFolder(None, 0, {}))
        totals.read(0, at + 60)  # built: kept up to date as the facts are written
        for offset, fact in enumerate(order, start=1):
            store.write(0, offset, [], [fact], watermark=float("-inf"))
        sums = totals.read(0, at + 60)["1h"].sums
        rendered.append(TextRenderer().render(collector._agent_families({"1h": sums})))
    assert rendered[0] == rendered[1]
    assert b'agent="other",channel="chat",queue="q",window="1h"} 3.0' in rendered[0]


def test_the_documented_series_count_per_queue_channel_pair_is_the_exporters() -> None:
    """docs/metrics.md ("Cardinality") and README size Prometheus by it: said 487 for a
    while, one short (a target gauge and six count gauges miscounted)."""
    registry = CollectorRegistry()
    registry.register(_collector(_pipeline(30_000)))
    per_pair: dict[tuple[str, str], int] = {}
    for family in registry.collect():
        for sample in family.samples:
            if "queue" in sample.labels:
                pair = (sample.labels["queue"], sample.labels["channel"])
                per_pair[pair] = per_pair.get(pair, 0) + 1
    doc = (Path(__file__).resolve().parents[3] / "docs/metrics.md").read_text()
    said = re.search(r"each queue/channel pair exports up to (\d+) series", doc)
    assert said is not None
    assert max(per_pair.values()) == int(said.group(1))


def test_names_folded_into_other_are_counted_and_the_first_is_logged(caplog) -> None:
    """Past ``max_queues`` a worker folds names it meets; which ones depends on what it met
    first, so it says how many (exported) and logs the first fold once, naming the fix."""
    from streams.metrics import kpi_exporter

    folder = LabelFolder.of(None, 2)
    with caplog.at_level(logging.WARNING, logger="streams.metrics.kpi_exporter.fold"):
        labels = [folder(name) for name in ["a", "b", "c", "a", "d", "c"]]
    assert labels == ["a", "b", "other", "a", "other", "other"]
    assert (folder.rule, folder.named, folder.folded) == ("first_seen", 2, {"c", "d"})
    (warning,) = caplog.records
    assert "queue_allowlist" in warning.getMessage()
    listed = LabelFolder.of(["a", "z"], 50)
    assert [listed(n) for n in ["a", "b"]] == ["a", "other"]
    assert (listed.rule, listed.named, listed.folded) == ("allowlist", 1, {"b"})
    flood = LabelFolder.of(None, 0)
    for i in range(kpi_exporter.FOLDED_COUNTED + 5):
        flood(f"q{i}")
    assert len(flood.folded) == kpi_exporter.FOLDED_COUNTED  # bounded under a flood


def test_the_fold_counts_are_exported_per_label_and_rule() -> None:
    registry = CollectorRegistry()
    registry.register(_collector(_pipeline(3000), fold=LabelFolder.of(None, 1)))
    text = generate_latest(registry).decode()
    assert 'ticketpulse_label_values_named{label="queue",rule="first_seen"} 1.0' in text
    folded = re.search(
        r'ticketpulse_label_values_folded\{label="queue",rule="first_seen"\} (\d+)', text
    )
    assert folded is not None and int(folded.group(1)) >= 1


def _accepted(events: int, seed: int = 5) -> list[TicketEvent]:
    now = time.time()
    records = generate(SimParams(seed=seed, rate=8, max_events=events))
    outcomes = [classify(r.key, r.value, now=now, future_tolerance_s=300) for r in records]
    return [o.event for o in outcomes if isinstance(o, Accepted)]


def test_counters_since_start_are_kept_per_label_however_late_the_collector_comes() -> None:
    """A worker's collector comes before its first record, a copy built in a test may come
    after some: either way each label's counters since start are its queues' added up, so a
    scrape reads one counter per exported series however many queue names arrive."""
    events = _accepted(2000)
    plain = LocalPipeline(KpiSettings())
    for offset, event in enumerate(events):
        plain.process(offset, event)
    for before in (0, len(events) // 2):
        pipeline, fold = LocalPipeline(KpiSettings()), LabelFolder.of(None, 1)
        for offset, event in enumerate(events):
            if offset == before:
                _collector(pipeline, fold=fold)
            pipeline.process(offset, event)
        expected: dict[tuple, list[float]] = {}
        for (entry, queue, channel), (total, count) in plain.tickets.cumulative.items():
            acc = expected.setdefault((entry, fold.peek(queue), channel), [0.0, 0])
            acc[0] += total
            acc[1] += count
        got = pipeline.tickets.cumulative
        assert fold.named == 1 and len(fold.folded) >= 2
        assert {k: v[1] for k, v in got.items()} == {k: v[1] for k, v in expected.items()}
        assert {k: v[0] for k, v in got.items()} == pytest.approx(
            {k: v[0] for k, v in expected.items()}
        )


async def test_the_self_check_adds_up_the_now_gauges_of_the_queues_folded_into_a_label() -> None:
    """Past the cap the open tickets are kept per label; the check's pass over every held
    ticket adds up its queues' figures per label as exported, and labels no name itself."""
    pipeline = _pipeline(1500)
    collector = _collector(pipeline, fold=LabelFolder.of(None, 1))
    list(collector.families())  # a first scrape: the index mirrors the table from here on
    assert any(q == "other" for fs in collector.now_figures().values() for q, _ in fs)
    labels = dict(collector.fold.seen)
    check = await self_check(collector)
    assert check["equal"] and check["now_samples"] > 10, check
    assert collector.fold.seen == labels


def test_per_agent_twins_leave_the_counters_since_start_as_they_are() -> None:
    """The counters since start are per queue and channel: an agent's twin of a fact counts
    in the windows only, so with ``per_agent`` on they hold what they hold without it, and
    50,000 agents cost a scrape nothing there."""
    from streams.core.policy import Policy

    events = _accepted(2000)
    plain, twins = LocalPipeline(KpiSettings()), LocalPipeline(KpiSettings(Policy(per_agent=True)))
    for pipeline in (plain, twins):
        for offset, event in enumerate(events):
            pipeline.process(offset, event)
    rows = twins.tickets.tables.buckets.values()
    assert any(entry.agent for row in rows for entry, _, _ in row.sums)  # twins were written
    assert twins.tickets.cumulative == plain.tickets.cumulative
