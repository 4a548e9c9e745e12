"""Scrape-time Prometheus collector: builds every family afresh from live state.

Nothing is cached between scrapes, so a partition this worker no longer owns
simply stops being exported (Prometheus marks its series stale at once).
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import version
from typing import TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from streams.runtime.state import PipelineState

TABLE_NAMES = ("tickets", "buckets", "meta", "customers", "cbuckets", "cmeta")
N = TypeVar("N", int, float)  # an offset or an event time
Metric = CounterMetricFamily | GaugeMetricFamily | InfoMetricFamily


class PipelineCollector(Collector):
    """Ingest counters, partition ownership, watermark and build info."""

    def __init__(
        self,
        state: PipelineState,
        topic_partitions: int,
        owned: Callable[[], tuple[set[int], set[int]]],
        highwater: Callable[[int], int | None] = lambda partition: None,
        store_memory: Callable[[], dict[str, int]] = dict,
        stored_watermark: Callable[[int], float | None] = lambda partition: None,
        committed: Callable[[int], int | None] = lambda partition: None,
        past_markers: Callable[[int], tuple[int, int] | None] = lambda partition: None,
        served: Callable[[], set[int]] | None = None,
    ) -> None:
        self._state = state
        self._topic_partitions = topic_partitions
        self._owned = owned  # () -> (active partitions, standby partitions) of the input topic
        self._highwater = highwater  # partition -> next offset the broker will assign
        self._store_memory = store_memory  # () -> bytes in memory of the table stores, by kind
        # partition -> the watermark in its table (bucketed): known to a new owner at once
        self._stored_watermark = stored_watermark
        self._committed = committed  # partition -> the group's committed offset, if any
        # partition -> (last record read, the offset past the transaction markers after it)
        self._past_markers = past_markers
        # () -> the active partitions whose figures are exported (all of them by default):
        # the others are "recovering", their tables being recovered
        self._served = served

    def collect(self) -> Iterator[Metric]:
        yield from self._ingest()
        yield from self._partitions()
        yield from self._process()

    def _ingest(self) -> Iterator[Metric]:
        """Records accepted and rejected, by type and reason."""
        state = self._state
        yield _labelled_counter(
            "ticketpulse_events_accepted",
            "Valid ticket events accepted, by event type.",
            "event_type",  # not ``type``: a scrape config may add that label to targets
            state.accepted,
        )
        yield _labelled_counter(
            "ticketpulse_events_not_applied",
            "Accepted events no figure took in (a subset of ticketpulse_events_accepted_total): "
            "duplicate (its event_id applied already) or late (older than the watermark less "
            "lateness_seconds).",
            "outcome",
            state.not_applied,
        )
        yield _labelled_counter(
            "ticketpulse_events_rejected",
            "Records sent to the dead-letter topic, by reason (see docs/events.md).",
            "reason",
            state.rejected,
        )

    def _partitions(self) -> Iterator[Metric]:
        """Ownership, watermark and lag of the input partitions."""
        state = self._state
        active, standby = self._owned()
        served = active if self._served is None else self._served() & active
        assigned = GaugeMetricFamily(
            "ticketpulse_partitions_assigned",
            "Input-topic partitions this worker holds, by role: active (their figures "
            "exported), recovering (active, tables being recovered or the worker stopping: "
            "no figures), standby.",
            labels=["role"],
        )
        assigned.add_metric(["active"], len(served))
        assigned.add_metric(["recovering"], len(active - served))
        assigned.add_metric(["standby"], len(standby))
        yield assigned
        yield _served_partitions(served)
        yield GaugeMetricFamily(
            "ticketpulse_broker_up",
            "1 while a Kafka bootstrap server accepts connections, 0 while none does.",
            value=1.0 if state.broker_up else 0.0,
        )
        yield GaugeMetricFamily(
            "ticketpulse_topic_partitions",
            "Partitions of the input topic: in a complete reading each reads 1 in "
            "ticketpulse_partition_active summed over the workers.",
            value=self._topic_partitions,
        )
        yield self._watermarks(active)
        lag = GaugeMetricFamily(
            "ticketpulse_consumer_lag_records",
            "Records in the input partition not processed yet (high-water mark - next offset).",
            labels=["partition"],
        )
        for partition in sorted(active):
            behind = self.lag(partition)
            if behind is not None:
                lag.add_metric([str(partition)], behind)
        yield lag

    def lag(self, partition: int) -> int | None:
        """Records of an input partition not processed yet (None while unknown): the one
        rule of the lag gauge and of ``/stats``. Offsets after the last record read that
        hold no record (a transaction's markers, up to the consumer's position) are not
        counted: a transactional producer's last marker would otherwise read as a record
        behind for as long as the producer is quiet, and page as
        ``TicketpulseWatermarkBehind`` once the watermark is behind too."""
        high, done = self._highwater(partition), self._next_offset(partition)
        if high is None or done is None:
            return None
        markers, none = self._past_markers(partition), 0
        if markers is not None:
            last, past = markers
            if done > last:
                done = max(done, past)
            else:
                none = past - last - 1
        return max(0, high - done - none)

    def _next_offset(self, partition: int) -> int | None:
        """The next offset to process: after this worker's last record of the partition, or
        the group's committed offset when later (a worker handed a partition resumes there,
        before it reads a record of it; one that comes back is not measured from the offset
        where it left it)."""
        return _latest(self._state.next_offset.get(partition), self._committed(partition))

    def _watermarks(self, active: set[int]) -> GaugeMetricFamily:
        """The largest event time accepted per actively owned partition: by this worker, or,
        when later, the one its table holds (rounded down to the bucket). A worker handed a
        partition knows the table's at once, before it reads a record of it (after a
        rebalance on a quiet topic the gauge would otherwise be missing)."""
        watermark = GaugeMetricFamily(
            "ticketpulse_event_time_watermark_timestamp_seconds",
            "Largest event time (occurred_at) accepted, per actively owned partition.",
            labels=["partition"],
        )
        for partition in sorted(active):
            latest = _latest(
                self._state.watermark.get(partition), self._stored_watermark(partition)
            )
            if latest is not None:
                watermark.add_metric([str(partition)], latest)
        return watermark

    def _process(self) -> Iterator[Metric]:
        """Contacts, stored rows, rebalances, heartbeat and build info."""
        state = self._state
        yield CounterMetricFamily(
            "ticketpulse_contacts_forwarded",
            "Contact changes sent to the contacts topic (keyed by customer) since start.",
            value=state.contacts_forwarded,
        )
        yield CounterMetricFamily(
            "ticketpulse_contacts_received",
            "Contact records consumed from the contacts topic since start (summed over workers, "
            "equals forwarded once the customer side has caught up).",
            value=state.contacts_received,
        )
        counts = state.bad_rows.counts
        yield _labelled_counter(
            "ticketpulse_stored_rows_unreadable",
            "Stored table rows that could not be read back (left out, logged once per table); "
            "anything above 0 needs a look (docs/runbooks.md).",
            "table",
            {table: counts.get(table, 0) for table in TABLE_NAMES},
        )
        memory = GaugeMetricFamily(
            "ticketpulse_store_memory_bytes",
            "Bytes the table stores (RocksDB) hold in memory, by kind: memtables, block_cache,"
            " table_readers (block_cache: the shared cache less the memtables charged to it,"
            " an upper bound); store_memory_mb bounds the first two, loosely.",
            labels=["kind"],
        )
        for kind, size in sorted(self._store_memory().items()):
            memory.add_metric([kind], size)
        yield memory
        yield CounterMetricFamily(
            "ticketpulse_rebalances",
            "Partition assignments this worker received since it started.",
            value=state.rebalances,
        )
        yield GaugeMetricFamily(
            "ticketpulse_last_processed_timestamp_seconds",
            "Wall-clock time the worker last finished a record (heartbeat).",
            value=state.last_processed_at,
        )
        yield InfoMetricFamily(
            "ticketpulse_build",
            "Versions this worker runs.",
            value=build_info(),
        )


@functools.cache
def build_info() -> dict[str, str]:
    """Read from the installed packages' metadata once, not at every scrape."""
    return {
        "version": version("ticketpulse"),
        "faust_version": version("faust-streaming"),
        "python_version": platform.python_version(),
    }


