"""The Faust adapter: a worker object whose agents decode, apply and hand over to the commit.

The ingest agent classifies each raw record (``streams.ingest.schema``), applies the accepted
ones to the ticket tables (``streams.processing.kpi``) and collects the rejects and the contacts to
forward; the customer agent applies forwarded contacts (``streams.processing.customers``): both
steps in ``streams.runtime.apply``. Both hand their batch to a ``BatchCommit``
(``streams.runtime.commit``), the one owner of the sequence that makes it exactly-once in effect.
Agents run with ``concurrency=1`` (faust#606), at-least-once delivery, no ``group_by``. HTTP
pages and collectors are methods, wired by name in ``_pages``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from streams.config import Settings
from streams.ingest.schema import load_schema
from streams.metrics.kpi_exporter import (
    KpiCollector,
    LabelFolder,
    SelfChecks,
    pseudonyms,
    warm_in_background,
)
from streams.metrics.pipeline_exporter import PipelineCollector, build_registry
from streams.metrics.serving import SharedRendering
from streams.metrics.web_config import load_web_config
from streams.processing.customers import (
    TABLES as CUSTOMER_TABLES,
)
from streams.processing.customers import CustomerProcessor, CustomerTables
from streams.processing.kpi import TABLES as TICKET_TABLES
from streams.processing.kpi import KpiProcessor, Tables
from streams.processing.table_cache import TableCache
from streams.processing.table_codecs import worker_copy
from streams.runtime import quiet_logs
from streams.runtime.apply import ContactApply, TicketApply
from streams.runtime.commit import Batch, BatchCommit, ProcessedOffsets
from streams.runtime.datadir import RememberedMember
from streams.runtime.faust_internals import (
    BulkRecovery,
    Bundle,
    DoneRecords,
    Fetching,
    KeptQueuesApp,
    SharedStoreMemory,
    WorkerConsumer,
    allow_buffered_records,
    route_acks_through_consumer,
    stored_row,
    stored_rows,
    worker_transport,
)
from streams.runtime.handover import Handover
from streams.runtime.security import faust_credentials
from streams.runtime.stalls import GcPauses, freeze_long_lived
from streams.runtime.state import PipelineState
from streams.runtime.writers import ContactForwarder, DeadLetterSender, FaustChangelog, FaustStore

log = logging.getLogger(__name__)

PRODUCER_BUFFER_RECORDS = 10_000
BROKER_CHECK_S = 2.0
WARM_TOTALS_S = 1.0  # a partition's window totals are built this soon after it has a clock
BUNDLES_AHEAD_PER_PARTITION = 2
TABLES = TICKET_TABLES + CUSTOMER_TABLES
MIB = 1024 * 1024


def faust_app(settings: Settings) -> KeptQueuesApp:
    web = load_web_config(settings.web_config_file)  # TLS and basic auth of the pages
    return KeptQueuesApp(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_list],
        broker_credentials=faust_credentials(settings),
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        **fetch_options(settings),
        consumer_group_instance_id=settings.instance_id,
        # failover: a dead worker's partitions move after the session timeout (Faust's
        # default, 60 s, froze half the queues for a minute); heartbeats at a third of it
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 3,
        web_enabled=True,
        web_bind=settings.metrics_host,
        web_host=settings.metrics_host,
        web_port=settings.metrics_port,
        web_ssl_context=web.ssl_context(),
        web_application_options={"middlewares": [web.middleware()]},
        web_in_thread=False,
        # Faust's own pages: /table/{name}/{key}/ served any stored row (a ticket with its
        # customer_id), forwarded to the owner; /router/, /stats/, /graph/ no one needs
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        producer_linger=0.02,  # dead letters; the table writer's batches are sent at once
        producer_max_batch_size=1024 * 1024,  # the most a record batch of the writer holds
        stream_buffer_maxsize=16_384,
        blocking_timeout=settings.stall_report_seconds,
    )


def fetching(settings: Settings) -> Fetching:
    """How long the worker's consumer lets the broker hold a fetch (with ``fetch_options``,
    how it fetches: the bench's bundled row fetches the same way)."""
    return Fetching(settings.fetch_min_bytes, round(settings.fetch_wait_seconds * 1000))


