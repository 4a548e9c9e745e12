"""The worker's Kafka consumer: Faust's aiokafka consumer, with two offset rules of its own.

Rewind what was dropped. After a rebalance Faust drops the records it fetched meanwhile
(those of partitions it paused for table recovery among them) and seeks back to the
committed offsets, but aiokafka seeks only to a committed offset above 0. A partition of a
new group, with nothing committed yet, kept its position past the dropped records and they
were never processed: 2,000-2,500 records of one or two partitions in 3 of 4 rounds of a
repro that starts a second worker while the first works through a backlog and both are
scraped (the two-worker test failed the same way). So our partitions with no committed
offset are sought to their beginning; the processors skip what they have already applied.

Commit only what was processed. Faust's stream acks a record it *skips* during a
rebalance (flow stopped, or fetched in an older generation), ``take_events`` acks the
events an agent leaves out as taken before a rebalance, and after a revoke Faust commits
the first run of acked offsets wherever it starts. So the consumer records an ack of our
agents' topics only for a record an agent marked done in the current generation; any other
ack just releases the record (Faust stops waiting for it) and its offset stays uncommitted.
This hazard is read from Faust's code; no run has shown a released ack yet (``/stats``
counts them as ``acks_released``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar
from weakref import WeakSet

from faust.transport.drivers.aiokafka import Consumer, Transport
from faust.types import TP, AppT, Message
from faust.types.tuples import ack_lock
from mode.utils.futures import notify


class DoneRecords:
    """The records our agents have processed, with their table writes flushed."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)
        self._done: WeakSet[Message] = WeakSet()  # an ack follows the mark: nothing piles up
        self.released = 0  # acks of records not done: never committed

    def mark(self, events: Iterable[Any]) -> None:
        add = self._done.add
        for event in events:
            add(event.message)

    def may_commit(self, message: Message, generation: int) -> bool:
        if message.topic not in self.topics:
            return True  # faust's own topics keep faust's rules
        return message.generation_id == generation and message in self._done


class WorkerConsumer(Consumer):
    """Faust's aiokafka consumer, acking into the commit only what ``done`` allows."""

    done: ClassVar[DoneRecords]

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Also rewind our partitions that have no committed offset yet.

        Faust seeks back to the committed offsets after a rebalance because it drops
        records fetched meanwhile (those of partitions paused for recovery among them),
        but aiokafka seeks only to a committed offset above 0: a partition of a new
        group kept its position past the dropped records, and the records were skipped
        (seen in the two-worker test: 1,920 records of a partition nobody had committed).
        """
        committed = await super().seek_to_committed()
        fresh = [
            tp for tp, offset in committed.items() if not offset and tp.topic in self.done.topics
        ]
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
        return committed

    def ack(self, message: Message) -> bool:
        if self.done.may_commit(message, self.app.consumer_generation_id):
            return bool(super().ack(message))
        with ack_lock:  # as Consumer.ack: acked, and no longer waited for
            if message.acked:
                return False
            message.acked = True
            self._unacked_messages.discard(message)
            self.done.released += 1
        notify(self._waiting_for_ack)
        return False


def worker_transport(app: AppT, done: DoneRecords) -> Transport:
    """The app's ``kafka://`` transport, with a consumer bound to ``done``; set it as
    ``app.transport`` before the consumer is first used."""
    consumer = type("WorkerConsumer", (WorkerConsumer,), {"done": done})
    transport: type[Transport] = type("WorkerTransport", (Transport,), {"Consumer": consumer})
    return transport(app.conf.broker_consumer, app)
