"""The worker consumer's offset rules (streams.runtime.faust_internals), on Faust's consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.runtime.commit import ProcessedOffsets
from streams.runtime.faust_internals import (
    Bundle,
    DoneRecords,
    KeptQueuesApp,
    WorkerConsumer,
    worker_transport,
)

OURS, FAUSTS = "events", "faust-internal"


@pytest.fixture
def setup() -> tuple[WorkerConsumer, DoneRecords, faust.App]:
    return build()


def build() -> tuple[WorkerConsumer, DoneRecords, faust.App]:
    app = faust.App("acks-test", broker="kafka://127.0.0.1:1", store="memory://")
    done = DoneRecords([OURS])
    app.transport = worker_transport(app, done)
    # agents that are not running subscribe no acking topics yet: enable acks for these two
    app.topics.acks_enabled_for = lambda topic: topic in (OURS, FAUSTS)  # type: ignore[method-assign]
    app.consumer_generation_id = 2
    consumer = app.consumer
    assert isinstance(consumer, WorkerConsumer)
    return consumer, done, app


def message(topic: str, offset: int, generation: int = 2, partition: int = 0) -> ConsumerMessage:
    m = ConsumerMessage(
        topic, partition, offset, 0.0, 0, [], b"k", b"v", None, generation_id=generation
    )
    m.incref()
    return m


def finish(consumer: WorkerConsumer, done: DoneRecords, *offsets: int) -> None:
    """Records of our topic processed by this generation's agent, and acked."""
    for offset in offsets:
        m = message(OURS, offset)
        done.mark(SimpleNamespace(message=m))
        m.ack(consumer)


def committable(consumer: WorkerConsumer, topic: str) -> list[int]:
    return list(consumer._acked[TP(topic, 0)])


def test_a_finished_record_of_this_generation_is_committed(setup) -> None:
    consumer, done, _ = setup
    m = message(OURS, 7)
    done.mark(SimpleNamespace(message=m))
    assert m.ack(consumer) is True
    assert committable(consumer, OURS) == [7]
    assert done.released == 0


def test_a_record_faust_skipped_is_released_not_committed(setup) -> None:
    consumer, done, _ = setup
    m = message(OURS, 8)  # the stream skipped it during a rebalance, and acked it
    consumer._unacked_messages.add(m)
    assert m.ack(consumer) is False
    assert m.acked, "released: faust no longer waits for it (wait_empty would hang)"
    assert m not in consumer._unacked_messages
    assert committable(consumer, OURS) == []
    assert done.released == 1
    assert m.ack(consumer) is False and done.released == 1, "released once"


def test_a_record_finished_in_an_older_generation_is_not_committed(setup) -> None:
    consumer, done, _ = setup
    m = message(OURS, 9, generation=1)
    done.mark(SimpleNamespace(message=m))
    assert m.ack(consumer) is False
    assert committable(consumer, OURS) == []


def test_other_topics_keep_fausts_rules(setup) -> None:
    consumer, _, _ = setup
    m = message(FAUSTS, 3)
    assert m.ack(consumer) is True
    assert committable(consumer, FAUSTS) == [3]


def test_a_batch_with_a_skipped_record_commits_up_to_it(setup) -> None:
    consumer, done, _ = setup
    batch = [message(OURS, o) for o in range(10, 15)]
    for m in batch[:3]:
        done.mark(SimpleNamespace(message=m))  # 13, 14 left out of the batch
    for m in batch:
        m.ack(consumer)
    assert consumer._new_offset(TP(OURS, 0)) == 13, "never past a record nobody processed"


def test_repeated_and_committed_offsets_do_not_hold_the_commit_back(setup) -> None:
    """Faust's list of acked offsets can repeat an offset (a gap's offsets join the list but
    not its index) and hold committed ones; its first run of consecutive offsets then ended
    at the first repeat, and a partition's commit crept forward one offset at a time."""
    consumer, done, _ = setup
    tp = TP(OURS, 0)
    consumer._committed_offset[tp] = 2180
    consumer._acked[tp].extend([2179, 2180, 2180, 2181, 2181, *range(2182, 2848)])
    consumer._acked_index[tp].update(range(2181, 2848))
    assert consumer._new_offset(tp) == 2848, "the whole run, not 2181"
    assert committable(consumer, OURS) == [] and not consumer._acked_index[tp]
    consumer._committed_offset[tp] = 2848  # as the commit records it
    later = message(OURS, 2848)
    done.mark(SimpleNamespace(message=later))
    assert later.ack(consumer) is True
    assert consumer._new_offset(tp) == 2849


def test_an_offset_of_a_gap_acked_again_counts_once(setup) -> None:
    consumer, done, _ = setup
    tp = TP(OURS, 0)
    consumer._committed_offset[tp] = 11
    consumer._acked[tp].extend([11, 12])  # 11 from a gap: listed, not indexed
    consumer._acked_index[tp].add(12)
    again = message(OURS, 11)
    done.mark(SimpleNamespace(message=again))
    again.ack(consumer)  # Faust's ack appends it again: [11, 12, 11]
    assert consumer._new_offset(tp) == 13, "Faust's own gives 12: its run ends at the repeat"


