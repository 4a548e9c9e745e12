"""Reading changelog partitions in bulk (streams.runtime.restore): each span is read from
its first to its last offset, one write per fetch of a partition, nothing past the last;
a partition whose end was compacted away still ends at its last offset; a broker that
stops answering ends the read at the deadline with what was written."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka.structs import TopicPartition

from streams.runtime.restore import Span, read_changelogs

A, B = TopicPartition("tickets-changelog", 0), TopicPartition("tickets-changelog", 1)


class FakeConsumer:
    """aiokafka's consumer API the read uses, over an in-memory log per partition."""

    def __init__(
        self, logs: dict[TopicPartition, list[tuple[int, bytes, bytes | None]]], per_fetch: int = 2
    ) -> None:
        self.logs, self.per_fetch = logs, per_fetch
        self.positions: dict[TopicPartition, int] = {}
        self.assigned: list[TopicPartition] = []

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def getmany(self, *tps: TopicPartition, timeout_ms: int) -> dict:
        out = {}
        for tp in tps:
            due = [r for r in self.logs[tp] if r[0] >= self.positions[tp]][: self.per_fetch]
            if due:
                out[tp] = [SimpleNamespace(offset=o, key=k, value=v) for o, k, v in due]
                self.positions[tp] = due[-1][0] + 1
            else:  # past the log's end (a compacted tail): the position is the end offset
                self.positions[tp] = max(self.positions[tp], self.end(tp))
        return out

    def end(self, tp: TopicPartition) -> int:
        return self.logs[tp][-1][0] + 1 if self.logs[tp] else 0

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


async def test_each_span_is_read_to_its_last_offset_one_write_per_fetch() -> None:
    logs = {
        A: [
            (0, b"t1", b"v0"),
            (1, b"t2", b"v1"),
            (2, b"t1", None),
            (3, b"t3", b"v3"),
            (4, b"t4", b"later"),
        ],
        B: [(0, b"t9", b"v9")],
    }
    writes: list[tuple[TopicPartition, list, int]] = []
    done = await read_changelogs(
        FakeConsumer(logs), {A: Span(1, 3), B: Span(1, 0)}, lambda *w: writes.append(w), 60
    )
    assert writes == [
        (A, [(b"t2", b"v1"), (b"t1", None)], 2),  # a delete stays a delete
        (A, [(b"t3", b"v3")], 3),  # offset 4 is past the span: left for Faust
    ]
    assert done == {A: 3}  # B had nothing to read (its span is empty)


async def test_a_compacted_end_still_ends_the_partition_at_its_last_offset() -> None:
    logs = {A: [(0, b"t1", b"v0"), (5, b"t2", b"v5")]}  # 1-4 and 6-7 compacted away
    writes: list[tuple[TopicPartition, list, int]] = []
    consumer = FakeConsumer(logs)
    consumer.end = lambda tp: 8  # type: ignore[method-assign]
    done = await read_changelogs(consumer, {A: Span(0, 7)}, lambda *w: writes.append(w), 60)
    assert writes == [(A, [(b"t1", b"v0"), (b"t2", b"v5")], 5), (A, [], 7)]
    assert done == {A: 7}


async def test_the_read_stops_at_the_deadline_with_what_it_wrote() -> None:
    class Silent(FakeConsumer):
        async def getmany(self, *tps: TopicPartition, timeout_ms: int) -> dict:
            return {}  # a broker that does not answer

    ticks = iter(range(100))
    writes: list = []
    done = await read_changelogs(
        Silent({A: [(0, b"t", b"v")]}), {A: Span(0, 0)}, lambda *w: writes.append(w), 5,
        clock=lambda: float(next(ticks)),
    )  # fmt: skip
    assert done == {} and writes == []


async def test_faust_reads_on_from_where_the_bulk_read_ended() -> None:
    """The offsets Faust's recovery starts from are a Counter: they must be set to the bulk
    read's ends, not added to (one test run read 3 > its highwater 2 and stopped)."""
    from collections import Counter

    import faust
    from faust.types import TP

    from streams.runtime.faust_internals import BulkRecovery

    app = faust.App("restore-test", broker="kafka://127.0.0.1:1", store="memory://")
    recovery = BulkRecovery(app, ["127.0.0.1:1"])
    tp, other = TP("meta-changelog", 3), TP("meta-changelog", 0)

    async def read_in_bulk(tps: set[TP], start: object) -> dict[TP, int]:
        return {tp: 2}

    class Earliest:
        async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
            return {t: 0 for t in tps}

    recovery._read_in_bulk = read_in_bulk  # type: ignore[method-assign]
    offsets: Counter[TP] = Counter({tp: 1, other: 4})
    await recovery._build_offsets(Earliest(), {tp, other}, offsets, "active")
    assert offsets == {tp: 2, other: 4}
