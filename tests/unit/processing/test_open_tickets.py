"""The open-ticket index the Now gauges read equals a pass over the tickets table, however the
table changed: stores, closes, transfers, a copy read anew behind its back, a partition let go."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.events import TicketEvent
from streams.core.now import NowFigures, OpenTicket, now_figures
from streams.core.policy import Policy, QueueOverride
from streams.core.ticket import StoredTicket
from streams.ingest.schema import Accepted, classify
from streams.processing.held_tickets import ShelvedTicket, TicketRecord
from streams.processing.kpi import KpiProcessor, Tables, open_rows
from streams.processing.local import LocalPipeline
from streams.processing.open_tickets import OpenTickets
from streams.processing.settings import KpiSettings
from streams.tools.simulator import QUEUES as SIMULATED
from streams.tools.simulator import SimParams, generate
from tests.unit.core.test_now_sorted import OFFICE, POLICY, T0

EMPTY = StoredTicket((), 0)
KEYS = [f"T{i}" for i in range(12)]  # six for the plain steps, all for the folded
PARTITIONS = (0, 1, 2)


class Copy(dict[str, Any]):
    """A table copy as ``CachedTable`` holds one: ``loads`` moves when it is read anew."""

    loads = 0


summaries = st.one_of(
    st.none(),
    st.builds(
        OpenTicket,
        st.sampled_from(("billing", "sales")),  # few series: tickets meet in each
        st.just("chat"),
        st.integers(0, 5 * 86400).map(lambda s: T0 + s),
        st.booleans(),
    ),
)
# mostly stores and scrapes; now and then a row changed unseen (a copy read anew) or a
# partition let go of
# and a pass begun in slices (the worker's warm-up) advanced by one slice, and a closed
# ticket retired (retention tells no index: closed tickets are none of its business)
OPS = ["store"] * 4 + ["read"] * 3 + ["reload", "forget", "slice", "slice", "retire"]
steps = st.lists(
    st.tuples(st.sampled_from(OPS), st.sampled_from(KEYS[:6]), summaries), min_size=5, max_size=60
)


def held(key: str, summary: OpenTicket | None) -> Any:
    partition = KEYS.index(key) % len(PARTITIONS)  # a key's partition never changes
    if summary is None:
        return ShelvedTicket(partition, T0)
    return TicketRecord(partition, EMPTY, summary)


def scanned(table: Copy, ends: dict[int, float]) -> dict[int, dict[tuple[str, str], Any]]:
    """What a scrape read before the index: every held ticket of the owned partitions."""
    return {
        p: now_figures([v.open for v in table.values() if v.open and v.partition == p], now, POLICY)
        for p, now in ends.items()
    }


def replay(
    ops: list[tuple[str, str, OpenTicket | None]],
    index: OpenTickets,
    ends: dict[int, float],
    expected: Callable[[Copy], dict[int, dict[tuple[str, str], Any]]],
) -> None:
    """``ops`` on a table ``index`` mirrors; at each scrape its figures equal ``expected``."""
    table = index.tickets
    assert isinstance(table, Copy)
    passing: Iterator[None] | None = None
    for op, key, summary in ops:
        if op == "slice":
            passing = passing or index.mirror_in_slices(2)
            if next(passing, "done") == "done":
                passing = None
        elif op == "retire":
            if key in table and table[key].open is None:
                del table[key]
        elif op == "store":
            before, table[key] = table.get(key), held(key, summary)
            index.stored(key, before, table[key])
        elif op == "reload":
            table[key] = held(key, summary)
            table.loads += 1
        elif op == "forget":
            index.forget()
        else:  # a scrape meanwhile
            assert index.figures(ends, POLICY) == expected(table)
    assert index.figures(ends, POLICY) == expected(table)


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(0, 6 * 86400))
def test_the_index_equals_a_pass_over_the_table(
    ops: list[tuple[str, str, OpenTicket | None]], after: int
) -> None:
    ends = {0: T0 + after, 1: T0 + after / 2, 2: T0 + 6 * 86400}
    replay(ops, OpenTickets(Copy()), ends, lambda table: scanned(table, ends))


# queues with rules of their own (POLICY's overrides) and without, on two channels
FOLDED = ("billing", "night", "fast", "sales", "support")
folded_summaries = st.one_of(
    st.none(),
    st.builds(
        OpenTicket,
        st.sampled_from(FOLDED),
        st.sampled_from(("chat", "email")),
        st.integers(0, 5 * 86400).map(lambda s: T0 + s),
        st.booleans(),
    ),
)
folded_steps = st.lists(
    st.tuples(st.sampled_from(OPS), st.sampled_from(KEYS), folded_summaries),
    min_size=5,
    max_size=60,
)


def added_up(per_queue: dict[tuple[str, str], NowFigures], label: Callable[[str], str]) -> dict:
    """Each label's figures from its queues': counts summed, the oldest waits the longest."""
    out: dict[tuple[str, str], NowFigures] = {}
    for (queue, channel), fig in per_queue.items():
        total = out.setdefault((label(queue), channel), NowFigures())
        total.open += fig.open
        total.waiting += fig.waiting
        total.oldest_wait_s = max(total.oldest_wait_s, fig.oldest_wait_s)
        total.oldest_wait_target_s = max(total.oldest_wait_target_s, fig.oldest_wait_target_s)
        total.first_response_breaches += fig.first_response_breaches
        total.resolution_breaches += fig.resolution_breaches
    return out


@settings(max_examples=300, deadline=None)
@given(
    folded_steps,
    st.integers(0, 6 * 86400),
    st.fixed_dictionaries({q: st.sampled_from(("billing", "sales", "other")) for q in FOLDED}),
)
def test_series_kept_per_label_equal_their_queues_figures_added_up(
    ops: list[tuple[str, str, OpenTicket | None]], after: int, labels: dict[str, str]
) -> None:
    """Kept per exported label (queues past the cap or off the allow-list share ``other``),
    a label's figures equal its queues' added up, whatever rules each queue has: calendars,
    targets of their own, or the default ones."""
    index = OpenTickets(Copy())
    index.label_with(labels.__getitem__, POLICY.queues)
    ends = {0: T0 + after, 1: T0 + after / 2, 2: T0 + 6 * 86400}

    def expected(table: Copy) -> dict[int, dict[tuple[str, str], Any]]:
        return {p: added_up(fs, labels.__getitem__) for p, fs in scanned(table, ends).items()}

    replay(ops, index, ends, expected)


def test_a_label_sorts_its_queues_tickets_once_by_their_rules() -> None:
    """Queues that share their rules are one series: 'support' and 'sales' (default rules)
    folded into ``other`` are one, 'fast' (rules of its own) another, so a label of 100,000
    names costs a scrape one sort per rules, not one series per name."""
    index = OpenTickets(Copy())
    index.label_with(lambda q: "other", POLICY.queues)
    for i, queue in enumerate(["support", "sales", "fast", "support"]):
        record = TicketRecord(0, EMPTY, OpenTicket(queue, "chat", T0 + i, False))
        index.tickets[f"T{i}"] = record
        index.stored(f"T{i}", None, record)
    index.mirror()
    assert sorted(len(t) for t in index._series[0].values()) == [1, 3]
    figures = index.figures({0: T0 + 10}, POLICY)[0]
    assert list(figures) == [("other", "chat")] and figures["other", "chat"].open == 4
    assert figures["other", "chat"].first_response_breaches == 1  # 'fast': 0.5 s target


def test_a_scrape_sorts_only_the_series_changed_since_the_last(monkeypatch: Any) -> None:
    """A quiet series keeps its sorted times from one scrape to the next (row 11: 100,000
    tickets in ``other``), a series a ticket joined or left is sorted again; the figures
    of both equal a pass over the table (the properties above)."""
    import streams.processing.open_tickets as module

    sorted_sizes: list[int] = []
    sort = module._sorted

    def counting(tickets: dict[str, OpenTicket]) -> tuple[list[float], list[float]]:
        sorted_sizes.append(len(tickets))
        return sort(tickets)

    table = Copy()
    index = OpenTickets(table)
    for i, queue in enumerate(["sales", "sales", "support", "support", "support"]):
        table[f"T{i}"] = TicketRecord(0, EMPTY, OpenTicket(queue, "chat", T0 + i, False))
    monkeypatch.setattr(module, "_sorted", counting)
    ends = {0: T0 + 600}
    index.figures(ends, POLICY)
    assert sorted(sorted_sizes) == [2, 3]  # the first scrape sorts every series
    index.figures(ends, POLICY)
    assert sorted(sorted_sizes) == [2, 3]  # nothing changed: nothing sorted
    before, table["T0"] = table["T0"], ShelvedTicket(0, T0 + 60)  # a sales ticket closed
    index.stored("T0", before, table["T0"])
    assert index.figures(ends, POLICY) == {0: scanned(table, ends)[0]}
    assert sorted(sorted_sizes) == [1, 2, 3]  # 'sales' alone, now of one ticket
    table["T9"] = TicketRecord(0, EMPTY, OpenTicket("support", "chat", T0 - 9, False))
    index.stored("T9", None, table["T9"])
    assert index.figures(ends, POLICY) == {0: scanned(table, ends)[0]}
    assert sorted(sorted_sizes) == [1, 2, 3, 4]  # 'support', with the ticket that joined


def test_a_partition_not_asked_for_is_left_out_and_an_empty_series_goes() -> None:
    table = Copy()
    index = OpenTickets(table)
    index.figures({0: T0}, POLICY)  # mirrors the (empty) copy from here on
    for key, partition in (("a", 0), ("b", 1)):
        table[key] = TicketRecord(partition, EMPTY, OpenTicket("sales", "chat", T0, False))
        index.stored(key, None, table[key])
    assert set(index.figures({0: T0 + 60}, POLICY)[0]) == {("sales", "chat")}
    assert index.figures({1: T0}, POLICY)[1][("sales", "chat")].waiting == 1
    before, table["a"] = table["a"], ShelvedTicket(0, T0 + 60)  # resolved
    index.stored("a", before, table["a"])
    assert index.figures({0: T0 + 60}, POLICY) == {0: {}}


def test_a_processor_keeps_its_index_equal_to_the_table_from_its_first_scrape() -> None:
    """Scraped from the start, the index follows the processor record by record (the tickets
    it opens, answers, transfers, resolves, reopens; duplicates, late and out-of-order ones),
    on a business-hours calendar too; at every scrape it equals the pass over the table."""
    policy = Policy(
        queues={q.name: QueueOverride(calendar="office") for q in SIMULATED[::2]},
        calendars={"office": OFFICE},
    )
    pipeline = LocalPipeline(KpiSettings(policy=policy))
    proc = pipeline.tickets
    params = SimParams(seed=3, max_events=6000, duplicates=0.05, out_of_order=0.05, late=0.02)
    scrapes = 0
    for offset, record in enumerate(generate(params)):
        outcome = classify(record.key, record.value, now=2e9, future_tolerance_s=300)
        if isinstance(outcome, Accepted):
            with pipeline.batch():
                pipeline.process(offset, outcome.event)
        if offset % 250 == 0:
            now = outcome.event.occurred_at if isinstance(outcome, Accepted) else T0
            expected = {
                0: now_figures([t for _, t in open_rows(proc.tables.tickets, {0})], now, policy)
            }
            assert proc.open_now.figures({0: now}, policy) == expected
            scrapes += sum(f.open for f in expected[0].values()) > 0
    assert scrapes > 10  # tickets were open at most scrapes


def test_a_ticket_met_on_another_partition_moves_there_in_the_index() -> None:
    """Keys belong to one partition (docs/events.md), but a producer with another partitioner
    can send a ticket's events to two: the table holds it under the partition of its last
    event, and so does the index, though it stays open and waiting all along."""
    proc = KpiProcessor(Tables(), KpiSettings())
    opened = TicketEvent("e1", "opened", "T1", T0, "sales", "chat", customer_id="C1")
    nudge = TicketEvent("e2", "replied", "T1", T0 + 50, "sales", "chat", author="customer")
    proc.process(0, 0, opened)
    ends = {0: T0 + 100, 1: T0 + 10_000}
    proc.open_now.figures(ends, POLICY)  # a scrape: mirroring from here on
    proc.process(1, 5, nudge)
    tickets = proc.tables.tickets
    expected = {
        p: now_figures([t for _, t in open_rows(tickets, {p})], e, POLICY) for p, e in ends.items()
    }
    assert proc.open_now.figures(ends, POLICY) == expected
    assert expected[1][("sales", "chat")].oldest_wait_s == 10_000


def test_a_copy_read_anew_is_mirrored_by_one_pass_when_asked() -> None:
    """The worker's warm-up mirrors the table after a rebalance, so that a scrape does not."""
    table = Copy(T1=TicketRecord(0, EMPTY, OpenTicket("sales", "chat", T0, False)))
    index = OpenTickets(table)
    assert not index.mirroring
    index.mirror()
    assert index.mirroring
    table.loads += 1
    assert not index.mirroring
    index.mirror()
    assert index.mirroring and index.figures({0: T0}, POLICY)[0][("sales", "chat")].open == 1