def test_nothing_is_committed_past_a_record_not_acked(setup) -> None:
    """Faust's own commits past one missing offset at the head; ours waits for it."""
    consumer, done, _ = setup
    tp = TP(OURS, 0)
    consumer._committed_offset[tp] = 20
    finish(consumer, done, 21, 22, 23)
    assert consumer._new_offset(tp) is None, "20 was never processed"
    first = message(OURS, 20)
    done.mark(SimpleNamespace(message=first))
    first.ack(consumer)
    assert consumer._new_offset(tp) == 24


class FakeThread:
    """Stands in for Faust's aiokafka consumer thread (which needs a broker): what is
    committed, and which partitions were sought to their beginning."""

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.committed = committed
        self.rewound: list[TP] = []

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return self.committed

    async def seek_to_beginning(self, *partitions: TP) -> None:
        self.rewound.extend(partitions)


async def test_our_partitions_with_nothing_committed_are_rewound(setup) -> None:
    consumer, _, _ = setup
    committed = {TP(OURS, 0): None, TP(OURS, 1): 0, TP(OURS, 2): 41, TP(FAUSTS, 0): None}
    consumer._thread = FakeThread(committed)  # type: ignore[assignment]
    assert await consumer.seek_to_committed() == committed
    assert sorted(consumer._thread.rewound) == [TP(OURS, 0), TP(OURS, 1)], (
        "aiokafka leaves these where they were (it seeks only above 0); 41 is sought by it"
    )


def bundle(offsets: range, generation: int = 2) -> Bundle:
    b = Bundle.of([message(OURS, o, generation) for o in offsets])
    b.incref()
    return b


def test_a_finished_bundle_commits_every_record_in_it(setup) -> None:
    consumer, done, _ = setup
    b = bundle(range(20, 25))
    assert (b.partition, b.offset, b.generation_id) == (0, 24, 2), "it stands at its last record"
    consumer._unacked_messages.add(b)
    done.mark(SimpleNamespace(message=b))
    assert b.ack(consumer) is True
    assert committable(consumer, OURS) == [20, 21, 22, 23, 24]
    assert b not in consumer._unacked_messages
    assert b.ack(consumer) is False and committable(consumer, OURS) == [20, 21, 22, 23, 24]


def test_a_bundle_faust_skipped_releases_all_its_records(setup) -> None:
    consumer, done, _ = setup
    b = bundle(range(30, 34))  # skipped by the stream during a rebalance, and acked
    consumer._unacked_messages.add(b)
    assert b.ack(consumer) is False
    assert b.acked and b not in consumer._unacked_messages
    assert committable(consumer, OURS) == []
    assert done.released == 4


def test_a_bundle_of_an_older_generation_is_not_committed(setup) -> None:
    consumer, done, _ = setup
    b = bundle(range(40, 42), generation=1)
    done.mark(SimpleNamespace(message=b))
    assert b.ack(consumer) is False
    assert committable(consumer, OURS) == []


async def drain(
    consumer: WorkerConsumer,
    *fetches: list[tuple[TP, ConsumerMessage]],
    queue: list[object] | None = None,
    active: set[TP] | None = None,
    on_fetch: Callable[[], None] = lambda: None,
) -> list[tuple[str, int, object]]:
    """Run the fetcher loop over these fetches; what it delivered, as (topic, partition,
    offsets of a bundle or a record's offset). Each fetch comes as aiokafka hands one over:
    its records per partition, each partition's in the order given. ``queue``, when given,
    keeps what was delivered, as a stream's queue does until its agent has taken and
    finished it; ``active``: the fetch's active partitions (None: every partition);
    ``on_fetch`` runs while each fetch is awaited. Records come as the test made them
    (their generation included) unless the test set the consumer's ``_to_message``."""
    delivered: list[object] = [] if queue is None else queue
    before = len(delivered)
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    remaining = list(fetches)

    async def wait_next_records(timeout: float):  # type: ignore[no-untyped-def]
        records: dict[TP, list[ConsumerMessage]] = {}
        for tp, m in remaining.pop(0):
            records.setdefault(tp, []).append(m)
        if not remaining:
            fetcher._stopped.set()  # the loop ends after the last fetch
        on_fetch()
        return records, active

    async def callback(m: object) -> None:
        delivered.append(m)

    async def perform_seek() -> None:
        delivered.append("seek")

    consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
    if "_to_message" not in vars(consumer):
        consumer._to_message = lambda tp, record: record  # type: ignore[method-assign]
    if "highwater" not in vars(consumer):  # no consumer thread here: a made-up one
        consumer.highwater = lambda tp: 100  # type: ignore[method-assign]
    consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    consumer.callback = callback  # type: ignore[method-assign]
    if "assignment" not in vars(consumer):  # no consumer thread here: nothing assigned
        consumer.assignment = set  # type: ignore[method-assign]
    await consumer._drain_messages(fetcher)
    return [
        (m.topic, m.partition, [r.offset for r in m.records])
        if isinstance(m, Bundle)
        else m
        if isinstance(m, str)
        else (m.topic, m.partition, m.offset)
        for m in delivered[before:]
    ]


def ours(*offsets: int, partition: int = 0, generation: int = 2) -> list:
    return [(TP(OURS, partition), message(OURS, o, generation, partition)) for o in offsets]


