"""Everything that touches a private attribute of faust, mode or aiokafka, in one place.

A faust-streaming upgrade can change any of these without notice, and exactness rests on
them, so each relied-on function is listed in ``RELIED_ON`` with why, and
``tests/unit/runtime/test_faust_drift.py`` compares the installed source of each with the
fingerprint recorded in ``faust_fingerprints.json``: a mismatch fails and names what to
re-read (``python -m streams.runtime.faust_internals --record`` records them afresh, once
re-read). No other module of ``streams`` uses a private name of these packages.

The worker's Kafka consumer is Faust's aiokafka consumer with seven rules of its own, and
its app keeps the agents' queues.

Rewind what was dropped. After a rebalance Faust drops the records it fetched meanwhile
(those of partitions it paused for table recovery among them) and seeks back to the
committed offsets, but aiokafka seeks only to a committed offset above 0. A partition of a
new group, with nothing committed yet, kept its position past the dropped records and they
were never processed: 2,000-2,500 records of one or two partitions in 3 of 4 rounds of a
repro that starts a second worker while the first works through a backlog and both are
scraped. So our partitions with no committed offset are sought to their beginning; the
agents leave out what this process processed already (``streams.runtime.commit``).

Commit only what was processed. Faust's stream acks an event it *skips* during a
rebalance (flow stopped, or fetched in an older generation), an agent leaves out a bundle
fetched before a rebalance, and after a revoke Faust commits the first run of acked
offsets wherever it starts. So the consumer records an ack of our agents' topics only for
a record or bundle an agent marked done in the current generation; any other ack just
releases it (Faust stops waiting for it) and its offsets stay uncommitted. Faust's
compiled stream iterator inlines ``Consumer.ack`` and bypassed both this rule and the
bundle's per-record acks (issue 11), so the worker uses Faust's Python iterator.

Deliver in bundles. Faust hands every record to a stream as its own event, through two
tasks and four futures in the fetcher (``wait_first``), a lock, a decode and a queue:
about 70-80 microseconds a record on the 2-core bench machine, as much as all our own
code per record. The fetcher delivers the consecutive records of one partition from one
fetch (at most ``bundle_records``) as a single event, a ``Bundle``; its ack acks every
record in it with Faust's bookkeeping, so commits, gaps and the rules above work per record.
Faust's own topics (changelogs) keep Faust's per-record path. A bundle still waiting in
its stream's queue takes the next records of its partition too (up to ``bundle_records``),
so an agent that falls behind gets fewer, larger batches instead of a queue of small ones:
each batch pays one commit sequence, and live fetches come in every few tens of
milliseconds (``WorkerConsumer._join_queued``).

Pass nothing on past a record not delivered. Faust's loop takes a jump in offsets for
a gap in the log, and its commit counts a gap as processed; but a seek finishing in the
middle of a fetch, or a delivery abandoned by a rebalance, also made the fetch position
jump past records never delivered (``WorkerConsumer._gather`` says how). Our partitions
are fetched again from the last record delivered instead; only the same jump seen twice
is a gap.

Count each acked offset once. Faust's list of acked offsets can repeat an offset, and its
commit then advanced one offset at a time (``WorkerConsumer._new_offset`` says when); the
list is made a sorted set of uncommitted offsets before each commit.

A refused commit changes nothing. Faust records a commit's offsets as committed even when
the broker refused it, with their acks already out of its list; both are put back.

Read committed transactions only, and never wait for a marker. Faust reads the records of
aborted transactions (unless its own exactly-once guarantee is on): they were counted. The
marker that ends a transaction takes an offset no consumer receives; after a seek, a first
record past the committed offset is a jump like any other, a gap may begin at the committed
offset itself, and the offsets past a partition's last record that aiokafka's position
passed are known to hold none, and once two fetches found them, committed past
(``WorkerConsumer._followed``, ``_add_gap``, ``_note_markers``, ``_past_last_markers``).

Keep what was queued. Faust empties the agents' queues whenever it resumes its flow
control, and resumes it twice at startup: for table recovery, when the fetcher starts
delivering, and again once the seek to the committed offsets is done. A bundle queued in
between was dropped, neither processed nor acked, while the fetcher had moved past it: the
commit of its partition stopped below it for good (a restarted worker dropped 2,691 and
1,060 records of two partitions in one reproduction; the restart test stalled in 2 of 3
clean-clone runs). So
the queues are never emptied (``KeptQueuesApp``): a queued bundle is processed, a copy the
seek fetches again is left out by ``ProcessedOffsets``, and one of an older generation is
skipped and released by the rules above.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast
from weakref import WeakSet, ref

import faust
import faust.streams
import rocksdict  # Faust's RocksDB driver (faust prefers it whenever it is installed)
from aiokafka.protocol.group import JoinGroupRequest
from aiokafka.structs import TopicPartition
from faust.stores.base import SerializedStore
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.recovery import Recovery
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import (
    AIOKafkaConsumerThread,
    Consumer,
    Transport,
    credentials_to_aiokafka_auth,
)
from faust.types import TP, AppT, Message
from faust.types.tuples import ConsumerMessage, ack_lock
from mode import Service, ServiceT
from mode.utils.futures import notify

from streams.runtime.datadir import RememberedMember
from streams.runtime.processes import CRASH_EXIT_S, STOP_EXIT_S, exit_if_stop_hangs
from streams.runtime.restore import Span, changelog_consumer, read_changelogs

DEFAULT_BUNDLE_RECORDS = 5000
logger = logging.getLogger(__name__)
YIELD_EVERY = 100  # records between yields to the event loop, as Faust's fetcher


class Bundle(ConsumerMessage):
    """Consecutive records of one partition, delivered to the agent as one event.

    It stands at the offset of its last record; Faust tracks and acks the bundle, and
    the consumer acks the records in it.
    """

    __slots__ = ("records", "taken")

    records: list[Message]
    taken: bool  # an agent has it: no more records join it (WorkerConsumer._join_queued)

    @classmethod
    def of(cls, records: list[Message]) -> Bundle:
        last = records[-1]
        bundle = cls(
            last.topic,
            last.partition,
            last.offset,
            last.timestamp,
            last.timestamp_type,
            None,
            None,
            b"",
            None,
            0,
            0,
            last.tp,
            generation_id=last.generation_id,
        )
        bundle.records, bundle.taken = records, False
        return bundle

    def take(self) -> list[Message]:
        """The agent's hold on the bundle: its records, final from now on."""
        self.taken = True
        return self.records

    def join(self, records: list[Message], limit: int) -> bool:
        """Add the next records of the partition while the bundle waits in its queue (the
        stream marks a message tracked as it takes it). It then stands at the new last."""
        if self.taken or self.tracked or len(self.records) + len(records) > limit:
            return False
        if records[0].generation_id != self.generation_id:
            return False
        self.records.extend(records)
        self.offset, self.timestamp = records[-1].offset, records[-1].timestamp
        return True


