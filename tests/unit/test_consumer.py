"""The worker consumer's offset rules (streams.consumer), on Faust's own consumer class."""

from __future__ import annotations

from types import SimpleNamespace

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.consumer import DoneRecords, WorkerConsumer, worker_transport

OURS, FAUSTS = "events", "faust-internal"


@pytest.fixture
def setup() -> tuple[WorkerConsumer, DoneRecords, faust.App]:
    app = faust.App("acks-test", broker="kafka://127.0.0.1:1", store="memory://")
    done = DoneRecords([OURS])
    app.transport = worker_transport(app, done)
    # agents that are not running subscribe no acking topics yet: enable acks for these two
    app.topics.acks_enabled_for = lambda topic: topic in (OURS, FAUSTS)  # type: ignore[method-assign]
    app.consumer_generation_id = 2
    consumer = app.consumer
    assert isinstance(consumer, WorkerConsumer)
    return consumer, done, app


def message(topic: str, offset: int, generation: int = 2) -> ConsumerMessage:
    m = ConsumerMessage(topic, 0, offset, 0.0, 0, [], b"k", b"v", None, generation_id=generation)
    m.incref()
    return m


def committable(consumer: WorkerConsumer, topic: str) -> list[int]:
    return list(consumer._acked[TP(topic, 0)])


def test_a_finished_record_of_this_generation_is_committed(setup) -> None:
    consumer, done, _ = setup
    m = message(OURS, 7)
    done.mark([SimpleNamespace(message=m)])
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
    done.mark([SimpleNamespace(message=m)])
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
    done.mark([SimpleNamespace(message=m) for m in batch[:3]])  # 13, 14 left out of the batch
    for m in batch:
        m.ack(consumer)
    assert consumer._new_offset(TP(OURS, 0)) == 13, "never past a record nobody processed"


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