async def test_the_fetcher_bundles_our_records_per_partition() -> None:
    """One fetch: our records become bundles of consecutive records of one partition (at most
    bundle_records each, in offset order); Faust's own topics keep one event per record; a
    record below the read offset is dropped, as Faust's fetcher drops it. Partitions are
    read in the fetch's order, each partition's records in theirs."""
    consumer, _, _ = build()  # inside the test's event loop: the fetcher waits on its events
    fetched = [
        *ours(0, 1, 2, 3, 4, 5),
        (TP(FAUSTS, 0), message(FAUSTS, 7)),
        *ours(10, 11, partition=1),
        *ours(4, partition=2),  # below partition 2's read offset
    ]
    consumer._read_offset[TP(OURS, 2)] = 5
    type(consumer).bundle_records = 4
    assert await drain(consumer, fetched) == [
        (OURS, 0, [0, 1, 2, 3]),  # full: delivered at once
        (FAUSTS, 0, 7),
        (OURS, 0, [4, 5]),  # the rest when the fetch is done
        (OURS, 1, [10, 11]),
    ]
    assert consumer._read_offset[TP(OURS, 0)] == 5


async def test_a_fetch_passes_only_the_records_of_partitions_active_or_buffered() -> None:
    """As Faust's getmany: a partition neither active nor buffered (paused) passes nothing."""
    consumer, _, _ = build()
    fetched = [*ours(0, 1), *ours(10, partition=1)]
    assert await drain(consumer, fetched, active={TP(OURS, 1)}) == [(OURS, 1, [10])]
    assert consumer._read_offset[TP(OURS, 0)] is None, "nothing of partition 0 was delivered"
    consumer._buffered_partitions.add(TP(OURS, 0))
    assert await drain(consumer, ours(0, 1), active={TP(OURS, 1)}) == [(OURS, 0, [0, 1])]


async def test_a_rebalance_while_a_fetch_is_passed_on_drops_the_rest_of_it() -> None:
    """As Faust's getmany: once the generation changes, no further record of the fetch
    passes (aiokafka's position is past them: the seek after the rebalance rewinds)."""
    consumer, _, app = build()
    after = (TP(FAUSTS, 1), message(FAUSTS, 8, partition=1))
    fetched = [(TP(FAUSTS, 0), message(FAUSTS, 7)), *ours(0, 1), after]
    assert await drain(consumer, fetched, queue=RebalanceOnDelivery(app)) == [(FAUSTS, 0, 7)]
    assert consumer._read_offset[TP(OURS, 0)] is None
    assert consumer._read_offset[TP(FAUSTS, 1)] is None


async def test_a_flow_stopped_while_a_fetch_is_passed_on_drops_the_rest_of_it() -> None:
    consumer, _, _ = build()

    class StopOnDelivery(list):
        def append(self, item: object) -> None:
            consumer.flow_active = False  # a rebalance begins as the record is handed on
            super().append(item)

    fetched = [
        (TP(FAUSTS, 0), message(FAUSTS, 7)),
        (TP(FAUSTS, 1), message(FAUSTS, 8, partition=1)),
    ]
    assert await drain(consumer, fetched, queue=StopOnDelivery()) == [(FAUSTS, 0, 7)]
    assert consumer._read_offset[TP(FAUSTS, 1)] is None


async def test_a_fetch_that_ended_in_a_new_generation_passes_its_records_on() -> None:
    """The generation a fetch is checked against is the one it ended in (getmany's)."""
    consumer, _, app = build()

    def rebalanced() -> None:
        app.consumer_generation_id = 3

    fetched = ours(0, 1, generation=3)
    assert await drain(consumer, fetched, on_fetch=rebalanced) == [(OURS, 0, [0, 1])]


async def test_a_record_is_stamped_with_its_generation_before_the_fetcher_lets_go() -> None:
    """Each record carries the generation it was fetched in, taken before the loop's next
    await (a yield, a commit every n acks): a rebalance meanwhile leaves it stale, and it
    is not delivered (the seek after the rebalance fetches it again)."""
    consumer, _, app = build()
    consumer._to_message = lambda tp, record: message(  # type: ignore[method-assign]
        record.topic, record.offset, app.consumer_generation_id, record.partition
    )
    consumer._commit_every, consumer._n_acked = 1, 1  # a commit comes before the record

    async def commit_in_a_rebalance() -> None:
        app.consumer_generation_id = 3

    consumer.commit = commit_in_a_rebalance  # type: ignore[method-assign]
    assert await drain(consumer, ours(0)) == []
    assert consumer._read_offset[TP(OURS, 0)] is None


async def test_with_the_flow_stopped_a_fetch_seeks_to_the_committed_offsets_instead() -> None:
    consumer, _, _ = build()
    consumer.flow_active = False
    assert await drain(consumer, ours(0, 1)) == ["seek"]
    assert consumer._read_offset[TP(OURS, 0)] is None


