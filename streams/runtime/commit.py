"""The one owner of the sequence that makes a batch exactly-once in effect.

A batch is the records of one partition that one fetch brought (a ``Bundle``). Its
effects reach Kafka in this order, and only then is it done, so its offsets may be
committed (``BatchCommit.run``):

1. **apply**: the processors apply the records to the table copies (``TableCache``),
   which yields the changed keys, the dead letters and the contacts to forward;
2. **changelog acknowledged**: every changed key is produced to its table's changelog and
   the broker has acknowledged it;
3. **store written**: the same keys go into the local store, with the changelog offset;
4. **dead letters sent**: each rejected record, with its reason, to the dead-letter topic
   (Faust's producer, flushed before any commit);
5. **contacts acknowledged**: the forwarded contacts, acknowledged by the broker;
6. **done**: the batch may be committed; the process will not apply its records again.

Its figures are on /metrics from step 1 (a scrape shows no state older than its arrival), so
``ProcessedOffsets`` keeps two marks per partition for ``/stats``: applied (step 1) and done.

Any failure stops the sequence with the step's own error type, before step 6: nothing is
acknowledged, the table copies are dropped (re-read from the store), and the worker stops
(``WorkerConsumer.on_task_error``), so the batch is delivered again after the restart and
every key skips what it already holds (its stored offset). Changelog before store: a crash
in between leaves the changelog ahead, which recovery mends, never behind. The steps'
collaborators are arguments, so ``tests/unit/runtime/test_commit.py`` makes each fail.
This module imports nothing of faust or aiokafka (``streams.runtime.writers`` does).
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from streams.processing.table_cache import TableChanges

Encoded = list[tuple[bytes, bytes | None]]  # changelog records: key, value (None deletes)


class Forward(NamedTuple):
    """A record for the contacts topic: keyed by customer (``partition`` None: Kafka's
    default partitioner picks it) or, for a watermark mark, to one partition."""

    key: bytes
    value: bytes
    partition: int | None = None


@dataclass
class Batch:
    """What applying one bundle produced, for steps 2-5."""

    records: Sequence[Any]  # the source records (Kafka messages) applied
    changes: list[TableChanges] = field(default_factory=list)
    dead_letters: list[tuple[Any, Any]] = field(default_factory=list)  # (message, Rejected)
    contacts: list[Forward] = field(default_factory=list)  # contacts and watermark marks


class Changelog(Protocol):
    async def send(self, changes: TableChanges) -> tuple[Encoded, int]:
        """Produce, wait for the broker; the encoded records and the last offset."""
        ...


class Store(Protocol):
    def write(self, changes: TableChanges, encoded: Encoded, changelog_offset: int) -> None: ...


class Sender(Protocol):
    async def send(self, items: list[Any]) -> None: ...


class DoneMarker(Protocol):
    def mark(self, event: Any) -> None: ...


class Copies(Protocol):
    """The agent's table copies (``TableCache``)."""

    def in_flight(self) -> AbstractContextManager[None]:
        """Resets of the copies wait until the batch is done or failed."""
        ...

    def discard(self) -> None:
        """Drop the copies and their unwritten changes: the store is the truth again."""
        ...


class StepFailedError(RuntimeError):
    """A step of the commit sequence failed: the batch is not done and will come again."""

    step = 0


class ApplyFailedError(StepFailedError):
    """Step 1: a processor raised while applying the records (a defect)."""

    step = 1


class ChangelogNotAcknowledgedError(StepFailedError):
    """Step 2: the broker did not acknowledge a changelog record batch, after aiokafka's
    retries; the local store was not touched."""

    step = 2


class StoreWriteFailedError(StepFailedError):
    """Step 3: the local store refused a write (disk full, a closed database); the
    changelog is ahead, which the recovery after the restart mends.
    """

    step = 3


class DeadLettersNotSentError(StepFailedError):
    """Step 4: a dead letter could not be handed to the producer."""

    step = 4


class ContactsNotAcknowledgedError(StepFailedError):
    """Step 5: the broker did not acknowledge the forwarded contacts; the replay sends
    them again, and the customer side ignores a version it already has."""

    step = 5


