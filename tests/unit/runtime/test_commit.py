"""The commit sequence (streams.runtime.commit), step by step, with fakes: whichever step
fails, nothing is acknowledged, and replaying the batch in a fresh process gives the very
tables a clean run gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.ingest.schema import Accepted, Rejected, classify
from streams.processing.kpi import TABLES as TICKET_TABLES
from streams.processing.kpi import KpiProcessor, Tables
from streams.processing.settings import KpiSettings
from streams.processing.table_cache import DELETE, TableCache, TableChanges
from streams.processing.table_codecs import CODECS
from streams.runtime.commit import (
    ApplyFailedError,
    Batch,
    BatchCommit,
    ChangelogNotAcknowledgedError,
    ContactsNotAcknowledgedError,
    DeadLettersNotSentError,
    ProcessedOffsets,
    StepFailedError,
    StoreWriteFailedError,
)
from tests.unit.event_lines import event_line


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes


LINES = [
    event_line(0, "T1", "opened", 0),
    event_line(0, "T2", "opened", 5),
    event_line(1, "T1", "replied", 20, ',"author":"agent","handle_seconds":30'),
    b"{not json",
    event_line(2, "T1", "resolved", 90, ',"handle_seconds":12'),
    event_line(1, "T2", "abandoned", 100),
    event_line(3, "T1", "survey", 130, ',"survey_kind":"csat","score":5'),
]
RECORDS = [Message("events", 0, i, line) for i, line in enumerate(LINES)]


@dataclass
class Fakes:
    """The store is the truth a fresh process reads; the rest record what was sent."""

    store: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {n: {} for n in ("tickets", "buckets", "meta")}
    )
    changelog: list[TableChanges] = field(default_factory=list)
    dead_letters: list[Any] = field(default_factory=list)
    contacts: list[Any] = field(default_factory=list)
    marked: list[Any] = field(default_factory=list)
    fail_at: int = 0

    def check(self, step: int) -> None:
        if self.fail_at == step:
            msg = f"injected failure at step {step}"
            raise OSError(msg)

    async def send(self, changes: TableChanges) -> tuple[list[Any], int]:
        self.check(2)
        self.changelog.append(changes)
        return [], len(self.changelog)

    def write(self, changes: TableChanges, encoded: Any, offset: int) -> None:
        table = self.store[changes.table]
        for i, (key, value) in enumerate(changes.items):
            if i == 1:
                self.check(3)  # half-way through a table: a partly written store
            if value is DELETE:
                table.pop(key, None)
            else:
                table[key] = value

    def mark(self, event: Any) -> None:
        self.marked.append(event)


@dataclass
class Sink:
    fakes: Fakes
    step: int
    into: list[Any]

    async def send(self, items: list[Any]) -> None:
        self.fakes.check(self.step)
        self.into.extend(items)


def process_once(fakes: Fakes) -> tuple[BatchCommit, Any]:
    """A fresh process: table copies over the store, a processor, a commit."""
    cache = TableCache()
    tables = Tables(
        **{name: cache.table(fakes.store[name], *CODECS[name], name) for name in TICKET_TABLES}
    )
    processor = KpiProcessor(tables, KpiSettings())

    def apply() -> Batch:
        batch = Batch(RECORDS)
        with cache.batch(0):
            for m in RECORDS:
                outcome = classify(_key(m.value), m.value, now=2e9, future_tolerance_s=0)
                if isinstance(outcome, Rejected):
                    batch.dead_letters.append((m, outcome))
                    continue
                assert isinstance(outcome, Accepted)
                if fakes.fail_at == 1 and m.offset == 4:
                    raise ValueError("injected failure at step 1")
                done = processor.process(0, m.offset, outcome.event)
                if done.contact is not None:
                    batch.contacts.append(done.contact)
            batch.changes = cache.changes()
        return batch

    commit = BatchCommit(
        changelog=fakes,
        store=fakes,
        dead_letters=Sink(fakes, 4, fakes.dead_letters),
        contacts=Sink(fakes, 5, fakes.contacts),
        done=fakes,
        processed=ProcessedOffsets(),
        copies=cache,
    )
    return commit, apply


def _key(value: bytes) -> bytes | None:
    start = value.find(b'"ticket_id":"')
    return value[start + 13 : value.index(b'"', start + 13)] if start >= 0 else None


async def test_a_clean_batch_runs_every_step_then_is_done() -> None:
    fakes = Fakes()
    commit, apply = process_once(fakes)
    batch = await commit.run("event", apply)
    assert fakes.marked == ["event"]
    assert {c.table for c in fakes.changelog} == {"tickets", "buckets", "meta"}
    assert fakes.store["tickets"] and fakes.store["buckets"] and fakes.store["meta"]
    assert len(fakes.dead_letters) == 1 and fakes.dead_letters[0][1].reason == "not_json"
    assert fakes.contacts == batch.contacts and len(fakes.contacts) >= 2
    assert commit.processed.fresh(list(RECORDS)) == []  # this process will not apply them again


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (1, ApplyFailedError),
        (2, ChangelogNotAcknowledgedError),
        (3, StoreWriteFailedError),
        (4, DeadLettersNotSentError),
        (5, ContactsNotAcknowledgedError),
    ],
)
async def test_a_failed_step_acknowledges_nothing_and_a_replay_gives_the_same_tables(
    step: int, error: type[StepFailedError]
) -> None:
    clean = Fakes()
    commit, apply = process_once(clean)
    await commit.run("event", apply)

    faulty = Fakes(fail_at=step)
    commit, apply = process_once(faulty)
    with pytest.raises(error, match=f"step {step} failed"):
        await commit.run("event", apply)
    assert faulty.marked == [], "a failed batch must never be marked done"
    assert commit.processed.fresh(list(RECORDS)) == RECORDS, "it must be applied again"

    faulty.fail_at = 0  # the restarted worker: a fresh process over what was stored
    commit, apply = process_once(faulty)
    await commit.run("event", apply)
    assert faulty.marked == ["event"]
    assert faulty.store == clean.store, f"replay after a failure at step {step} differs"


async def test_after_a_failed_step_no_later_batch_is_applied() -> None:
    """Faust restarts a crashed agent at once; the next bundles must not be applied before
    the worker stops, or their keys would skip the failed records on the replay."""
    fakes = Fakes(fail_at=2)
    commit, apply = process_once(fakes)
    with pytest.raises(ChangelogNotAcknowledgedError):
        await commit.run("event", apply)
    fakes.fail_at = 0
    applied = []

    def later() -> Batch:
        applied.append(True)
        return apply()

    assert await commit.run("next", later) is None
    assert applied == [] and fakes.marked == [] and fakes.store["buckets"] == {}


async def test_applied_marks_move_at_step_1_and_done_marks_at_step_6() -> None:
    """/stats's ``applied_offsets`` (the records' figures are on /metrics) move once the
    records are applied, before the broker acknowledges their writes; ``next_offsets``
    only once the batch is done."""
    fakes = Fakes()
    commit, apply = process_once(fakes)
    during_step_2 = []
    send = fakes.send

    async def watched(changes: TableChanges) -> tuple[list[Any], int]:
        during_step_2.append((commit.processed.applied_of("events"), commit.processed.of("events")))
        return await send(changes)

    fakes.send = watched  # type: ignore[method-assign]
    await commit.run("event", apply)
    past = {0: len(RECORDS)}
    assert during_step_2 and all(seen == (past, {}) for seen in during_step_2), during_step_2
    assert commit.processed.applied_of("events") == commit.processed.of("events") == past
    assert commit.processed.applied_of("other topic") == {}


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5])
async def test_a_failed_step_takes_the_applied_marks_back_to_the_done_ones(step: int) -> None:
    """The copies are dropped: what /metrics shows is what was done (nothing here)."""
    commit, apply = process_once(Fakes(fail_at=step))
    with pytest.raises(StepFailedError, match=f"step {step} failed"):
        await commit.run("event", apply)
    assert commit.processed.applied_of("events") == commit.processed.of("events") == {}