async def test_the_monitor_hears_each_partitions_high_watermark_once_per_fetch() -> None:
    """Faust's getmany read it for every record; it is the same for a whole fetch."""
    consumer, _, app = build()
    asked: list[TP] = []
    consumer.highwater = lambda tp: asked.append(tp) or 100 + tp.partition  # type: ignore[method-assign]
    delivered = await drain(consumer, [*ours(0, 1, 2), *ours(5, partition=1)])
    assert delivered == [(OURS, 0, [0, 1, 2]), (OURS, 1, [5])]
    assert asked == [TP(OURS, 0), TP(OURS, 1)]
    assert app.monitor.tp_end_offsets == {TP(OURS, 0): 100, TP(OURS, 1): 101}


async def test_records_join_their_partitions_bundle_while_it_waits_in_the_queue() -> None:
    """An agent behind its fetcher: a later fetch's records are added to the partition's
    bundle still queued (no agent took it), up to bundle_records, so the agent gets one
    larger batch instead of a queue of small ones. The read offset moves as they join."""
    consumer, _, _ = build()
    type(consumer).bundle_records = 5
    queue: list[object] = []
    delivered = await drain(
        consumer, [*ours(0, 1), *ours(10, partition=1)], [*ours(2, 3)], [*ours(4, 5)], queue=queue
    )
    assert delivered == [
        (OURS, 0, [0, 1, 2, 3]),  # 4 and 5 would make it 6
        (OURS, 1, [10]),
        (OURS, 0, [4, 5]),
    ]
    assert consumer._read_offset[TP(OURS, 0)] == 5
    assert consumer._queued[TP(OURS, 0)]().offset == 5, "the new bundle stands at its last record"


async def test_a_bundle_an_agent_took_or_of_another_generation_takes_no_more_records() -> None:
    """Once the stream has taken a bundle (it marks it tracked) or the agent has its records,
    they are final: later records go in a new bundle. So do records of a new generation."""
    consumer, _, app = build()
    queue: list[object] = []  # the stream's queue, then the agent, hold them
    first = await drain(consumer, [*ours(0, 1)], queue=queue)
    queued = consumer._queued[TP(OURS, 0)]()
    queued.tracked = True  # the stream took it
    assert await drain(consumer, [*ours(2)], queue=queue) == [(OURS, 0, [2])]
    assert [m.offset for m in consumer._queued[TP(OURS, 0)]().take()] == [2]  # the agent's now
    assert await drain(consumer, [*ours(3)], queue=queue) == [(OURS, 0, [3])]  # agent has [2]
    app.consumer_generation_id = 3
    assert await drain(consumer, [*ours(4, generation=3)], queue=queue) == [(OURS, 0, [4])]
    assert first == [(OURS, 0, [0, 1])] and queued.records[-1].offset == 1


async def test_a_bundle_its_agent_is_done_with_is_not_kept_by_the_consumer() -> None:
    """The consumer remembers each partition's last bundle only to add records to it while
    it waits in its queue. Once nothing else holds it (its agent is done), its records are
    freed: a caught-up worker kept the last bundle of every partition (7,454 records alive
    after the bench's log), until that partition's next records came."""
    consumer, _, _ = build()
    queue: list[object] = []
    await drain(consumer, [*ours(0, 1)], queue=queue)
    assert consumer._queued[TP(OURS, 0)]() is queue[0], "held by the queue: it may grow"
    queue.clear()  # the agent has processed it
    assert consumer._queued[TP(OURS, 0)]() is None
    assert await drain(consumer, [*ours(2)]) == [(OURS, 0, [2])], "the next is a new bundle"


def rewinds(consumer: WorkerConsumer, positions: dict[TP, int] | None = None) -> list:
    """Record the consumer's seeks instead of making them (no Kafka here); ``positions``:
    aiokafka's position of each partition (unknown when not given)."""
    seeks: list[tuple[TP, int]] = []

    async def seek_wait(partitions: dict[TP, int]) -> None:
        seeks.extend(partitions.items())

    known = positions if positions is not None else {}
    thread = SimpleNamespace(seek_wait=seek_wait, position_now=known.get)
    consumer._thread = thread  # type: ignore[assignment]
    consumer.assignment = lambda: {TP(OURS, 0), TP(OURS, 1)}  # type: ignore[method-assign]
    consumer._active_partitions = consumer.assignment()  # fetched from, none paused
    return seeks


async def test_a_jump_over_records_never_delivered_rewinds_instead_of_skipping() -> None:
    """The two-worker test lost 3,200 records: a seek finished mid-fetch reset the read
    offset below records delivered already, the next fetch "jumped", and Faust's rule
    recorded a gap that its commit counted as processed. Now the partition is cut short and
    fetched again from its last delivered record; no gap is recorded."""
    consumer, _, _ = build()
    seeks = rewinds(consumer)
    consumer._read_offset[TP(OURS, 0)] = 4069
    first = [*ours(7271, 7272), *ours(20, 21, partition=1)]
    again = [*ours(4069, 4070, 4071)]
    assert await drain(consumer, first, again) == [
        (OURS, 1, [20, 21]),  # other partitions go on
        (OURS, 0, [4069, 4070, 4071]),  # fetched again from the seek: nothing skipped
    ]
    assert seeks == [(TP(OURS, 0), 4069)]
    assert not consumer._gap.get(TP(OURS, 0))
    assert consumer._read_offset[TP(OURS, 0)] == 4071