class DoneRecords:
    """The records our agents have processed, with their table writes flushed."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)
        self._done: WeakSet[Message] = WeakSet()  # an ack follows the mark: nothing piles up
        self.released = 0  # acks of records not done: never committed

    def mark(self, event: Any) -> None:
        """The event's record (or bundle) is processed and its table writes flushed."""
        self._done.add(event.message)

    def may_commit(self, message: Message, generation: int) -> bool:
        if message.topic not in self.topics:
            return True  # faust's own topics keep faust's rules
        return message.generation_id == generation and message in self._done


class WorkerConsumer(Consumer):
    """Faust's aiokafka consumer, acking into the commit only what ``done`` allows."""

    done: ClassVar[DoneRecords]
    bundle_records: ClassVar[int] = DEFAULT_BUNDLE_RECORDS
    _jumps: dict[TP, tuple[int, int]]  # per partition, the last jump in offsets it rewound
    _taken: dict[TP, list[int]]  # acked offsets _new_offset took for the commit under way
    # per partition, the last bundle handed to its stream, weakly: a bundle its agent has
    # finished is not kept alive here with every record in it (up to bundle_records)
    _queued: dict[TP, ref[Bundle]]
    # per partition, the offset the last seek to the committed offsets set as its read
    # offset, until a record of it is delivered: the next record to read, not the last read
    _sought: dict[TP, int]
    # per partition, (last record delivered, aiokafka's position past it) when the offsets
    # between hold no record (transaction markers, aborted records), as of the last fetch
    _markers: dict[TP, tuple[int, int]]
    # partitions whose noted markers two fetches in a row found: the commit may pass them
    # (_past_last_markers)
    _passed: set[TP]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._jumps, self._taken, self._queued, self._sought = {}, {}, {}, {}
        self._markers, self._passed = {}, set()

    async def perform_seek(self) -> None:
        """Faust's, which sets each partition's read offset to its committed offset: the
        next record to read, where a delivery sets it to the last record read (``_followed``
        tells the two apart)."""
        await super().perform_seek()
        read = self._read_offset
        self._sought = {tp: o for tp, o in read.items() if o and tp.topic in self.done.topics}
        self._markers.clear()
        self._passed.clear()

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust's, except for our topics a gap may begin at the committed offset itself.

        Faust's leaves out the committed offset (it starts a gap one past it), but the
        committed offset is the next record to process: when it is a transaction's commit
        marker, which a consumer never receives, the commit waited for it for ever (seen with
        a transactional producer: tests/integration/test_transactional_input.py).
        """
        if tp.topic not in self.done.topics:
            return await super()._add_gap(tp, offset_from, offset_to)
        committed = self._committed_offset[tp]
        offset_from = max(offset_from, committed or 0)
        if offset_from <= offset_to:
            gaps = self._gap[tp]
            gaps.addi(offset_from, offset_to + 1)  # the interval excludes its end
            gaps.merge_overlaps()
        return None

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

    async def on_task_error(self, exc: BaseException) -> None:
        """An agent failed a batch: stop the worker rather than go on without it.

        Faust commits what was done and restarts the agent, which would apply later
        records before the failed ones; when those come again (after a restart), every
        key that moved on past them skips them, and their counts are lost. Stopping the
        worker makes its supervisor start it again from the last commit, in order.
        """
        await super().on_task_error(exc)  # Faust's: commit what was done
        exit_if_stop_hangs(CRASH_EXIT_S)  # streams.runtime.processes
        await self.app.crash(exc)  # the worker exits, failed

    def ack(self, message: Message) -> bool:
        commit = self.done.may_commit(message, self.app.consumer_generation_id)
        if isinstance(message, Bundle):
            return self._ack_bundle(message, commit)
        if commit:
            return bool(super().ack(message))
        return self._release(message, 1)

    def _ack_bundle(self, bundle: Bundle, commit: bool) -> bool:
        if not commit:
            return self._release(bundle, len(bundle.records))
        with ack_lock:
            if bundle.acked:
                return False
            bundle.acked = True
            self._unacked_messages.discard(bundle)
        ack = super().ack
        return any([ack(record) for record in bundle.records])

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's, over the acked offsets not committed yet, each counted once.

        Faust's list of acked offsets can hold an offset twice: a gap's offsets join the
        list but not its index, so a later ack of one is appended again, and an ack landing
        while a commit is in flight is appended again after the commit took it out. It can
        also hold offsets below the committed one. Its run of consecutive offsets then ends
        at the first repeat, and the commit moved one offset per commit: in the two-worker
        test a partition stayed 668 records behind its end for minutes after everything was
        processed. So the gaps' offsets join the list first (as Faust's would join them
        after), then the list is made the sorted set of uncommitted offsets, and its index
        agrees with it (a later ack of a listed offset is not appended again).

        Faust also commits past one missing offset at the head (its read offsets point one
        past the committed one after a seek). Our topics have no compaction, and the offsets
        of a transaction's markers are recorded as gaps once the record after them comes
        (``_gather``, from the committed offset on; a partition's last markers are passed
        once two fetches found them and every record before them is acked:
        ``_past_last_markers``), so a missing head is a record not processed: nothing is
        committed until it is acked (or lies in a gap), never past it.
        """
        acked = self._acked.get(tp)
        if not acked:  # nothing to commit, unless the partition's last markers are next
            committed = self._committed_offset.get(tp)
            past = self._past_last_markers(tp, committed)
            return None if past == committed else past
        _join_gaps(acked, self._gap.get(tp))
        committed = self._committed_offset[tp]
        unique = sorted({offset for offset in acked if offset >= (committed or 0)})
        acked[:] = unique
        index = self._acked_index[tp]
        index.clear()
        index.update(unique)
        if tp.topic in self.done.topics and committed is not None:
            head_missing = not unique or unique[0] != committed
            if head_missing and not self._gap[tp].at(committed):
                return None
        offset = super()._new_offset(tp)
        self._taken[tp] = unique[: len(unique) - len(acked)]  # out of the list until it lands
        return self._past_last_markers(tp, offset)

    def _past_last_markers(self, tp: TP, reached: int | None) -> int | None:
        """The offset to commit: ``reached`` (the offset after the last record acked in a
        run, or the committed one), or when that is the first of the partition's last
        markers, which two fetches found (``_note_markers``), the offset past them. Every
        record up to them is processed then, so the commit skips only offsets that hold
        none; otherwise the group's committed offset stood one below the end offset, and lag
        tools that read it (``kafka-consumer-groups``, Burrow) showed the partition behind."""
        if tp not in self._passed or reached is None:
            return reached
        last, position = self._markers[tp]
        if reached == last + 1 and self._followed(tp, self._read_offset.get(tp)) == last:
            return position
        return reached

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        """Faust's, except that a commit the broker did not take changes nothing.

        Faust records the offsets as committed even when the commit failed (a rebalance
        under way: ``CommitFailedError``), and ``_new_offset`` has already taken their acked
        offsets out of its list. The worker then believed in a commit the broker never had:
        it dropped later acks below it, and once a seek brought back the broker's offset,
        the commit waited for acks that were gone (the head rule above). So on a failed
        commit the committed offsets and the taken acks are put back.
        """
        before = {tp: self._committed_offset.get(tp) for tp in offsets}
        taken, self._taken = self._taken, {}
        committed = await super()._commit_offsets(offsets, start_new_transaction)
        if not committed:
            for tp, offset in offsets.items():
                if self._committed_offset.get(tp) == offset:
                    self._committed_offset[tp] = before[tp]
                self._put_back(tp, taken.get(tp, []))
        return committed

    def _put_back(self, tp: TP, offsets: list[int]) -> None:
        """Acked offsets of a commit that failed, back in Faust's list (still assigned)."""
        if not offsets or tp not in self.assignment():
            return
        committed = self._committed_offset.get(tp) or 0
        index, acked = self._acked_index[tp], self._acked[tp]
        back = [o for o in offsets if o >= committed and o not in index]
        index.update(back)
        acked.extend(back)
        acked.sort()

    def committed(self, tp: TP) -> int | None:
        """The partition's committed offset as Faust holds it (set by the seek that follows
        each assignment, and by each commit since; None before any): where a worker that
        was just handed the partition resumes it."""
        offset = self._committed_offset.get(tp)
        return None if offset is None else int(offset)

    def commit_state(self) -> dict[str, dict[str, object]]:
        """Per partition of our topics, what the commit is waiting for: the committed and
        read offsets, the acked offsets not committed yet (first few) and the gaps."""
        out: dict[str, dict[str, object]] = {}
        for tp, committed in list(self._committed_offset.items()):
            if tp.topic in self.done.topics:
                out[f"{tp.topic}:{tp.partition}"] = {
                    "committed": committed,
                    "read": self._read_offset.get(tp),
                    "acked": sorted(self._acked.get(tp, ()))[:5],
                    "gaps": [(g.begin, g.end) for g in sorted(self._gap.get(tp, ()))][:5],
                }
        return out

    def _release(self, message: Message, records: int) -> bool:
        with ack_lock:  # as Consumer.ack: acked, and no longer waited for
            if message.acked:
                return False
            message.acked = True
            self._unacked_messages.discard(message)
            self.done.released += records
        notify(self._waiting_for_ack)
        return False

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        """Faust's fetcher loop (``Consumer._drain_messages``), bundling our topics.

        Faust's own topics keep Faust's rules record by record (``_pass_on``). Our topics'
        records are gathered per partition and delivered as a ``Bundle`` when the fetch is
        done or the bundle is full (``_gather``), under one rule: a record is only ever
        passed on right after the last one delivered, so nothing is skipped unseen. Each
        fetch is read partition by partition (``_pass_fetch``), not through Faust's
        ``getmany``.
        """
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                await self.sleep(0)
                if self.should_stop:
                    continue
                await self._drain_fetch(timeout=1.0)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return  # stopping anyway
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _drain_fetch(self, timeout: float) -> None:
        """Pass on the records of one fetch, then rewind the partitions it cut short."""
        fetch = _Fetch()
        generation = self.app.consumer_generation_id
        fetched, active = await self._wait_next_records(timeout)
        if fetched is not None and not self.should_stop:
            await self._pass_fetch(fetched, active, fetch)
        for records in list(fetch.pending.values()):
            await self._deliver_bundle(records, fetch)
        for tp in fetch.rewind:
            await self._rewind(tp)
        if self.flow_active and self.app.consumer_generation_id == generation:
            self._note_markers(fetch)
        else:  # _pass_fetch dropped the rest of the fetch then, past aiokafka's position
            self._markers.clear()
            self._passed.clear()

    async def _pass_fetch(
        self, records: Mapping[TP, list[Any]], active: set[TP] | None, fetch: _Fetch
    ) -> None:
        """Faust's ``getmany`` and the body of its fetcher loop, one partition at a time.

        The same records pass, in the same order within each partition: every record
        aiokafka handed over, while the flow runs in the generation the fetch ended in, of a
        partition active or buffered (paused ones' are dropped); with the flow stopped, a
        seek to the committed offsets instead. What differs is the cost: Faust's
        ``getmany`` is an async generator that takes the partitions' records in turns (a
        round-robin for its agents' sake, which bundles make moot) and reads the
        partition's high watermark for its monitor for every record; here a plain loop,
        and the watermark once per partition and fetch. The bench's bundled row measured
        what that saved: 116,000-144,000 records/s before, 132,000-192,000 after (3 pinned
        pairs on 2026-12-06, fetches held at most 0.1 s as the worker's are, 1 MiB a
        partition).
        """
        if not self.flow_active:
            self.log.dev("fetched while flow not active: seek back to committed offsets")
            try:
                await self.perform_seek()
            except Exception as exc:  # as Faust's getmany: the next fetch tries again
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        generation = self.app.consumer_generation_id
        to_message, since_yield = self._to_message, 0
        for tp, batch in records.items():
            ours, tracked = tp.topic in self.done.topics, False
            for record in batch:
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    self.log.dev("flow stopped or generation changed: rest of fetch dropped")
                    return  # as Faust's getmany: the seek that follows rewinds
                if not (active is None or tp in active or tp in self._buffered_partitions):
                    continue
                if not tracked:
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    tracked = True
                # built before any await, as getmany did: it carries this generation's id,
                # so a rebalance during the yield or commit below leaves it stale, skipped
                message = to_message(tp, record)
                since_yield += 1
                if since_yield > YIELD_EVERY:
                    await asyncio.sleep(0)
                    since_yield = 0
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
                if ours:
                    await self._gather(tp, message, fetch)
                else:
                    await self._pass_on(tp, message)

    def _note_markers(self, fetch: _Fetch) -> None:
        """Note, per partition of ours, when aiokafka's position stands past the offset after
        the last record delivered. Every record it handed on was delivered (the partition was
        not cut short), so the offsets between hold none: a transaction's markers, or its
        records when it was aborted. No record comes for a partition's last marker, so without
        this its lag would read 1 for as long as the partition stays quiet. ``_pass_fetch``
        (as Faust's getmany) also drops records aiokafka handed over when the flow stops or
        the generation changes (``_drain_fetch`` notes nothing then) and those of a
        partition neither active nor buffered (paused): such a partition is not noted either.

        The same offsets found again at the next fetch, from the same record, are known to
        hold no record (as a jump seen twice is, ``_gather``): once every record up to them
        is processed, the commit passes them (``_past_last_markers``)."""
        yielded = self._get_active_partitions() | self._buffered_partitions
        for tp in self.assignment():
            if tp.topic not in self.done.topics or tp in fetch.cut:
                continue
            last = self._followed(tp, self._read_offset.get(tp)) if tp in yielded else None
            position = self._thread.position_now(tp)  # type: ignore[attr-defined]
            if last is None or position is None or position <= last + 1:
                self._markers.pop(tp, None)
                self._passed.discard(tp)
                continue
            if self._markers.get(tp) == (last, position):
                self._passed.add(tp)
                self._acked.setdefault(tp, [])  # a commit looks only at partitions listed
            else:
                self._passed.discard(tp)
                self._markers[tp] = (last, position)

    def past_markers(self, tp: TP) -> tuple[int, int] | None:
        """(last record delivered, the offset past the markers that follow it) of a partition,
        while it still holds (no record delivered since)."""
        noted = self._markers.get(tp)
        if noted is None or noted[0] != self._followed(tp, self._read_offset.get(tp)):
            return None
        return noted

    async def _pass_on(self, tp: TP, message: Message) -> None:
        """Faust's rules for Faust's own topics (changelogs): a jump in offsets is a gap."""
        offset, read = message.offset, self._read_offset[tp]
        if read is not None and offset < read:
            return  # Faust drops a record below its read offset
        if read and offset - read > 1 and self.app.topics.acks_enabled_for(message.topic):
            await self._add_gap(tp, read + 1, offset)
        await self._deliver(message)
        self._read_offset[tp] = offset

    async def _gather(self, tp: TP, message: Message, fetch: _Fetch) -> None:
        """Add a record of our topics to its partition's bundle, if it follows on.

        Faust's loop takes any jump in offsets for a gap in the log (compaction, control
        records) and its commit counts a gap as processed. But a jump also comes from the
        fetch position moving past records that were never delivered: a seek to the
        committed offsets that finished in the middle of a fetch reset the read offset below
        records fetched and delivered already (then the next fetch "jumped" over them), and
        a delivery abandoned by a rebalance left records fetched but never handed on. The
        two-worker test lost 3,200 records of a partition that way, committed as a gap.
        So a jump cuts the partition's records short for this fetch and rewinds it to the
        last record delivered; only the same jump seen again, from the same record, is a
        gap in the log, and only then is it recorded as one.
        """
        offset, read = message.offset, self._read_offset[tp]
        if tp in fetch.cut or (read is not None and offset < read):
            return  # cut short, or delivered already
        last = fetch.last.get(tp, self._followed(tp, read))
        if last is not None and offset > last + 1:
            if self._jumps.get(tp) != (last, offset):
                self._jumps[tp] = (last, offset)
                fetch.cut.add(tp)
                fetch.rewind.add(tp)
                return
            await self._add_gap(tp, last + 1, offset)  # the log itself has no such records
        records = fetch.pending.setdefault(tp, [])
        records.append(message)
        fetch.last[tp] = offset
        if len(records) >= self.bundle_records:
            await self._deliver_bundle(records, fetch)

    def _followed(self, tp: TP, read: int | None) -> int | None:
        """The offset a partition's next record must follow on from: the last delivered,
        or with nothing delivered since the seek to the committed offset, the one before it
        (Faust's committed offset is the next record to process). A first record past it is
        a jump too: taken for one that follows on, the committed offset was never acked nor
        in a gap, and the commit of the partition waited for it for ever."""
        if read is not None:
            # right after a seek, the read offset is the committed one: the record to come
            return read - 1 if self._sought.get(tp) == read else read
        committed = self._committed_offset.get(tp)
        return committed - 1 if committed else None

    async def _deliver_bundle(self, records: list[Message], fetch: _Fetch) -> None:
        """Deliver a partition's gathered records; the read offset moves only once they
        are handed on in the generation they were fetched in (Faust's stream skips a
        record of an older one). Otherwise the partition is cut short for this fetch."""
        tp, generation = records[0].tp, records[0].generation_id
        fetch.pending.pop(tp, None)
        fresh = generation == self.app.consumer_generation_id
        if fresh and self._join_queued(tp, records):
            self._read(tp, records[-1].offset)
            return
        bundle = Bundle.of(records)
        delivered = fresh and await self._deliver(bundle)
        if delivered and self.app.consumer_generation_id == generation:  # else a seek decides
            self._read(tp, records[-1].offset)
            self._queued[tp] = ref(bundle)
            return
        fetch.cut.add(tp)  # a rebalance or stop: the seek that follows rewinds it

    def _read(self, tp: TP, offset: int) -> None:
        """The partition's records up to ``offset`` are delivered: its read offset."""
        self._read_offset[tp] = offset
        self._sought.pop(tp, None)

    def _join_queued(self, tp: TP, records: list[Message]) -> bool:
        """Hand ``records`` on by adding them to the partition's last bundle, if it still
        waits in its stream's queue: they follow on from it (the read offset is its last
        record), and no agent has seen it yet."""
        held = self._queued.get(tp)
        queued = held() if held is not None else None  # None once its agent is done with it
        if queued is None or queued.records[-1].offset != self._read_offset[tp]:
            return False
        last = queued.records[-1].offset
        if not self.app.topics.acks_enabled_for(tp.topic):
            return False  # its stream would never mark a bundle taken (tracked)
        if records[0].offset <= last and queued.generation_id == records[0].generation_id:
            # fetched again from a rewind to its last record, which this generation's agent
            # gets in that bundle: never twice in one batch (a bundle of an older
            # generation is skipped by its stream, so its records are delivered anew)
            records = [r for r in records if r.offset > last]
            if not records:
                return True
        return queued.join(records, self.bundle_records)

    async def _deliver(self, message: Message) -> bool:
        """Hand a record or bundle to its stream: False when a rebalance or stop abandoned
        a delivery blocked on a full queue (Faust's rule: ``suspend_flow`` wins)."""
        delivery = self.callback(message)
        result = await self.wait_first(delivery, self.suspend_flow.wait())
        return not result.stopped and delivery in result.done

    async def _rewind(self, tp: TP) -> None:
        """Fetch a cut-short partition again from its last delivered record (a record
        delivered twice is left out by ``streams.runtime.commit.ProcessedOffsets``)."""
        read = self._read_offset[tp]
        target = read if read is not None else (self._committed_offset.get(tp) or 0)
        if tp not in self.assignment():
            return  # revoked meanwhile: its next owner starts from the commit
        last, offset = self._jumps[tp]
        self.log.info(
            "%s:%s: offsets jumped from %s to %s; fetching again from %s",
            tp.topic, tp.partition, last, offset, target,
        )  # fmt: skip
        await self._thread.seek_wait({tp: target})
        self._read_offset[tp] = target if target else None