class ProcessedOffsets:
    """The next offset to process of each partition, in this process.

    Faust starts the fetcher before it seeks the partitions to their committed offsets,
    and a partition with nothing committed is rewound to its beginning, so records fetched
    and processed in between came again, and each was counted and dead-lettered twice
    (issue 11). A record below the mark was processed by this process already (its batch
    completed step 6, or the worker would have stopped), so it is left out.
    """

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}  # done (step 6)
        self._applied: dict[tuple[str, int], int] = {}  # applied (step 1): on /metrics

    def fresh(self, records: list[Any]) -> list[Any]:
        """The records not processed yet, each once (a bundle's records are of one
        partition). A record twice in one batch would be applied twice: the stored rows
        every record is checked against are those of the batch's start."""
        if not records:
            return records
        start = self._next.get((records[0].topic, records[0].partition), 0)
        if records[0].offset >= start and _increasing(records):
            return records
        kept = []
        for r in records:
            if r.offset >= start:
                kept.append(r)
                start = r.offset + 1
        return kept

    def done(self, records: Sequence[Any]) -> None:
        _past(self._next, records)

    def applied(self, records: Sequence[Any]) -> None:
        """Step 1 is over: the records' effects are in the table copies, which /metrics
        reads, though not yet acknowledged by the broker."""
        _past(self._applied, records)

    def failed(self) -> None:
        """A step failed and the copies were dropped: only what was done is in them."""
        self._applied = dict(self._next)

    def of(self, topic: str) -> dict[int, int]:
        """The next offset to process of each partition of ``topic`` (for /stats)."""
        return {p: n for (t, p), n in self._next.items() if t == topic}

    def applied_of(self, topic: str) -> dict[int, int]:
        """One past the last record applied (step 1) of each partition of ``topic``."""
        return {p: n for (t, p), n in self._applied.items() if t == topic}


def _past(marks: dict[tuple[str, int], int], records: Sequence[Any]) -> None:
    """Move the partition's mark past the batch's last record (never back)."""
    if records:
        last = records[-1]
        key = (last.topic, last.partition)
        marks[key] = max(marks.get(key, 0), last.offset + 1)


def _increasing(records: list[Any]) -> bool:
    offsets = [r.offset for r in records]
    return all(map(operator.lt, offsets, offsets[1:]))


@dataclass
class BatchCommit:
    """Runs the numbered steps for one agent's batches (see the module docstring)."""

    changelog: Changelog
    store: Store
    dead_letters: Sender
    contacts: Sender
    done: DoneMarker
    processed: ProcessedOffsets
    copies: Copies

    failed: StepFailedError | None = None  # set by a failed step: no batch is applied after it

    async def run(self, event: Any, apply: Callable[[], Batch]) -> Batch | None:
        """The batch once done; None for a batch offered after a failed one, which is
        neither applied nor done (so never committed): the worker is stopping."""
        if self.failed is not None:
            # Faust's supervisor restarts a crashed agent at once (the log shows it), so it
            # can take the next bundles before the worker stops: their records, applied
            # after the failed ones, would make every key they touch skip the failed
            # records on the replay, and their counts would be lost
            return None
        with self.copies.in_flight():
            try:
                return await self._run(event, apply)
            except StepFailedError as exc:
                self.failed = exc
                raise

    async def _run(self, event: Any, apply: Callable[[], Batch]) -> Batch:
        try:
            batch: Batch = self._step(ApplyFailedError, apply)  # 1
            self.processed.applied(batch.records)
            sent = await self._await(
                ChangelogNotAcknowledgedError,
                asyncio.gather(*(self.changelog.send(c) for c in batch.changes)),  # 2
            )
            for changes, (encoded, offset) in zip(batch.changes, sent, strict=True):
                self._step(StoreWriteFailedError, self.store.write, changes, encoded, offset)  # 3
            await self._await(DeadLettersNotSentError, self.dead_letters.send(batch.dead_letters))
            await self._await(ContactsNotAcknowledgedError, self.contacts.send(batch.contacts))
        except StepFailedError:
            self.copies.discard()
            self.processed.failed()
            raise
        self.processed.done(batch.records)  # 6
        self.done.mark(event)
        return batch

    @staticmethod
    def _step(error: type[StepFailedError], fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            msg = f"step {error.step} failed: {exc!r}"
            raise error(msg) from exc

    @staticmethod
    async def _await(error: type[StepFailedError], awaitable: Any) -> Any:
        try:
            return await awaitable
        except Exception as exc:
            msg = f"step {error.step} failed: {exc!r}"
            raise error(msg) from exc