async def test_a_record_fetched_again_after_a_rewind_never_joins_its_bundle_twice() -> None:
    """A rewind fetches a partition again from its last delivered record, which the bundle
    still waiting in the queue holds already (an agent behind): it was joined to that
    bundle a second time, so one batch applied it twice and its facts were counted twice.
    A fetch of that record alone adds nothing."""
    consumer, _, _ = build()
    seeks = rewinds(consumer)
    type(consumer).bundle_records = 10
    queue: list[object] = []  # the agent is behind: the bundle waits in its queue
    fetches = [*ours(0, 1, 2)], [*ours(5)], [*ours(2, 3)], [*ours(9)], [*ours(3)]
    delivered = await drain(consumer, *fetches, queue=queue)
    assert seeks == [(TP(OURS, 0), 2), (TP(OURS, 0), 3)], "rewound to the last delivered"
    assert delivered == [(OURS, 0, [0, 1, 2, 3])]
    assert consumer._read_offset[TP(OURS, 0)] == 3


async def test_a_record_of_a_bundle_an_older_generation_left_queued_is_delivered_anew() -> None:
    """Faust's stream skips a bundle fetched before a rebalance, though it may still hold
    it; the seek after the rebalance sets the read offset to that bundle's last record.
    Fetched again, the record goes in a new bundle of the new generation, or it would never
    be processed."""
    consumer, _, app = build()
    queue: list[object] = []
    assert await drain(consumer, [*ours(7)], queue=queue) == [(OURS, 0, [7])]
    app.consumer_generation_id = 3
    consumer._read_offset[TP(OURS, 0)] = 7  # Faust's seek to the committed offset
    assert await drain(consumer, [*ours(7, generation=3)], queue=queue) == [(OURS, 0, [7])]
    assert consumer._queued[TP(OURS, 0)]().generation_id == 3


async def test_a_first_record_past_the_committed_offset_is_a_jump_too() -> None:
    """Nothing read yet (a partition just assigned): the fetch must start at the committed
    offset, the next record to process. Starting past it (a two-worker run: committed 2280,
    first record 5222) would skip records nobody processed, so it is rewound the same way."""
    consumer, _, _ = build()
    seeks = rewinds(consumer)
    consumer._committed_offset[TP(OURS, 0)] = 2280
    past = [*ours(5222, 5223)]
    again = [*ours(2280, 2281)]
    assert await drain(consumer, past, again) == [(OURS, 0, [2280, 2281])]
    assert seeks == [(TP(OURS, 0), 2280)]
    assert not consumer._gap.get(TP(OURS, 0))


async def test_the_same_jump_seen_again_is_a_gap_in_the_log() -> None:
    """Offsets the log itself does not have (transaction markers, compaction): after one
    rewind brings the same jump from the same record, it is recorded as Faust's gap."""
    consumer, _, _ = build()
    seeks = rewinds(consumer)
    consumer._read_offset[TP(OURS, 0)] = 10
    jump = [*ours(13, 14)]
    again = [*ours(10, 13, 14)]
    assert await drain(consumer, jump, again) == [(OURS, 0, [10, 13, 14])]
    assert seeks == [(TP(OURS, 0), 10)]
    gaps = [(g.begin, g.end) for g in consumer._gap[TP(OURS, 0)]]
    assert gaps == [(11, 14)]  # as Faust's own loop records it


async def seek_to(consumer: WorkerConsumer, committed: dict[TP, int]) -> None:
    """Faust's seek to the committed offsets after an assignment (no Kafka here)."""

    async def seek_to_committed() -> dict[TP, int]:
        return committed

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    await consumer.perform_seek()


async def test_a_first_record_past_the_offset_a_seek_set_is_a_jump_and_then_a_gap() -> None:
    """After the seek to the committed offsets, Faust's read offset is the committed offset
    itself: the next record to read, not one read. A first record past it (the committed
    offset is a transaction's commit marker) was taken for one that follows on, and the
    commit waited for the marker for ever. It is a jump: rewound once, then a gap that
    holds the committed offset, so the commit moves past it."""
    consumer, done, _ = build()
    tp = TP(OURS, 0)
    await seek_to(consumer, {tp: 40})
    assert consumer._read_offset[tp] == 40  # Faust's: the next record to read
    seeks = rewinds(consumer)
    assert await drain(consumer, ours(41, 42), ours(41, 42)) == [(OURS, 0, [41, 42])]
    assert seeks == [(tp, 40)]
    assert [(g.begin, g.end) for g in consumer._gap[tp]] == [(40, 42)]
    consumer._acked.setdefault(tp, [])  # as the commits before the restart left it
    assert consumer._new_offset(tp) is None, "the gap ends with 41, not processed yet"
    finish(consumer, done, 41, 42)
    assert consumer._new_offset(tp) == 43


async def test_a_record_at_the_offset_a_seek_set_follows_on() -> None:
    """The record at the committed offset is the one expected: no rewind, and once it is
    delivered the read offset is the last record read again."""
    consumer, _, _ = build()
    tp = TP(OURS, 0)
    await seek_to(consumer, {tp: 40})
    seeks = rewinds(consumer)
    assert await drain(consumer, ours(40, 41), ours(43)) == [(OURS, 0, [40, 41])]
    assert seeks == [(tp, 41)]  # 41 -> 43 is a jump from the last record read


