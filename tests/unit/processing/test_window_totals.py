"""The totals kept as buckets are written equal the full recomputation, always.

``WindowTotals`` (and ``RepeatTotals``) are what a scrape reads; ``window_sums`` over
``bucket_contents`` (and ``repeat_contacts`` over every customer) is what
``ticketpulse report`` computes from scratch. Any interleaving of writes, retractions,
expiries, clock moves in both directions and partitions forgotten must leave them equal.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.buckets import Entry, bucket_start
from streams.core.contacts import Contact, repeat_contacts
from streams.core.facts import Fact
from streams.core.policy import Policy
from streams.core.windows import window_maxima, window_range, window_sums
from streams.processing.bucket_store import BucketStore, bucket_contents
from streams.processing.customers import CustomerProcessor, CustomerTables, customer_rows
from streams.processing.repeat_totals import RepeatTotals
from streams.processing.settings import KpiSettings
from streams.processing.window_totals import SCALE, WindowTotals, as_sums

WIDTH = 60
WINDOWS = {"5m": 300.0, "15m": 900.0, "1h": 3600.0, "today": None}
TZ = "Europe/Paris"
BASE = 1_767_222_000  # 2025-12-31 23:00 UTC: "today" starts within the runs below
Folds = tuple[Callable[[str], str], Callable[[str], str]]  # a queue's label, an agent's
NAMES: Folds = (str, str)  # every queue and agent by name

facts = st.builds(
    Fact,
    at=st.floats(BASE, BASE + 7200, allow_nan=False).map(lambda t: round(t, 3)),
    name=st.sampled_from(["first_response", "resolved", "transfers_out"]),
    queue=st.sampled_from(["billing", "support"]),
    channel=st.just("chat"),
    # whole seconds from a few, often: two buckets then share a series' or a label's top
    value=st.one_of(st.floats(0, 5000, allow_nan=False), st.integers(0, 6).map(float)),
    agent=st.sampled_from(["", "a1", "a2"]),  # a per-agent twin's agent, or none
)
write = st.tuples(st.just("write"), st.integers(0, 1), st.lists(facts, max_size=4))
retract = st.tuples(st.just("retract"), st.integers(0, 1), st.integers(0, 30))
expire = st.tuples(st.just("expire"), st.integers(0, 1), st.integers(0, 7200))
read = st.tuples(st.just("read"), st.integers(0, 1), st.integers(0, 9000))
forget = st.tuples(st.just("forget"), st.integers(0, 1), st.just(0))
operations = st.lists(st.one_of(write, retract, expire, read, forget), max_size=60)


def full(store: BucketStore, partition: int, end: float) -> tuple[dict, dict]:
    rows, max_rows = bucket_contents(store.buckets, {partition})
    sums = window_sums(rows[partition], WINDOWS, end, WIDTH, TZ)
    maxima = window_maxima(max_rows[partition], WINDOWS, end, WIDTH, TZ)
    return sums, maxima


def by_label(sums: dict, maxima: dict, fold: Folds) -> tuple[dict, dict]:
    """The recomputed sums and maxima of each queue (and agent), added up (the larger) per
    label."""
    queue_label, agent_label = fold
    label_sums: dict = {}
    for (entry, queue, channel), (total, count) in sums.items():
        if entry.agent:
            entry = Entry(entry.figure, entry.days, agent_label(entry.agent), entry.le)
        held = label_sums.setdefault((entry, queue_label(queue), channel), [0.0, 0])
        held[0] += total
        held[1] += count
    label_maxima: dict = {}
    for (figure, queue, channel), value in maxima.items():
        key = (figure, queue_label(queue), channel)
        label_maxima[key] = max(label_maxima.get(key, value), value)
    return label_sums, label_maxima


def assert_equal(
    totals: WindowTotals, store: BucketStore, partition: int, end: float, fold: Folds = NAMES
) -> None:
    states = totals.read(partition, end)
    sums, maxima = full(store, partition, end)
    for w in WINDOWS:
        live = as_sums(states[w])
        label_sums, label_maxima = by_label(sums[w], maxima[w], fold)
        assert live.keys() == label_sums.keys(), w
        for key, (total, count) in label_sums.items():
            assert live[key][1] == count, (w, key)
            assert abs(live[key][0] - total) <= 1e-9 * max(1.0, abs(total)), (w, key)
        assert states[w].maxima == maxima[w], w
        assert states[w].label_maxima == label_maxima, w


# how a worker may label the two queues and two agents: each by name, all folded, one of
# each folded
FOLDS: dict[str, Folds] = {
    "names": NAMES,
    "other": (lambda queue: "other", lambda agent: "other"),
    "billing": (
        lambda queue: queue if queue == "billing" else "other",
        lambda agent: agent if agent == "a1" else "other",
    ),
}


@settings(max_examples=150, deadline=None)
@given(operations, st.sampled_from(sorted(FOLDS)))
def test_window_totals_equal_the_full_recomputation(ops: list, labels: str) -> None:
    """Sums and maxima per queue label (the cap and allow-list fold queues, and agents of
    per-agent twins, into ``other``) equal the recomputation's per queue and agent, added
    up or the larger per label."""
    fold = FOLDS[labels]
    store = BucketStore({}, WIDTH, (30.0, 300.0, 3600.0), retention_s=3 * 3600)
    totals = WindowTotals(store, WINDOWS, TZ, *fold)
    written: dict[int, list[Fact]] = {0: [], 1: []}
    ends = {0: BASE + 600.0, 1: BASE + 600.0}
    for offset, (kind, p, arg) in enumerate(ops, start=1):
        if kind == "write":
            store.write(p, offset, [], arg, watermark=float("-inf"))
            written[p] += arg
        elif kind == "retract" and written[p]:
            gone = written[p].pop(arg % len(written[p]))
            store.write(p, offset, [gone], [], watermark=float("-inf"))
        elif kind == "expire":
            store.expire(p, BASE + arg + 3 * 3600)
            # the store drops whole buckets: those starting before the horizon
            written[p] = [f for f in written[p] if bucket_start(f.at, WIDTH) >= BASE + arg]
        elif kind == "read":
            ends[p] = BASE + arg
            assert_equal(totals, store, p, ends[p], fold)
        elif kind == "forget":
            totals.forget(p)
    for p in (0, 1):
        assert_equal(totals, store, p, ends[p], fold)


def assert_merged(totals: WindowTotals, store: BucketStore, ends: dict[int, float]) -> None:
    """The totals over any set of partitions equal the sum of their full recomputations."""
    each = {p: full(store, p, end)[0] for p, end in ends.items()}
    states = {p: totals.read(p, end) for p, end in ends.items()}
    for read in ({0, 1}, {0}, {1}, set()):
        for w in WINDOWS:
            out: dict = {}
            totals.add_into(out, w, {p: states[p] for p in read})
            expected: dict = {}
            for p in read:
                for key, (total, count) in each[p][w].items():
                    held = expected.setdefault(key, [0.0, 0])
                    held[0] += total
                    held[1] += count
            assert out.keys() == expected.keys(), (w, read)
            for key, (total, count) in expected.items():
                assert out[key][1] == count, (w, read, key)
                assert abs(out[key][0] / SCALE - total) <= 1e-9 * max(1.0, abs(total))


@settings(max_examples=150, deadline=None)
@given(operations)
def test_the_totals_over_partitions_equal_the_sum_of_their_recomputations(ops: list) -> None:
    """A scrape reads each window's sums over every partition held, kept as they change,
    less any partition not read: under any writes, expiries, reads and partitions
    forgotten, that equals adding up the partitions read, each recomputed from scratch."""
    store = BucketStore({}, WIDTH, (30.0, 300.0, 3600.0), retention_s=3 * 3600)
    totals = WindowTotals(store, WINDOWS, TZ)
    ends = {0: BASE + 600.0, 1: BASE + 600.0}
    for offset, (kind, p, arg) in enumerate(ops, start=1):
        if kind == "write":
            store.write(p, offset, [], arg, watermark=float("-inf"))
        elif kind == "expire":
            store.expire(p, BASE + arg + 3 * 3600)
        elif kind == "read":
            ends[p] = BASE + arg
            totals.read(p, ends[p])
        elif kind == "forget":
            totals.forget(p)
    assert_merged(totals, store, ends)


def two_partitions() -> tuple[BucketStore, WindowTotals]:
    store = BucketStore({}, WIDTH, (30.0, 300.0, 3600.0), retention_s=3 * 3600)
    for p in (0, 1):
        fact = Fact(at=BASE + 3500.0, name="resolved", queue="billing", channel="chat")
        store.write(p, 1, [], [fact], watermark=float("-inf"))
    return store, WindowTotals(store, WINDOWS, TZ)


def test_a_partition_forgotten_after_its_read_keeps_what_it_held_then() -> None:
    """A scrape pauses between partitions, and a rebalance may forget one already read (or
    every one): the scrape still adds up what each partition held when it was read."""
    for forget in ("one", "all"):
        _, totals = two_partitions()
        end = BASE + 3600.0
        read = {0: totals.read(0, end)}
        totals.forget(0) if forget == "one" else totals.forget_all()
        read[1] = totals.read(1, end)
        out: dict = {}
        totals.add_into(out, "1h", read)
        assert out and {count for _, count in out.values()} == {2}, forget
        again: dict = {}
        totals.add_into(again, "1h", {1: read[1]})
        assert again and {count for _, count in again.values()} == {1}, forget  # p1 alone


def test_a_read_that_fails_while_filling_leaves_the_running_sums_as_they_were() -> None:
    store, totals = two_partitions()
    fact = Fact(at=BASE + 3300.0, name="resolved", queue="billing", channel="chat")
    store.write(0, 2, [], [fact], watermark=float("-inf"))  # p0: two buckets
    end = BASE + 3600.0
    read = {1: totals.read(1, end)}
    rows = store.buckets
    gets: list[str] = []

    class Broken(dict):
        def get(self, key, default=None):
            gets.append(key)
            if len(gets) > 1:  # the first bucket is in the new windows already
                raise RuntimeError("a store that cannot be read")
            return super().get(key, default)

    store.buckets = Broken(rows)
    with pytest.raises(RuntimeError):
        totals.read(0, end)
    store.buckets = rows
    totals.forget(0)  # takes away only what was added
    out: dict = {}
    totals.add_into(out, "1h", read)
    assert out and {count for _, count in out.values()} == {1}
    assert_merged(totals, store, {0: end, 1: end})


def test_the_first_read_of_a_partition_decodes_each_bucket_once() -> None:
    """After a rebalance every window of a partition is built from its buckets, whose
    packed rows each read decodes: one pass for all the windows, not one per window."""
    reads: list[str] = []

    class Buckets(dict):
        def get(self, key, default=None):
            reads.append(key)
            return super().get(key, default)

    store = BucketStore(Buckets(), WIDTH, (30.0, 300.0, 3600.0), retention_s=3 * 3600)
    fact = Fact(at=BASE + 3500.0, name="resolved", queue="billing", channel="chat", value=9.0)
    store.write(0, 1, [], [fact], watermark=float("-inf"))
    store.write(0, 2, [], [Fact(BASE + 100.0, "resolved", "billing", "chat", 4.0)], float("-inf"))
    totals = WindowTotals(store, WINDOWS, TZ)
    reads.clear()
    totals.read(0, BASE + 3600.0)  # the newer bucket is in all four windows, the other in two
    assert sorted(reads) == sorted(store.buckets)
    assert_equal(totals, store, 0, BASE + 3600.0)


def contact(ticket: str, opened: float, queue: str, version: int = 1) -> Contact:
    return Contact(ticket, version, opened, queue, "chat", None, None, None, (), None)


contacts = st.builds(
    lambda customer, ticket, opened, queue, version: (
        f"c{customer}",
        contact(f"t{ticket}", BASE + opened, queue, version),
    ),
    st.integers(0, 6),
    st.integers(0, 12),
    st.integers(0, 7200),
    st.sampled_from(["billing", "support"]),
    st.integers(1, 3),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(contacts, st.integers(0, 9000)), max_size=50))
def test_repeat_totals_equal_the_full_recomputation(ops: list) -> None:
    """Contacts arrive, change and expire; the clock moves; the counts stay exact."""
    short = Policy(recontact_days=(0.01,), fcr_days=0.01)  # customers expire within the run
    kpi = KpiSettings(short, bucket_s=WIDTH, lateness_s=60, window_retention_s=3600)
    processor = CustomerProcessor(CustomerTables(), kpi)
    repeats = RepeatTotals(processor, WINDOWS, TZ)
    end = BASE + 600.0
    for offset, op in enumerate(ops):
        if isinstance(op, int):
            end = BASE + op
            processor.advance(0, offset, end)  # moves the clock, expires old customers
            assert_repeats(repeats, processor, end)
        else:
            processor.process(0, offset, *op)
    assert_repeats(repeats, processor, end)


def assert_repeats(repeats: RepeatTotals, processor: CustomerProcessor, end: float) -> None:
    live = repeats.read(0, end)
    for w, span in WINDOWS.items():
        first, stop = window_range(w, span, end, WIDTH, TZ)
        expected: dict = {}
        for _, held in customer_rows(processor.tables.customers, {0}):
            for key in repeat_contacts(held, first, stop):
                expected[key] = expected.get(key, 0) + 1
        assert live[w].counts == expected, w


def test_a_customer_retention_drops_leaves_the_repeat_counts() -> None:
    """Retention keeps customers for the recontact period only, so one can go while its
    contacts are still inside "today": its repeat contact must go with it."""
    short = Policy(recontact_days=(0.01,), fcr_days=0.01)
    kpi = KpiSettings(short, bucket_s=WIDTH, lateness_s=60, window_retention_s=3600)
    processor = CustomerProcessor(CustomerTables(), kpi)
    repeats = RepeatTotals(processor, WINDOWS, TZ)
    processor.process(0, 0, "c1", contact("t1", BASE + 100, "billing"))
    processor.process(0, 1, "c1", contact("t2", BASE + 200, "billing"))
    assert repeats.read(0, BASE + 300)["today"].counts == {
        ("repeat_customers", "billing", "chat"): 1,
        ("repeat_contacts", "billing", "chat"): 1,
    }
    processor.advance(0, 2, BASE + 8000)
    assert not processor.tables.customers
    assert_repeats(repeats, processor, BASE + 8000)


def test_the_first_read_of_a_partition_scans_the_customers_once() -> None:
    """After a rebalance the repeat counts are rebuilt from the customers table, whose
    packed rows a scan decodes one by one: the index and every window come from one scan."""
    scans: list[str] = []

    class Customers(dict):
        def items(self):
            scans.append("items")
            return super().items()

        def values(self):
            scans.append("values")
            return super().values()

    processor = CustomerProcessor(CustomerTables(customers=Customers()), KpiSettings())
    processor.process(0, 0, "c1", contact("t1", BASE + 100, "billing"))
    processor.process(0, 1, "c1", contact("t2", BASE + 200, "billing"))
    processor.process(1, 0, "c2", contact("t3", BASE + 150, "support"))
    processor.process(1, 1, "c2", contact("t4", BASE + 250, "support"))
    repeats = RepeatTotals(processor, WINDOWS, TZ)
    scans.clear()
    live = repeats.read(0, BASE + 300)
    assert len(scans) == 1
    ((_, held),) = customer_rows(processor.tables.customers, {0})  # c1 only
    for w, span in WINDOWS.items():
        first, stop = window_range(w, span, BASE + 300, WIDTH, TZ)
        assert live[w].counts == dict.fromkeys(repeat_contacts(held, first, stop), 1), w
    assert live["today"].counts == {
        ("repeat_customers", "billing", "chat"): 1,
        ("repeat_contacts", "billing", "chat"): 1,
    }
    both = RepeatTotals(processor, WINDOWS, TZ)  # the exporter builds every partition at once
    scans.clear()
    both.build({0: BASE + 300, 1: BASE + 300})
    assert len(scans) == 1
    assert both.read(0, BASE + 300)["today"].counts == live["today"].counts
    assert both.read(1, BASE + 300)["today"].counts == {
        ("repeat_customers", "support", "chat"): 1,
        ("repeat_contacts", "support", "chat"): 1,
    }
    assert len(scans) == 1  # read after build: no scan


def test_a_change_that_leaves_a_customers_repeats_as_they_were_counts_nothing_anew() -> None:
    """Most contact changes (a resolution, a single contact) leave what the customer adds to
    each window as it was: the counts are then not taken away and added again."""
    folded: list[str] = []

    def fold(queue: str) -> str:
        folded.append(queue)
        return queue

    processor = CustomerProcessor(CustomerTables(), KpiSettings())
    repeats = RepeatTotals(processor, WINDOWS, TZ, fold)
    processor.process(0, 0, "c1", contact("t1", BASE + 100, "billing"))
    processor.process(0, 1, "c1", contact("t2", BASE + 200, "billing"))
    before = repeats.read(0, BASE + 300)["today"].counts.copy()
    folded.clear()
    processor.process(0, 2, "c1", contact("t2", BASE + 200, "billing", version=2))
    processor.process(0, 3, "c2", contact("t3", BASE + 250, "support"))
    assert folded == []
    assert repeats.read(0, BASE + 300)["today"].counts == before
    processor.process(0, 4, "c2", contact("t4", BASE + 260, "support"))  # c2 repeats now
    assert folded
    assert_repeats(repeats, processor, BASE + 300)


def test_windows_moving_together_read_each_customer_they_touch_once() -> None:
    """A long jump of the clock (the first scrape after a replay) moves every window past
    every customer: each is read (a packed row decoded, in the worker) once, not once per
    window, and the counts are what a full recomputation gives."""
    reads: list[str] = []

    class Customers(dict):
        def get(self, key, default=None):
            reads.append(key)
            return super().get(key, default)

    processor = CustomerProcessor(CustomerTables(customers=Customers()), KpiSettings())
    repeats = RepeatTotals(processor, WINDOWS, TZ)
    processor.process(0, 0, "c1", contact("t1", BASE + 100, "billing"))
    processor.process(0, 1, "c1", contact("t2", BASE + 200, "billing"))
    processor.process(0, 2, "c2", contact("t3", BASE + 150, "support"))
    assert repeats.read(0, BASE + 300)["today"].counts
    reads.clear()
    assert_repeats(repeats, processor, BASE + 7200)  # past the 5m, 15m and 1h windows
    assert sorted(reads) == ["c1", "c2"]


def test_a_labels_maximum_rises_with_a_queue_whose_own_maximum_is_being_recomputed() -> None:
    """Two queues folded into ``other``: billing holds the label's top (100 s). Support's own
    top (50 s) is retracted, so its maximum awaits recomputation, and then a 500 s first
    response comes for it: the label's maximum is 500 s at the next read, not 100 s."""
    store = BucketStore({}, WIDTH, (30.0, 300.0, 3600.0), retention_s=3 * 3600)
    fold = FOLDS["other"]
    totals = WindowTotals(store, WINDOWS, TZ, *fold)
    billing = Fact(BASE + 10, "first_response", "billing", "chat", 100.0)
    support = Fact(BASE + 20, "first_response", "support", "chat", 50.0)
    store.write(0, 1, [], [billing, support], watermark=float("-inf"))
    totals.read(0, BASE + 600.0)  # built: kept up to date from here on
    store.write(0, 2, [support], [], watermark=float("-inf"))
    later = Fact(BASE + 30, "first_response", "support", "chat", 500.0)
    store.write(0, 3, [], [later], watermark=float("-inf"))
    assert_equal(totals, store, 0, BASE + 600.0, fold)
    hour = totals.read(0, BASE + 600.0)["1h"]
    assert hour.label_maxima[("first_response", "other", "chat")] == 500


def test_a_label_forgets_the_queues_whose_buckets_all_left_though_its_top_never_does() -> None:
    """A flood of new queue names folded into ``other``, first responses growing longer each
    minute: the label's top is always the newest bucket, so it is never recomputed, and the
    queues that left the window must leave its members all the same (else they pile up)."""
    store = BucketStore({}, WIDTH, (30.0,), retention_s=3 * 3600)
    totals = WindowTotals(store, {"5m": 300.0}, TZ, lambda queue: "other")
    totals.read(0, BASE)
    for minute in range(60):
        at = BASE + minute * WIDTH
        flood = [Fact(at + 1, "first_response", f"q{minute}-{i}", "chat", 100.0 + minute)
                 for i in range(20)]  # fmt: skip
        store.write(0, minute + 1, [], flood, watermark=float("-inf"))
        state = totals.read(0, at + 30)["5m"]
    assert state.label_maxima[("first_response", "other", "chat")] == 159.0
    assert len(state.members[("first_response", "other", "chat")]) == len(state.maxima) <= 6 * 20