def fetch_options(settings: Settings) -> dict[str, Any]:
    """The app's option of how much one fetch brings per partition (with ``fetching``)."""
    return {"consumer_max_fetch_size": settings.fetch_partition_bytes}


def _agent_labels(settings: Settings) -> Callable[[str], str] | None:
    """Agents labelled by a keyed hash of their id when ``agent_label_salt_file`` is set
    (the file's bytes are the key; read once, never logged)."""
    path = settings.agent_label_salt_file
    return None if path is None else pseudonyms(Path(path).read_bytes().strip())


class Worker:
    """One worker process: the Faust app, its tables, processors, commits and pages."""

    # the changelog step of both commits; tests/integration/failing_write_worker.py
    # replaces it to make the broker refuse a write
    changelog_class: Any = FaustChangelog  # a Changelog (streams.runtime.commit)
    data_dir_lock: Any = None  # held for the life of the process (streams.runtime.datadir)

    def __init__(self, settings: Settings) -> None:
        load_schema()  # fail at startup on a broken schema, not on the first record
        self.settings = settings
        self.app = app = faust_app(settings)
        self.gc_pauses = GcPauses().install()  # logs a collection that held the loop
        allow_buffered_records(app, PRODUCER_BUFFER_RECORDS)
        self.finished = DoneRecords((settings.topic, settings.contacts_topic_name))
        app.transport = worker_transport(
            app,
            self.finished,
            settings.batch_records,
            fetching(settings),
            RememberedMember.of(settings.data_dir, app.conf.id),
        )
        route_acks_through_consumer()
        self.state = PipelineState()
        self.processed = ProcessedOffsets()
        self.faust_tables = {name: self._table(name) for name in TABLES}
        self.recovery = BulkRecovery(app, settings.bootstrap_list).install()
        self.handover = Handover()  # partitions assigned and recovered (streams.runtime.handover)
        self._assigned: dict[str, tuple[int, frozenset[int], frozenset[int]]] = {}  # ``owned``
        self.store_memory = SharedStoreMemory(
            settings.store_memory_mb * MIB, settings.store_write_buffer_mb * MIB
        )
        for table in self.faust_tables.values():
            self.store_memory.adopt(table)
        self.ticket_cache, self.customer_cache = TableCache(), TableCache()
        self.ticket_cache.bad_rows = self.customer_cache.bad_rows = self.state.bad_rows
        kpi_settings = settings.kpi_settings()
        self.processor = KpiProcessor(
            Tables(**self._cached(self.ticket_cache, TICKET_TABLES)), kpi_settings
        )
        self.customers = CustomerProcessor(
            CustomerTables(**self._cached(self.customer_cache, CUSTOMER_TABLES)), kpi_settings
        )
        self.ticket_apply = TicketApply(
            self.ticket_cache,
            self.processor,
            self.state,
            settings.partitions,
            settings.future_tolerance_seconds,
            settings.max_record_bytes,
        )
        self.contact_apply = ContactApply(self.customer_cache, self.customers, self.state)
        self.source = self._raw_topic(settings.topic)
        self.contacts = self._raw_topic(settings.contacts_topic_name)
        self.ingest_commit = self._commit(self.ticket_cache)
        self.customer_commit = self._commit(self.customer_cache)
        app.agent(self.source, name="ingest", concurrency=1)(self.ingest)
        app.agent(self.contacts, name="customers", concurrency=1)(self.customer_contacts)
        self._rebalance_hooks()
        self._watch_broker()
        self._freeze_long_lived_objects()
        self.kpis = self._kpi_collector()
        self.self_checks = SelfChecks()
        self._warm_totals()
        self.pipeline = self._pipeline_collector()
        collectors = [self.pipeline, self.kpis]
        self.registry = build_registry(collectors)
        self.rendering = SharedRendering(
            collectors,
            settings.metrics_cache_seconds,
            max_share=settings.metrics_render_share,
            max_spacing_s=settings.metrics_max_spacing_seconds,
            version=self._figures_version,
            ownership=self.ownership,
        )
        self._pages()

    # -- wiring ------------------------------------------------------------------------
    def _table(self, name: str) -> Any:
        # str keys; values are the bytes of typed rows (streams.processing.table_codecs),
        # and the commit writes them (streams.runtime.writers)
        return self.app.Table(
            name,
            default=None,
            partitions=self.settings.partitions,
            key_type=str,
            value_type=bytes,  # Faust's "raw" serializer: the bytes pass through as they are
        )

    def _cached(self, cache: TableCache, names: tuple[str, ...]) -> dict[str, Any]:
        return {n: self._cached_table(cache, n) for n in names}

    def _cached_table(self, cache: TableCache, name: str) -> Any:
        table = self.faust_tables[name]
        return worker_copy(
            cache, name, table, partial(stored_rows, table), partial(stored_row, table)
        )

    def _raw_topic(self, name: str) -> Any:
        """Raw bytes: the agents decode (and judge) records themselves. Its events are
        bundles, so a few per partition bound how far the fetcher reads ahead."""
        return self.app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=self.settings.partitions,
            maxsize=BUNDLES_AHEAD_PER_PARTITION * self.settings.partitions,
        )

    def _commit(self, cache: TableCache) -> BatchCommit:
        s = self.settings
        dlq = self.app.topic(
            s.dlq_topic, key_serializer="raw", value_serializer="raw", internal=False
        )
        return BatchCommit(
            changelog=self.changelog_class(self.app, self.faust_tables),
            store=FaustStore(self.faust_tables),
            dead_letters=DeadLetterSender(dlq),
            contacts=ContactForwarder(self.app, s.contacts_topic_name, s.partitions),
            done=self.finished,
            processed=self.processed,
            copies=cache,
        )

    # -- agents: decode, apply, hand over ----------------------------------------------
    def _records(self, event: Any) -> list[Any]:
        """A bundle's records not processed yet, or none if it was fetched before a
        rebalance (Faust skips such events: the new owner replays them)."""
        bundle = event.message
        if (
            not isinstance(bundle, Bundle)
            or bundle.generation_id != self.app.consumer_generation_id
        ):
            return []
        return self.processed.fresh(bundle.take())

    async def ingest(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await self.self_checks.applies_allowed()  # not while a self-check reads
            records = self._records(event)
            batch = await self.ingest_commit.run(event, partial(self.apply_tickets, records))
            if batch is None:
                continue  # an earlier batch failed: the worker is stopping
            self.state.table_writes += sum(len(c.items) for c in batch.changes)
            self.state.contacts_forwarded += sum(1 for f in batch.contacts if f.partition is None)
            self.state.batches += 1

    async def customer_contacts(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await self.self_checks.applies_allowed()
            records = self._records(event)
            batch = await self.customer_commit.run(event, partial(self.apply_contacts, records))
            if batch is None:
                continue
            self.state.table_writes += sum(len(c.items) for c in batch.changes)
            self.state.batches += 1
            self.state.last_processed_at = time.time()

    def apply_tickets(self, records: list[Any]) -> Batch:
        """Step 1 of the ingest commit (``streams.runtime.apply``)."""
        return self.ticket_apply(records)

    def apply_contacts(self, records: list[Any]) -> Batch:
        """Step 1 of the customer commit (``streams.runtime.apply``)."""
        return self.contact_apply(records)

    # -- rebalances ------------------------------------------------------------------------
    def _watch_broker(self) -> None:
        """Summarise repeated client errors; say when Kafka goes away and comes back."""
        quiet_logs.install(quiet_logs.RepeatFilter())
        watch = quiet_logs.BrokerWatch(self.settings.bootstrap_list)

        async def check() -> None:
            self.state.broker_up = await watch.check()

        self.app.timer(BROKER_CHECK_S, name="ticketpulse.broker_watch")(check)

    def _freeze_long_lived_objects(self) -> None:
        """Keep the tables' rows out of the garbage collector's full collections."""
        if self.settings.gc_freeze_seconds:

            async def freeze() -> None:
                freeze_long_lived()

            self.app.timer(self.settings.gc_freeze_seconds, name="ticketpulse.gc_freeze")(freeze)

    def _warm_totals(self) -> None:
        """Build the window totals of partitions that have none in the background (a start,
        a rebalance, a recovery, a partition's first record), a partition at a time with
        batches in between: scrapes then find them kept up to date, and the first scrape
        after a start is as quick as the others (docs/architecture.md, "A scrape")."""

        async def warm() -> None:
            await warm_in_background(self.kpis, self.figures_withheld)

        self.app.timer(WARM_TOTALS_S, name="ticketpulse.warm_totals")(warm)

    def _rebalance_hooks(self) -> None:
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        self.app.on_rebalance_complete.connect(self._on_recovered)  # type: ignore[arg-type]

    def forget(self, tp: Any) -> None:
        """Drop a partition's in-memory indexes and table copies: its tables may change hands."""
        if tp.topic == self.settings.topic:
            self.ticket_cache.reset()
            self.processor.forget_partition(tp.partition)
        elif tp.topic == self.settings.contacts_topic_name:
            self.customer_cache.reset()
            self.customers.forget_partition(tp.partition)

    def _on_revoked(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.handover.revoked()
        for tp in args[0] if args else kwargs.get("revoked", ()):
            self.forget(tp)

    def _on_assigned(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", ())  # the whole new assignment
        for tp in assigned:  # tables are recovered afresh
            self.forget(tp)
        self.state.keep_partitions(
            {tp.partition for tp in assigned if tp.topic == self.settings.topic}
        )
        self.state.rebalances += 1
        self.handover.assigned_partitions()

    def _on_recovered(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Tables are recovered now: the partitions settle (``Handover``), and what was read
        of the tables before (the agents' table copies, the bucket indexes, the window
        totals) is dropped, since it may have come from a partial copy."""
        self.handover.recovered()
        self.ticket_cache.reset()
        self.customer_cache.reset()
        self.processor.store.forget_all()  # and the bucket indexes and window totals
        self.customers.forget_indexes()

    # -- collectors and pages ---------------------------------------------------------------
    def owned(self, topic: str | None = None) -> tuple[set[int], set[int]]:
        """(active, standby) partitions of ``topic`` (the input topic by default). Read from
        the assignor once per settled assignment (a scrape asks for it dozens of times, and
        the assignor builds every topic's partitions at each call): the assignment changes
        only in a rebalance, which begins with a revoke and so unsettles the handover. Read
        on the event loop's thread only, as the hooks that move ``handover`` run there."""
        topic = topic or self.settings.topic
        handover, kept = self.handover, self._assigned.get(topic)
        if kept is None or kept[0] != handover.changes or not handover.settled:
            assignor = self.app.assignor
            actives = frozenset(
                tp.partition for tp in assignor.assigned_actives() if tp.topic == topic
            )
            standbys = frozenset(
                tp.partition for tp in assignor.assigned_standbys() if tp.topic == topic
            )
            kept = (handover.changes, actives, standbys)
            if handover.settled and not self.app.rebalancing:
                self._assigned[topic] = kept
        return set(kept[1]), set(kept[2])

    def highwater(self, partition: int) -> int | None:
        try:
            return int(self.app.consumer.highwater(TP(self.settings.topic, partition)))
        except (AssertionError, TypeError, ValueError, KeyError):
            return None  # not known until the first fetch of the partition

    def served(self, topic: str | None = None) -> set[int]:
        """The active partitions whose figures are exported: none while the partitions
        change hands. A partition handed over is assigned before its tables are recovered
        (from its changelog, when this worker kept no standby copy of it): its figures
        would be missing, so too low, not late. The ownership gauge counts it as
        recovering meanwhile, and the wallboard keeps its last complete reading."""
        return set() if self.figures_withheld() else self.owned(topic)[0]

    def ownership(self) -> tuple[object, ...]:
        """Equal while the exported partitions stay the same (a rendering of /metrics
        during which it changed is begun again: streams.metrics.serving)."""
        if self.figures_withheld():
            return (True, self.handover.changes)  # nothing exported
        contacts = self.settings.contacts_topic_name
        return (False, self.handover.changes, self.owned()[0], self.owned(contacts)[0])

    def figures_withheld(self) -> bool:
        """No window or Now figure is exported now (``served``), and the worker is not ready:
        a rebalance or a recovery is under way, or the worker is stopping. The tables may
        be partial copies (Faust's flags, and the worker's own ``Handover`` for what they
        miss) or closed. A stopping worker closes its tables before its web server, and
        its scrapes in between held no figure while its partitions still counted as active:
        a wallboard took that for a complete reading and went blank."""
        settled = self.handover.settled
        stopping = self.app.should_stop  # set as the app's stop begins, before its tables'
        return bool(self.app.rebalancing or self.app.in_recovery or not settled or stopping)

    def committed(self, partition: int) -> int | None:
        """The group's committed offset of an input partition (None before any commit):
        where this worker resumed it after its last assignment, or committed since."""
        consumer: WorkerConsumer = self.app.consumer  # type: ignore[assignment]
        return consumer.committed(TP(self.settings.topic, partition))

    def past_markers(self, partition: int) -> tuple[int, int] | None:
        """(last record read, the offset after the transaction markers that follow it) of an
        input partition, while no record has come since."""
        consumer: WorkerConsumer = self.app.consumer  # type: ignore[assignment]
        return consumer.past_markers(TP(self.settings.topic, partition))

    def _pipeline_collector(self) -> PipelineCollector:
        return PipelineCollector(
            self.state,
            self.settings.partitions,
            self.owned,
            self.highwater,
            partial(self.store_memory.held, self.faust_tables.values()),
            stored_watermark=self.processor.clock.clock,
            committed=self.committed,
            past_markers=self.past_markers,
            served=self.served,
        )

    def _kpi_collector(self) -> KpiCollector:
        s = self.settings
        return KpiCollector(
            self.processor,
            self.customers,
            owned=self.served,
            owned_contacts=lambda: self.served(s.contacts_topic_name),
            clock=s.clock,
            windows=dict(s.windows),
            timezone=s.timezone,
            fold=LabelFolder.of(s.queue_allowlist, s.max_queues),
            fold_agent=LabelFolder.of(s.agent_allowlist, s.max_agents, "agent", _agent_labels(s)),
        )

    def _figures_version(self) -> tuple[object, ...]:
        """Changes whenever a rendering of /metrics must not be reused: a batch applied,
        the partitions changing hands, the broker coming or going, and every
        ``metrics_cache_seconds`` (the clock moves windows, waits and the consumer lag
        along)."""
        s = self.state
        interval = self.settings.metrics_cache_seconds
        period: object = int(time.monotonic() // interval) if interval > 0 else object()
        return (s.applied, s.broker_up, period, self.ownership())

    def _pages(self) -> None:
        for path, handler in (
            ("/metrics", self.metrics_page),
            ("/stats", self.stats_page),
            ("/offsets", self.offsets_page),
            ("/selfcheck", self.selfcheck_page),
            ("/healthz", self.healthz_page),
            ("/ready", self.ready_page),
        ):
            self.app.page(path)(_view_handler(handler))

    async def metrics_page(self, view: View, request: Request) -> Response:
        # aiohttp refuses a charset inside content_type; the text format is UTF-8 by definition
        content_type = CONTENT_TYPE_LATEST.split(";", 1)[0] + "; version=0.0.4"
        return view.bytes(await self.rendering.get(), content_type=content_type)

    async def stats_page(self, view: View, request: Request) -> Response:
        """Cheap progress counters as JSON, for tools that poll often (docs/metrics.md,
        "/stats"): no figure is built; ``held`` counts the table copies' rows, which loads a
        copy dropped at a rebalance or recovery (the agents' next batch would load it too)."""
        s = self.state
        return view.json(
            {
                "accepted": sum(s.accepted.values()),
                "rejected": sum(s.rejected.values()),
                "contacts_forwarded": s.contacts_forwarded,
                "contacts_received": s.contacts_received,
                "batches": s.batches,
                "table_writes": s.table_writes,
                "acks_released": self.finished.released,
                "restored_in_bulk": self.recovery.restored,  # changelog records, since start
                "metrics_rendering": self.rendering.stats(),
                "window_totals": self.kpis.built(),  # partitions built, kept up to date
                **self.gc_pauses.stats(),
                "commit": self.app.consumer.commit_state(),  # type: ignore[attr-defined]
                "last_processed_at": s.last_processed_at,
                **self._input_offsets(),
                "lag": self._lag(),
                "held": {  # rows in the table copies (make soak watches them stay flat)
                    "tickets": len(self.processor.tables.tickets),
                    "buckets": len(self.processor.tables.buckets),
                    "customers": len(self.customers.tables.customers),
                },
                # closed, quiet tickets left to the store / packed, and read back, since start
                "tickets": vars(self.processor.held),
            }
        )

    async def offsets_page(self, view: View, request: Request) -> Response:
        """``/stats``' two maps of input offsets alone, for a tool that polls many times a
        second (the bench's freshness, every 20 ms): no counter gathered, no commit state
        sorted; 0.17 ms of the idle worker's core an answer against 0.23-0.28 ms for
        ``/stats``, which grows with the acks a live worker holds (docs/metrics.md)."""
        return view.json(self._input_offsets())

    def _input_offsets(self) -> dict[str, dict[int, int]]:
        """Per input partition, one past the last record done (step 6) and one past the last
        applied (step 1: on /metrics from then): what ``/stats`` and ``/offsets`` answer."""
        topic = self.settings.topic
        return {
            "next_offsets": self.processed.of(topic),
            "applied_offsets": self.processed.applied_of(topic),
        }

    def _lag(self) -> int:
        """Input records not processed yet on the partitions this worker owns: the sum of
        the lag gauge's partitions (``PipelineCollector.lag``, the one rule)."""
        return sum(self.pipeline.lag(partition) or 0 for partition in self.owned()[0])

    async def selfcheck_page(self, view: View, request: Request) -> Response:
        """The live window figures against the same built afresh from the tables (JSON;
        ``equal`` false names the lines that differ); spaced, as costly as a first scrape,
        with no batch applied meanwhile; 503 if the partitions change hands before it ends
        (or a batch failed: the worker is stopping)."""
        version = self.state.rebalances
        commits = (self.ingest_commit, self.customer_commit)

        def busy() -> bool:  # partial tables, or a failed batch's copies dropped: stopping
            changed = self.figures_withheld() or self.state.rebalances != version
            return changed or any(c.failed is not None for c in commits)

        status, body = await self.self_checks.answer(self.kpis, busy, version)
        return view.json(body, status=status)

    async def healthz_page(self, view: View, request: Request) -> Response:
        return view.json({"status": "ok"})

    async def ready_page(self, view: View, request: Request) -> Response:
        """Ready once partitions are assigned and tables recovered; 503 while rebalancing
        or while Kafka is unreachable."""
        app = self.app
        busy = self.figures_withheld() or not app.consumer.assignment()
        busy = busy or not self.state.broker_up
        return view.json({"ready": not busy}, status=503 if busy else 200)


def _view_handler(handler: Any) -> Any:
    """Faust makes a page's function the view's ``get`` (bound to the view): a plain
    function that passes the view on to the worker's method."""

    async def page(view: View, request: Request) -> Response:
        return cast(Response, await handler(view, request))

    page.__name__ = handler.__name__
    page.__doc__ = handler.__doc__
    return page