async def test_a_record_delivered_after_a_seek_is_the_last_read_from_then_on() -> None:
    """Once the record at the sought offset is delivered, the read offset (the same number)
    is the last record read: the next record follows on from it, no rewind."""
    consumer, _, _ = build()
    tp = TP(OURS, 0)
    await seek_to(consumer, {tp: 40})
    positions = {tp: 41}
    seeks = rewinds(consumer, positions)
    queue: list[object] = []
    assert await drain(consumer, ours(40), queue=queue) == [(OURS, 0, [40])]
    assert consumer.past_markers(tp) is None  # 40 was read: nothing unread before 41
    positions[tp] = 42
    await drain(consumer, ours(41), queue=queue)  # joins the bundle still queued
    assert [r.offset for r in queue[0].records] == [40, 41]  # type: ignore[attr-defined]
    assert seeks == []


async def test_offsets_past_the_last_record_that_hold_none_are_known_until_the_next() -> None:
    """A transaction's last marker takes the partition's last offset, and no record comes
    after it while the producer is quiet: aiokafka's position passes it, and the consumer
    knows the offsets from the last record delivered up to there hold no record."""
    consumer, _, _ = build()
    tp = TP(OURS, 0)
    positions = {tp: 43, TP(OURS, 1): 7}
    rewinds(consumer, positions)
    assert await drain(consumer, ours(40, 41)) == [(OURS, 0, [40, 41])]
    assert consumer.past_markers(tp) == (41, 43)
    assert consumer.past_markers(TP(OURS, 1)) is None  # nothing read of it: unknown
    positions[tp] = 44
    # the next record: a jump, rewound and then a gap (as any), and no longer past markers
    assert await drain(consumer, ours(43), ours(41, 43)) == [(OURS, 0, [41, 43])]
    assert consumer.past_markers(tp) is None


async def test_a_partition_resumed_at_a_marker_knows_it_holds_no_record() -> None:
    """Resumed at its committed offset, which is a marker: aiokafka's position passes it
    and no record comes. The committed offset is not a record to wait for."""
    consumer, _, _ = build()
    tp = TP(OURS, 0)
    await seek_to(consumer, {tp: 40})
    rewinds(consumer, {tp: 41})
    assert await drain(consumer, []) == []
    assert consumer.past_markers(tp) == (39, 41)


async def test_a_partitions_last_markers_found_at_two_fetches_are_committed_past() -> None:
    """No record follows a partition's last marker while its producer is quiet: the commit
    stood one below the end offset, and lag tools that read the group's offsets showed the
    partition 1 behind for good. Found again at the next fetch, from the same record, the
    markers are known to hold no record, and the commit passes them."""
    consumer, done, _ = build()
    tp = TP(OURS, 0)
    await seek_to(consumer, {tp: 40})
    rewinds(consumer, {tp: 43})
    assert await drain(consumer, ours(40, 41)) == [(OURS, 0, [40, 41])]
    finish(consumer, done, 40, 41)
    assert consumer._new_offset(tp) == 42, "found once: not passed yet"
    consumer._committed_offset[tp] = 42  # as the commit records it
    assert await drain(consumer, []) == []
    assert consumer._new_offset(tp) == 43


async def test_the_last_markers_are_passed_only_once_every_record_before_them_is_acked() -> None:
    """The fetcher runs ahead of the agents: markers found after records not processed yet
    (here on a partition nothing was committed of) wait for those records' acks."""
    consumer, done, _ = build()
    tp = TP(OURS, 0)
    rewinds(consumer, {tp: 6})
    assert await drain(consumer, ours(0, 1, 2, 3), []) == [(OURS, 0, [0, 1, 2, 3])]
    assert consumer._new_offset(tp) is None, "no record acked yet"
    finish(consumer, done, 0, 1)
    assert consumer._new_offset(tp) == 2
    consumer._committed_offset[tp] = 2
    finish(consumer, done, 2, 3)
    assert consumer._new_offset(tp) == 6, "past the markers at 4 and 5"


async def test_a_partition_resumed_at_its_last_marker_is_committed_past_it() -> None:
    """Resumed at a committed offset that is its last marker, a partition has no record to
    read nor ack: two fetches that find the marker still move its commit to the end (Faust's
    commit looks only at partitions with acks listed: the markers list it)."""
    consumer, _, app = build()
    tp = TP(OURS, 0)
    await seek_to(consumer, {tp: 40})
    rewinds(consumer, {tp: 41})
    assert await drain(consumer, [], []) == []
    assert await committed_now(consumer, app) == [{tp: 41}]


async def committed_now(consumer: WorkerConsumer, app: faust.App) -> list[dict[TP, int]]:
    """What Faust's commit of every partition sends to the broker now (accepted)."""
    sent: list[dict[TP, int]] = []

    async def commit(offsets: dict[TP, int]) -> bool:
        sent.append(dict(offsets))
        return True

    app.producer.flush = _no_wait  # type: ignore[method-assign]
    consumer._commit = commit  # type: ignore[method-assign]
    await consumer.commit()
    return sent


