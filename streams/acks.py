"""Commit only the offsets of records an agent has finished with.

Faust acks more than that, and an acked offset is committed:

- its stream acks a record it *skips* because a rebalance is under way (flow stopped, or the
  record was fetched in an older generation), "otherwise the lag would increase";
- ``take_events`` acks every event of a batch, including those the agent leaves out as taken
  before a rebalance.

After a revoke Faust forgets the partition's committed offset, and with none known it commits
the first run of acked offsets even when it does not start where processing stopped. So a
worker could commit past records nobody processed: the partition's next owner starts there
and skips them (seen as thousands of records missing at a group's first rebalance). Here the
consumer records an ack only for a record of our agents' topics that the agent marked done in
the current generation; any other ack just releases the record (Faust stops waiting for it)
and its offset stays uncommitted, so the partition's owner reads it again: at-least-once, and
the processors ignore what they have already applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar
from weakref import WeakSet

from faust.transport.drivers.aiokafka import Consumer, Transport
from faust.types import AppT, Message
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


class DoneOnlyConsumer(Consumer):
    """Faust's aiokafka consumer, acking into the commit only what ``done`` allows."""

    done: ClassVar[DoneRecords]

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


def done_only_transport(app: AppT, done: DoneRecords) -> Transport:
    """The app's ``kafka://`` transport, with a consumer bound to ``done``; set it as
    ``app.transport`` before the consumer is first used."""
    consumer = type("DoneOnlyConsumer", (DoneOnlyConsumer,), {"done": done})
    transport: type[Transport] = type("DoneOnlyTransport", (Transport,), {"Consumer": consumer})
    return transport(app.conf.broker_consumer, app)