def _join_gaps(acked: list[int], gaps: Any) -> None:
    """Add the offsets of the gaps up to the newest acked offset to ``acked``, and take
    them out of ``gaps`` (Faust's ``_new_offset`` does so, after the list is deduplicated).
    A gap found by ``_gather`` ends with the record after the jump (as Faust's own loop
    records it), so a gap past the newest acked offset is left until that record is acked."""
    if not gaps:
        return
    top = max(acked)
    spans = sorted(gaps.overlap(0, top), key=lambda gap: gap.begin)
    if spans:
        offsets = [offset for gap in spans for offset in range(gap.begin, gap.end)]
        acked.extend(offsets)
        gaps.chop(0, max(offsets[-1], top) + 1)


@dataclass
class _Fetch:
    """What one fetch gathered of our topics, per partition."""

    pending: dict[TP, list[Message]] = field(default_factory=dict)
    last: dict[TP, int] = field(default_factory=dict)  # the newest record gathered
    cut: set[TP] = field(default_factory=set)  # the rest of the partition is left out
    rewind: set[TP] = field(default_factory=set)  # to be fetched again from its read offset


class KeptQueuesApp(faust.App):
    """Faust's app, whose flow control never empties an agent's queue (the module's
    docstring, "Keep what was queued")."""

    def FlowControlQueue(self, maxsize: int | None = None, *, clear_on_resume: bool = False) -> Any:
        return super().FlowControlQueue(maxsize, clear_on_resume=False)