async def test_markers_found_in_a_fetch_faust_cut_short_are_not_passed() -> None:
    """Faust's getmany drops the rest of a fetch when the flow stops or the generation
    changes (a rebalance), after aiokafka's position moved past those records; and the
    records of a partition neither active nor buffered (paused). Such a fetch, or such a
    partition, tells nothing about markers: two sightings in a row are needed again."""
    consumer, _, app = build()
    tp = TP(OURS, 0)
    rewinds(consumer, {tp: 43})

    async def found_twice_after(fetch_as_faust_would_cut_it: Callable[[], Awaitable[None]]):
        await drain(consumer, ours(40, 41) if consumer._read_offset.get(tp) is None else [])
        await fetch_as_faust_would_cut_it()
        await drain(consumer, [])
        return tp in consumer._passed

    async def paused() -> None:
        consumer._active_partitions.discard(tp)
        await drain(consumer, [])
        consumer._active_partitions.add(tp)

    async def flow_stopped() -> None:
        consumer.flow_active = False
        await drain(consumer, [])
        consumer.flow_active = True

    async def rebalanced() -> None:  # the generation changes while the fetch is delivered
        await drain(consumer, ours(7, partition=1), queue=RebalanceOnDelivery(app))

    for cut in (paused, flow_stopped, rebalanced):
        consumer._passed.clear()
        assert not await found_twice_after(cut), cut.__name__
    await drain(consumer, [])
    assert tp in consumer._passed  # two plain fetches in a row


class RebalanceOnDelivery(list):
    """A stream's queue that sees the generation change as a record is handed to it."""

    def __init__(self, app: faust.App) -> None:
        super().__init__()
        self.app = app

    def append(self, item: object) -> None:
        self.app.consumer_generation_id += 1
        super().append(item)


async def test_a_gap_past_the_newest_acked_offset_waits_for_the_record_that_ends_it() -> None:
    """A gap found by a jump ends with the record after it (as Faust's loop records it):
    joined before that record is acked, it was committed unprocessed."""
    consumer, done, _ = build()
    tp = TP(OURS, 0)
    consumer._committed_offset[tp] = 38
    finish(consumer, done, 38, 39)
    await consumer._add_gap(tp, 40, 41)  # the jump from 39 to 41, seen twice
    assert consumer._new_offset(tp) == 40
    consumer._committed_offset[tp] = 40
    finish(consumer, done, 41)
    assert consumer._new_offset(tp) == 42


async def test_a_gap_may_begin_at_the_committed_offset_of_our_topics_only() -> None:
    """Faust starts a gap one past the committed offset, which is the next record to
    process: a commit marker there was never in a gap, and the commit stopped before it.
    Faust's own topics keep Faust's rule."""
    consumer, _, _ = build()
    ours_tp, theirs = TP(OURS, 0), TP("changelog", 0)
    consumer._committed_offset[ours_tp] = consumer._committed_offset[theirs] = 40
    await consumer._add_gap(ours_tp, 38, 41)
    await consumer._add_gap(theirs, 38, 41)
    assert [(g.begin, g.end) for g in consumer._gap[ours_tp]] == [(40, 42)]
    assert [(g.begin, g.end) for g in consumer._gap[theirs]] == [(41, 42)]


async def test_a_bundle_of_an_older_generation_is_not_passed_on_and_the_read_offset_stays() -> None:
    """Fetched before a rebalance: Faust's stream would skip it, so passing it on and moving
    the read offset past it would leave its records to nobody after the seek."""
    consumer, _, _ = build()
    rewinds(consumer)
    consumer._read_offset[TP(OURS, 0)] = 4
    stale = [*ours(5, 6, generation=1), *ours(7, 8, partition=1)]
    assert await drain(consumer, stale) == [(OURS, 1, [7, 8])]
    assert consumer._read_offset[TP(OURS, 0)] == 4


async def test_an_abandoned_delivery_leaves_the_read_offset_and_cuts_the_partition() -> None:
    """A rebalance abandons a delivery blocked on a full queue: the read offset stays at the
    last record handed on, and no later record of the partition is passed on in this fetch
    (it would move the read offset past the abandoned ones)."""
    consumer, _, _ = build()
    rewinds(consumer)
    type(consumer).bundle_records = 2
    consumer._read_offset[TP(OURS, 0)] = 0
    blocked = asyncio.Event()

    async def deliver(m: object) -> bool:
        if not blocked.is_set():
            blocked.set()
            return False  # the first bundle: abandoned
        return True

    consumer._deliver = deliver  # type: ignore[method-assign]
    assert await drain(consumer, [*ours(1, 2, 3, 4)]) == []
    assert consumer._read_offset[TP(OURS, 0)] == 0


def test_a_record_twice_in_one_bundle_is_applied_once() -> None:
    """Whatever the fetch path, a batch never applies a record twice: within one batch the
    stored rows are those of its start, so the second copy would be counted again."""
    processed = ProcessedOffsets()
    twice = [message(OURS, o) for o in (0, 1, 2, 2, 3, 1, 4)]
    assert [m.offset for m in processed.fresh(twice)] == [0, 1, 2, 3, 4]
    processed.done([message(OURS, o) for o in range(3)])
    assert [m.offset for m in processed.fresh(twice)] == [3, 4]