def test_tickets_stored_or_retired_while_a_pass_goes_on_come_out_as_the_table_has_them() -> None:
    """The warm-up's pass pauses between slices and batches go on meanwhile: a ticket the
    pass has read is answered, one it has not read yet is closed and retired, a new one
    opens. Each comes out as the table has it, at the pass's end or at a read that ends it."""
    table = Copy()
    for i in range(6):
        table[f"T{i}"] = TicketRecord(i % 2, EMPTY, OpenTicket("sales", "chat", T0 + i, False))
    index = OpenTickets(table)
    passing = index.mirror_in_slices(2)
    next(passing)  # T5 and T4 read (the pass reads from the end of its list)
    assert not index.mirroring
    for key, record in (
        ("T5", TicketRecord(1, EMPTY, OpenTicket("sales", "chat", T0 + 5, True))),  # answered
        ("T0", ShelvedTicket(0, T0)),  # closed, then retired below
        ("T9", TicketRecord(1, EMPTY, OpenTicket("sales", "email", T0 + 9, False))),  # new
    ):
        before, table[key] = table.get(key), record
        index.stored(key, before, record)
    del table["T0"]
    ends = {0: T0 + 100, 1: T0 + 100}
    assert index.figures(ends, POLICY) == scanned(table, ends)  # ends the pass at once
    assert index.mirroring and next(passing, "done") == "done"