class BoundedStopWorker(faust.Worker):
    """Faust's worker runner, whose stop after SIGTERM or SIGINT ends within ``STOP_EXIT_S``.

    With the broker gone, Faust's stop waits on it (seen stopping soak runs: SIGTERM, and
    nothing after 20 s); an orchestrator's grace period would end it with SIGKILL anyway.
    """

    def _on_sigterm(self) -> None:
        exit_if_stop_hangs(STOP_EXIT_S, "SIGTERM")
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        exit_if_stop_hangs(STOP_EXIT_S, "SIGINT")
        super()._on_sigint()


def route_acks_through_consumer() -> None:
    """Make every stream ack go through ``Consumer.ack`` (so ``WorkerConsumer.ack``).

    Faust's compiled stream iterator (``faust._cython.streams.StreamIterator.after``)
    inlines ``Message.ack`` and ``Consumer.ack``: it appends the *event's* offset to the
    consumer's acked list itself. A bundle is one event standing at its last record's
    offset, so only that offset was acked, never the records before it; the first
    commit went to the end of the first bundle and every later one found a gap before
    the next bundle's offset and committed nothing (issue 11: committed 3,875 of 20,000).
    It also skipped the done-only rule above. The pure-Python iterator calls
    ``event.ack()`` -> ``Message.ack`` -> ``consumer.ack``, as our consumer needs; its
    extra cost is per event, and an event is a whole bundle here.
    """
    faust.streams._CStreamIterator = None  # type: ignore[attr-defined]  # not exported