def _served_partitions(served: set[int]) -> GaugeMetricFamily:
    """1 per partition whose figures this scrape holds: summed over the workers' last
    scrapes, each partition must read exactly 1 for the reading to be complete. A count
    alone cannot tell a partition counted twice and another missing from a whole reading
    (docs/metrics.md, "Complete readings")."""
    family = GaugeMetricFamily(
        "ticketpulse_partition_active",
        "1 for each input-topic partition whose figures this scrape holds (role active); "
        "summed over the workers, every partition reads exactly 1 in a complete reading.",
        labels=["partition"],
    )
    for partition in sorted(served):
        family.add_metric([str(partition)], 1.0)
    return family


def _labelled_counter(name: str, doc: str, label: str, values: dict[str, int]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=[label])
    for value, n in values.items():
        family.add_metric([value], n)
    return family


def build_registry(collectors: Iterable[Collector]) -> CollectorRegistry:
    """A private registry (never the global one), so tests and workers cannot collide."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in collectors:
        registry.register(collector)
    return registry


def _latest(mine: N | None, stored: N | None) -> N | None:
    """The later of what this worker saw and what the partition's stored state says
    (either may be unknown): a worker handed a partition knows the stored one first."""
    if mine is None or stored is None:
        return stored if mine is None else mine
    return max(mine, stored)