def test_records_processed_already_are_left_out_when_a_seek_brings_them_again() -> None:
    """Faust seeks back after its fetcher started: records fetched and processed in between
    came again and were counted and dead-lettered twice (issue 11)."""
    processed = ProcessedOffsets()
    first = [message(OURS, o) for o in range(5)]
    assert processed.fresh(first) == first
    processed.done(first)
    again = [message(OURS, o) for o in range(3, 8)]
    assert [m.offset for m in processed.fresh(again)] == [5, 6, 7]
    other_partition = [message(OURS, 0, partition=1)]
    assert processed.fresh(other_partition) == other_partition
    processed.done([])  # an empty batch moves nothing
    assert [m.offset for m in processed.fresh(again)] == [5, 6, 7]


@pytest.mark.parametrize("signal_name", ["sigterm", "sigint"])
def test_a_stop_signal_arms_the_stop_deadline_before_fausts_stop(
    monkeypatch: pytest.MonkeyPatch, signal_name: str
) -> None:
    """Faust's stop after SIGTERM waits on a broker that is gone; the deadline ends it."""
    from streams.runtime import faust_internals
    from streams.runtime.processes import STOP_EXIT_S

    calls: list[object] = []
    monkeypatch.setattr(
        faust_internals, "exit_if_stop_hangs", lambda after, cause: calls.append((after, cause))
    )
    monkeypatch.setattr(faust.Worker, f"_on_{signal_name}", lambda self: calls.append("faust"))
    worker = object.__new__(faust_internals.BoundedStopWorker)
    getattr(worker, f"_on_{signal_name}")()
    assert calls == [(STOP_EXIT_S, signal_name.upper()), "faust"]


async def test_the_kafka_consumer_fetches_as_the_settings_say() -> None:
    """``fetch_min_bytes`` and ``fetch_wait_seconds`` reach aiokafka (Faust fixes 1 byte and
    1500 ms): a live worker otherwise fetched a few records at a time, each paying a commit."""
    from streams.runtime.faust_internals import Fetching

    app = faust.App("fetch-test", broker="kafka://127.0.0.1:1", store="memory://")
    app.transport = worker_transport(app, DoneRecords([OURS]), 10, Fetching(65536, 100))
    thread = app.consumer._new_consumer_thread()
    kafka_consumer = thread._create_worker_consumer(app.transport)
    assert (kafka_consumer._fetch_min_bytes, kafka_consumer._fetch_max_wait_ms) == (65536, 100)
    # Faust reads uncommitted transactions unless its exactly-once guarantee is on
    assert kafka_consumer._isolation_level == "read_committed"


async def test_a_commit_the_broker_refused_changes_nothing() -> None:
    """Faust records a failed commit's offsets as committed and has already taken their acks
    out of its list: later acks below it were dropped, and after the next seek brought back
    the broker's offset the commit waited for acks that were gone. Both are put back."""
    consumer, done, app = build()
    tp = TP(OURS, 0)
    consumer._committed_offset[tp] = 10
    consumer.assignment = lambda: {tp}  # type: ignore[method-assign]
    app.producer.flush = _no_wait  # type: ignore[method-assign]
    finish(consumer, done, *range(10, 15))
    answers = [False, True]  # a rebalance refuses the first commit

    async def commit(offsets: dict[TP, int]) -> bool:
        return answers.pop(0)

    consumer._commit = commit  # type: ignore[method-assign]
    assert await consumer._commit_tps([tp], start_new_transaction=False) is False
    assert consumer._committed_offset[tp] == 10, "the broker still has 10"
    assert committable(consumer, OURS) == [10, 11, 12, 13, 14]
    assert await consumer._commit_tps([tp], start_new_transaction=False) is True
    assert consumer._committed_offset[tp] == 15


async def test_committed_is_the_offset_the_seek_after_an_assignment_set() -> None:
    """The lag of a partition a worker was just handed is measured from where it resumes:
    the committed offset Faust's seek recorded (none before any commit)."""
    consumer, _, _ = build()
    tp = TP(OURS, 1)
    assert consumer.committed(tp) is None
    committed = {tp: 4069, TP(OURS, 2): 0}

    async def seek_to_committed() -> dict[TP, int]:
        return committed

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    await consumer.perform_seek()
    assert consumer.committed(tp) == 4069
    assert consumer.committed(TP(OURS, 2)) is None  # Faust's "nothing committed"


async def _no_wait() -> None:
    return None


@pytest.mark.parametrize(("app_class", "kept"), [(KeptQueuesApp, True), (faust.App, False)])
async def test_resuming_flow_keeps_what_an_agent_has_queued(app_class, kept) -> None:
    """Faust resumes its flow control a second time at startup, after the seek to the
    committed offsets; a bundle queued since the first resume must still be there (with
    Faust's app it is gone, and its records were never processed nor acked)."""
    app = app_class("queues-test", broker="kafka://127.0.0.1:1", store="memory://")
    queue = app.topic(OURS).queue
    app.flow_control.resume()  # table recovery: the fetcher starts delivering
    queue.put_nowait("a bundle")
    app.flow_control.resume()  # the seek to the committed offsets is done
    assert (queue.qsize() == 1) is kept