def aiokafka_producer(app: AppT) -> Any:
    """The aiokafka producer under Faust's, started (record batches are built on it)."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


def allow_buffered_records(app: AppT, records: int) -> None:
    """Faust blocks intake once more than 100 records wait in its producer buffer
    (faust#173); dead letters of one bad batch can be thousands (flushed before commits)."""
    app.producer.buffer.max_messages = records


def stored_rows(table: Any) -> Iterator[tuple[Any, Any]]:
    """(key, value) of every row the table's store holds for this worker's active
    partitions, each decoded on its own: a value the table's codec cannot decode comes as
    the exception it raised, so one bad row is contained (``TableCache``), never fatal.

    Not ``table[key]``: inside an agent Faust looks a key up in the database of the
    current event's partition only, so rows of the worker's other partitions went missing.
    """
    store = table.data
    if not isinstance(store, SerializedStore):  # the memory store holds decoded values
        yield from list(store.items())
        return
    for key_bytes, value_bytes in store._iteritems():
        try:
            key = store._decode_key(key_bytes)
        except Exception as exc:  # an undecodable key: the row cannot even be named
            yield repr(key_bytes), exc
            continue
        try:
            yield key, store._decode_value(value_bytes)
        except Exception as exc:
            yield key, exc


def stored_row(table: Any, partition: int, key: str) -> Any:
    """One row of the table's store, decoded as ``stored_rows`` decodes it, or None: read
    from the database of ``partition``, whatever the current event's partition (a ticket
    the cache let go of, ``streams.processing.held_tickets``, is read back this way)."""
    store = table.data
    if not isinstance(store, RocksDBStore):  # the memory store holds decoded values
        return store.get(key)
    value = store._db_for_partition(partition).get(store._encode_key(key))
    return None if value is None else store._decode_value(value)


ROCKSDB_MEMORY = {  # what a RocksDB database holds in memory, by RocksDB's own account
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}


# A memtable takes memory in arena blocks, by default an eighth of the write buffer (1 MiB of
# 8): every table partition's memtable held a whole block from its first write, 48 MiB for
# 6 tables x 8 partitions that held a few MiB of rows (make bench: memtables at 50 MB, with
# 26,504 tickets). Small blocks make what the memtables hold follow their rows.
ARENA_BLOCK_BYTES = 64 << 10


class SharedStoreMemory:
    """One memory budget for every RocksDB database of the worker, RocksDB's "single limit"
    set-up: one LRU block cache of ``budget_bytes`` shared by all table partitions, index and
    filter blocks kept in it, and the memtables charged to it by a write buffer manager (at
    most half of it). Faust opens each partition with a cache of its own, so the store's
    memory could only be bounded per partition: 6 tables x 8 partitions x 32 MB = 1.5 GB,
    a bound the soak's worker crept toward for the whole hour (+60 MiB in its last half hour
    with its rows flat)."""

    def __init__(self, budget_bytes: int, write_buffer_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.write_buffer_bytes = write_buffer_bytes
        self.cache = rocksdict.Cache(budget_bytes)
        self.manager = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            budget_bytes // 2, False, self.cache
        )

    def adopt(self, table: Any) -> None:
        """Open this table's partitions under the shared budget: its store's options are
        replaced before any partition is opened (at assignment)."""
        store = table.data
        if isinstance(store, RocksDBStore) and store.use_rocksdict:  # python-rocksdb: Faust's
            store.rocksdb_options = _SharedOptions(store.rocksdb_options, self)

    def options(self, faust_options: RocksDBOptions) -> Any:
        """The options of one partition's database: Faust's file limits, the shared memory."""
        table_options = rocksdict.BlockBasedOptions()
        table_options.set_block_cache(self.cache)
        table_options.set_cache_index_and_filter_blocks(True)
        table_options.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table_options.set_bloom_filter(faust_options.bloom_filter_size, True)
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if faust_options.max_open_files is not None:
            options.set_max_open_files(faust_options.max_open_files)
        options.set_target_file_size_base(faust_options.target_file_size_base)
        options.set_write_buffer_size(self.write_buffer_bytes)
        options.set_arena_block_size(ARENA_BLOCK_BYTES)
        options.set_max_write_buffer_number(2)
        options.set_write_buffer_manager(self.manager)
        options.set_block_based_table_factory(table_options)
        return options

    def held(self, tables: Iterable[Any]) -> dict[str, int]:
        """Bytes held, by kind: the memtables and table readers summed over the partitions
        open in this process, and the shared cache once, less the memtables charged to it
        (an upper bound: the manager reserves cache in steps and returns it late)."""
        totals = dict.fromkeys(ROCKSDB_MEMORY, 0)
        for table in tables:
            for db in list(getattr(table.data, "_dbs", {}).values()):
                for kind, name in ROCKSDB_MEMORY.items():
                    totals[kind] += db.property_int_value(name) or 0
        totals["block_cache"] = max(0, self.cache.get_usage() - self.manager.get_usage())
        return totals


class _SharedOptions(RocksDBOptions):
    """Faust's RocksDB options of one table, opening each partition under the shared budget
    (Faust's ``Store._open_for_partition`` opens a partition through ``open``)."""

    def __init__(self, faust_options: RocksDBOptions, shared: SharedStoreMemory) -> None:
        vars(self).update(vars(faust_options))
        self.shared = shared

    def open(self, path: Path, *, read_only: bool = False) -> Any:
        del read_only  # Faust's rocksdict driver opens read-write too
        return rocksdict.Rdict(str(path), options=self.as_options())

    def as_options(self) -> Any:
        return self.shared.options(self)


def put_rocksdb(store: Any, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
    """Write encoded records straight into a partition's RocksDB database (no Faust
    "current event" needed), keeping Faust's key index in step for deletes."""
    batch = rocksdict.WriteBatch(raw_mode=True)  # one write, as Faust's apply_changelog_batch
    for key_bytes, value_bytes in records:
        if value_bytes is None:
            batch.delete(key_bytes)
            store._key_index.pop(key_bytes, None)
        else:
            batch.put(key_bytes, value_bytes)
    store._db_for_partition(partition).write(batch)


class BulkRecovery(Recovery):
    """Faust's recovery, whose active changelog partitions are first read in bulk into
    their RocksDB stores (``streams.runtime.restore``): Faust's own reading then starts at
    their ends and finds nothing left, or goes on where the bulk read stopped."""

    def __init__(self, app: AppT, bootstrap_servers: list[str]) -> None:
        tables = app.tables
        super().__init__(app, tables, beacon=tables.beacon, loop=tables.loop)
        self.bootstrap_servers = bootstrap_servers  # Settings.bootstrap_list: host:port each
        # Faust gives _build_offsets broker_request_timeout, then cancels it: stop before
        self.deadline_s = 0.75 * float(app.conf.broker_request_timeout)
        self.restored = 0  # changelog records read in bulk, since the start

    def install(self) -> BulkRecovery:
        """Be the recovery of the app's tables (before they start)."""
        self.app.tables._recovery = self  # type: ignore[attr-defined]
        return self

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if title == "active" and tps:
            for tp, offset in (await self._read_in_bulk(tps, destination)).items():
                destination[tp] = offset  # a Counter: update() would add to it

    async def _read_in_bulk(self, tps: set[TP], start: Mapping[TP, int]) -> dict[TP, int]:
        spans = {
            TopicPartition(tp.topic, tp.partition): Span(start[tp] + 1, self.active_highwaters[tp])
            for tp in tps
            if isinstance(self._store(tp), RocksDBStore)
        }
        if not any(span.last >= span.first for span in spans.values()):
            return {}
        conf = self.app.conf
        auth = credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
        consumer = changelog_consumer(self.bootstrap_servers, conf.broker_client_id, dict(auth))
        await consumer.start()
        began, before = time.monotonic(), self.restored
        try:
            done = await read_changelogs(consumer, spans, self._write, self.deadline_s)
        finally:
            await consumer.stop()
        took = time.monotonic() - began
        logger.info("read %d changelog records in bulk in %.1f s", self.restored - before, took)
        return {TP(tp.topic, tp.partition): offset for tp, offset in done.items()}

    def _write(self, tp: TopicPartition, rows: list[tuple[bytes, bytes | None]], last: int) -> None:
        faust_tp = TP(tp.topic, tp.partition)
        store = self._store(faust_tp)
        put_rocksdb(store, tp.partition, rows)
        store.set_persisted_offset(faust_tp, last)
        self.restored += len(rows)

    def _store(self, tp: TP) -> Any:
        return cast(Any, self.tp_to_table[tp]).data  # a Table's store (Collection.data)


@dataclass(frozen=True)
class Fetching:
    """How long the broker may hold a fetch for more records (aiokafka's ``fetch_min_bytes``
    and ``fetch_max_wait_ms``; Faust fixes them at 1 byte and 1500 ms)."""

    min_bytes: int = 1
    max_wait_ms: int = 1500


class FetchingConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, whose aiokafka consumer fetches as ``fetching`` says and
    rejoins the group as the member ``member`` remembers."""

    fetching: ClassVar[Fetching] = Fetching()
    member: ClassVar[RememberedMember | None] = None

    def _create_worker_consumer(self, transport: Any) -> Any:
        """Faust's consumer, reading only committed transactions (Faust reads uncommitted
        ones unless its own exactly-once guarantee is on): the events of a producer's
        aborted transaction never happened, and must never be counted."""
        consumer = super()._create_worker_consumer(transport)
        # read when it starts its fetcher
        consumer._fetch_min_bytes = self.fetching.min_bytes
        consumer._fetch_max_wait_ms = self.fetching.max_wait_ms
        consumer._isolation_level = "read_committed"
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        rejoin_as_remembered_member(self._ensure_consumer(), self.member)

    def position_now(self, tp: TP) -> int | None:
        """aiokafka's position of a partition, without waiting: the offset after what it has
        handed on, skipped transaction markers and aborted records included (None when not
        known: not assigned, or a seek pending)."""
        subscription = self._ensure_consumer()._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        state = assignment.state_value(tp) if assignment is not None else None
        try:
            return int(state.position) if state is not None else None
        except (AssertionError, TypeError):  # none, or reset by aiokafka's thread meanwhile
            return None

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        if self.member is not None:
            self.member.keep(self._ensure_consumer()._coordinator.member_id)
        await super().on_partitions_assigned(assigned, generation_id)


def rejoin_as_remembered_member(consumer: Any, member: RememberedMember | None) -> bool:
    """Give a started consumer, before it first joins, the member id of the worker this
    data dir last ran: the broker still counts that member until its session expires, so a
    restart after a crash rebalances at once instead of waiting the session out. An id the
    broker no longer knows is answered UNKNOWN_MEMBER_ID, and aiokafka joins as new."""
    coordinator = getattr(consumer, "_coordinator", None)
    remembered = member.recall() if member is not None else None
    if (
        remembered is None
        or coordinator is None
        or coordinator._group_instance_id is not None  # static membership has its own id
        or coordinator.member_id != JoinGroupRequest.UNKNOWN_MEMBER_ID
        or consumer._subscription.subscription is not None  # the join may be under way
    ):
        return False
    coordinator.member_id = remembered
    return True


def worker_transport(
    app: AppT,
    done: DoneRecords,
    bundle_records: int = DEFAULT_BUNDLE_RECORDS,
    fetching: Fetching = Fetching(),
    member: RememberedMember | None = None,
) -> Transport:
    """The app's ``kafka://`` transport, with a consumer bound to ``done``; set it as
    ``app.transport`` before the consumer is first used."""
    thread_attrs = {"fetching": fetching, "member": member}
    thread = type("WorkerConsumerThread", (FetchingConsumerThread,), thread_attrs)
    attrs = {
        "done": done,
        "bundle_records": bundle_records,
        "_new_consumer_thread": lambda self: thread(self, loop=self.loop, beacon=self.beacon),
    }
    consumer = type("WorkerConsumer", (WorkerConsumer,), attrs)
    transport: type[Transport] = type("WorkerTransport", (Transport,), {"Consumer": consumer})
    return transport(app.conf.broker_consumer, app)


# -- what the worker relies on, fingerprinted (tests/unit/runtime/test_faust_drift.py) -----------
FINGERPRINTS = Path(__file__).with_name("faust_fingerprints.json")
RELIED_ON: dict[str, str] = {
    "faust.transport.consumer.Consumer._drain_messages": (
        "copied into WorkerConsumer._drain_messages (bundles): re-read and copy its changes"
    ),
    "faust.transport.consumer.Consumer.ack": (
        "WorkerConsumer.ack acks a bundle's records through it; _release mirrors its bookkeeping"
    ),
    "faust.transport.consumer.Consumer._new_offset": (
        "commits need every record's offset acked, with no gap: why bundles ack per record;"
        " WorkerConsumer._new_offset joins the gaps' offsets and makes its list a sorted set"
        " first"
    ),
    "faust.transport.consumer.Consumer.perform_seek": (
        "resets read offsets after seek_to_committed (to the committed offsets, which"
        " WorkerConsumer.perform_seek notes for _followed): why ProcessedOffsets exists; sets"
        " _committed_offset (0 as None), which WorkerConsumer.committed reads for the lag"
    ),
    "faust.transport.consumer.Consumer.on_partitions_revoked": (
        "clears _committed_offset of every revoked partition: committed() is None from then"
        " until the seek that ends the next recovery"
    ),
    "aiokafka.consumer.subscription_state.Assignment.state_value": (
        "position_now reads each partition's TopicPartitionState through it"
    ),
    "aiokafka.consumer.fetcher.PartitionRecords._unpack_records": (
        "skips control batches (and, read_committed, aborted ones), moving next_fetch_offset,"
        " the position position_now reads, past them: what _note_markers relies on"
    ),
    "aiokafka.consumer.subscription_state.TopicPartitionState.consumed_to": (
        "sets the position position_now reads (past skipped control batches)"
    ),
    "aiokafka.consumer.subscription_state.TopicPartitionState.position": (
        "what position_now reads (it asserts a position is known: caught)"
    ),
    "aiokafka.consumer.subscription_state.SubscriptionState.subscription": (
        "the subscription whose assignment position_now reads (None before one)"
    ),
    "aiokafka.consumer.consumer.AIOKafkaConsumer.committed": (
        "what seek_to_committed answers per partition (None for none): committed() relies on it"
    ),
    "faust.transport.consumer.Consumer._add_gap": (
        "called by the copied fetch loop; WorkerConsumer._add_gap writes _gap as it does"
    ),
    "faust.app.base.App.FlowControlQueue": "KeptQueuesApp asks it for queues never cleared",
    "faust.channels.Channel.queue": (
        "asks for queues cleared on resume: what KeptQueuesApp overrides"
    ),
    "mode.utils.queues.FlowControlEvent.resume": (
        "empties the managed queues: why KeptQueuesApp keeps them out of it"
    ),
    "faust.transport.consumer.Consumer._commit_offsets": (
        "records the offsets as committed even when the commit failed: WorkerConsumer puts"
        " them and the taken acks back (committed() must never read a refused offset)"
    ),
    "faust.transport.consumer.Consumer._filter_committable_offsets": (
        "calls _new_offset (which takes acks out) before the commit"
    ),
    "faust.transport.consumer.Consumer.getmany": (
        "copied into WorkerConsumer._pass_fetch (a plain loop per partition): every record"
        " aiokafka handed over unless the flow stops, the generation changes or the partition"
        " is neither active nor buffered (_note_markers assumes it); a seek when the flow"
        " stopped. Re-read and copy its changes"
    ),
    "faust.transport.consumer.Consumer._wait_next_records": (
        "what _drain_fetch awaits for a fetch, as getmany does: (records per partition,"
        " the active partitions)"
    ),
    "faust.transport.drivers.aiokafka.Consumer._to_message": (
        "what _pass_fetch builds each record's ConsumerMessage with, as getmany does"
    ),
    "faust.transport.consumer.Consumer._get_active_partitions": (
        "the partitions _pass_fetch passes records of (with _buffered_partitions), as"
        " getmany: _note_markers"
    ),
    "faust.transport.consumer.Consumer._filter_tps_with_pending_acks": (
        "a commit looks only at partitions listed in _acked: _note_markers lists one whose"
        " last markers the commit may pass"
    ),
    "aiokafka.consumer.fetcher.FetchResult.getall": (
        "moves the position only as records are handed on (or batches skipped), never past"
        " a record still buffered: the commit may pass the offsets it skipped past the last"
        " record (_note_markers, _past_last_markers)"
    ),
    "mode.worker.Worker._on_sigterm": "BoundedStopWorker arms the stop's deadline first",
    "mode.worker.Worker._on_sigint": "BoundedStopWorker arms the stop's deadline first",
    "faust.worker.Worker._on_sigterm": "BoundedStopWorker arms the stop's deadline first",
    "faust.transport.drivers.aiokafka.Consumer._new_consumer_thread": (
        "worker_transport replaces it to build a FetchingConsumerThread"
    ),
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer": (
        "FetchingConsumerThread sets fetch_min_bytes, fetch_max_wait_ms and isolation_level"
        " (read_committed) on its result"
    ),
    "aiokafka.consumer.consumer.AIOKafkaConsumer.start": (
        "builds its Fetcher from _fetch_min_bytes, _fetch_max_wait_ms and _isolation_level,"
        " and its GroupCoordinator, whose first join waits for a subscription"
    ),
    "aiokafka.consumer.group_coordinator.GroupCoordinator.__init__": (
        "member_id and _group_instance_id, which rejoin_as_remembered_member reads and sets"
    ),
    "aiokafka.consumer.group_coordinator.CoordinatorGroupRebalance.perform_group_join": (
        "sends the coordinator's member_id; resets it on UNKNOWN_MEMBER_ID"
    ),
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread.on_start": (
        "starts the consumer; FetchingConsumerThread sets the remembered member id after"
    ),
    "faust.transport.consumer.ConsumerThread.on_partitions_assigned": (
        "FetchingConsumerThread keeps the member id of each join first"
    ),
    "faust.transport.drivers.aiokafka.Consumer.seek_to_committed": (
        "WorkerConsumer.seek_to_committed rewinds partitions it leaves uncommitted"
    ),
    "faust.types.tuples.Message.ack": "the path an event's ack takes to Consumer.ack",
    "faust.types.tuples.ConsumerMessage.on_final_ack": "calls consumer.ack(self)",
    "faust.types.tuples.Message.__init__": "Bundle.of builds a ConsumerMessage positionally",
    "faust.streams.Stream._py_aiter": (
        "the iterator the worker uses: it must ack through event.ack() (issue 11), and mark"
        " a message of an acking topic tracked as it takes it (Bundle.join relies on it)"
    ),
    "faust.streams.Stream._c_aiter": (
        "disabled by route_acks_through_consumer: its StreamIterator inlines Consumer.ack"
    ),
    "faust.stores.rocksdb.Store._db_for_partition": (
        "put_rocksdb writes the database directly, stored_row reads it; it opens into _dbs,"
        " which SharedStoreMemory.held reads"
    ),
    "faust.stores.rocksdb.Store._open_for_partition": (
        "opens a partition through rocksdb_options.open, which SharedStoreMemory.adopt replaces"
    ),
    "faust.stores.rocksdb.Store.__init__": "sets rocksdb_options, which adopt replaces after",
    "faust.stores.rocksdb.RocksDBOptions": (
        "_SharedOptions overrides open and as_options (ttl and extra options are unused)"
    ),
    "faust.tables.recovery.Recovery._build_offsets": (
        "BulkRecovery reads the active changelogs in bulk after it, from the offsets it"
        " found, and moves them to where the bulk read ended"
    ),
    "faust.tables.recovery.Recovery._restart_recovery.fun": (
        "calls _build_highwaters (active_highwaters: the last offsets) before _build_offsets"
        " for the actives, then seeks to the offsets and reads what is left"
    ),
    "faust.tables.recovery.Recovery._add": "tp_to_table, which BulkRecovery reads",
    "faust.tables.manager.TableManager.recovery": (
        "creates the Recovery in _recovery unless set: BulkRecovery.install sets it"
    ),
    "faust.stores.rocksdb.Store.apply_changelog_batch": (
        "what Faust's recovery writes (raw key and value, persisted offset): BulkRecovery"
        " writes the same"
    ),
    "faust.stores.rocksdb.Store._iteritems": "stored_rows reads the raw rows of active partitions",
    "faust.stores.rocksdb.Store._get": (
        "looks up the current event's partition only: why stored_rows, not table[key]"
    ),
    "faust.stores.base.SerializedStore._decode_value": "stored_rows decodes each row alone",
    "faust.stores.base.SerializedStore._encode_key": "stored_row encodes the key it reads",
    "faust.stores.rocksdb.Store.set_persisted_offset": "the writer records the changelog offset",
    "faust.transport.producer.Producer.__init__": "buffer.max_messages (allow_buffered_records)",
    "faust.transport.drivers.aiokafka.Producer._ensure_producer": "aiokafka_producer",
    "aiokafka.producer.AIOKafkaProducer.send_batch": "the table writer sends record batches",
}


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            target = getattr(target, name)
        return target
    msg = f"cannot import {dotted}"
    raise ImportError(msg)


def fingerprint(dotted: str) -> str:
    """sha256 of the installed source of a function or class, whitespace-normalised."""
    target = _resolve(dotted)
    if isinstance(target, property):
        target = target.fget
    source = inspect.getsource(target)
    normal = "\n".join(line.rstrip() for line in source.splitlines() if line.strip())
    return hashlib.sha256(normal.encode()).hexdigest()[:16]


def record_fingerprints() -> None:
    """Write the fingerprints of the installed versions (after re-reading what changed)."""
    found = {name: fingerprint(name) for name in RELIED_ON}
    FINGERPRINTS.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":  # python -m streams.runtime.faust_internals --record
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python -m streams.runtime.faust_internals --record")
    record_fingerprints()
    print(f"recorded {len(RELIED_ON)} fingerprints in {FINGERPRINTS}")
