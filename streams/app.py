"""The Faust adapter: consume ticket events, dead-letter bad records, serve /metrics.

The agent is deliberately thin: classify the raw record (``streams.schema``),
send rejects to the DLQ with a reason, hand valid events on, bump counters.
A contact change (opened, first resolution, reopen of a ticket with a customer) is
forwarded to the contacts topic keyed by ``customer_id``, where a second agent
brings each customer's tickets together for ACR and repeat contacts.
Agents run with ``concurrency=1`` (faust#606: higher concurrency can commit past
in-flight records), at-least-once delivery, no ``group_by``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.batch_writes import TableWriter, send_keyed, write_changes
from streams.config import Settings
from streams.consumer import (
    Bundle,
    DoneRecords,
    ProcessedOffsets,
    route_acks_through_consumer,
    worker_transport,
)
from streams.core.contacts import Contact
from streams.customers import (
    BadContactError,
    CustomerProcessor,
    CustomerTables,
    decode_contact,
    encode_contact,
)
from streams.exporter import PipelineCollector, build_registry
from streams.kpi import KpiProcessor, KpiSettings, Tables, encode_ticket
from streams.kpi_exporter import KpiCollector, LabelFolder
from streams.pipeline import PipelineState
from streams.processes import tune_gc
from streams.schema import Rejected, classify, load_schema
from streams.stored_rows import check_bucket, check_customer, check_meta, read_ticket
from streams.table_cache import TableCache
from streams.topics import ensure_topics

log = logging.getLogger(__name__)

DLQ_HEADER_PREFIX = "ticketpulse."
PRODUCER_BUFFER_RECORDS = 10_000
BUNDLES_AHEAD_PER_PARTITION = 2
TICKET_TABLES = ("tickets", "buckets", "meta")
CUSTOMER_TABLES = ("customers", "cbuckets", "cmeta")
TABLES = TICKET_TABLES + CUSTOMER_TABLES


@dataclass
class Worker:
    """What ``create_app`` wires together; tests reach in through this."""

    app: faust.App
    state: PipelineState
    settings: Settings
    processor: KpiProcessor
    customers: CustomerProcessor


def dlq_headers(message: Any, rejected: Rejected, now: float) -> list[tuple[str, bytes]]:
    """Original headers first, then why and where from (docs/events.md, Dead letters)."""
    original = message.headers or []
    items = list(original.items()) if isinstance(original, dict) else list(original)
    ours = {
        "reason": rejected.reason,
        "detail": rejected.detail,
        "source.topic": message.topic,
        "source.partition": str(message.partition),
        "source.offset": str(message.offset),
        "rejected_at": f"{now:.3f}",
    }
    return items + [(DLQ_HEADER_PREFIX + k, v.encode()) for k, v in ours.items()]


def _records(event: Any, app: faust.App, processed: ProcessedOffsets) -> list[Any]:
    """The records of a bundle (streams.consumer) not processed yet, or none if it was
    fetched before a rebalance (as Faust skips such events: the partition's owner in the
    new generation replays them)."""
    bundle = event.message
    if not isinstance(bundle, Bundle) or bundle.generation_id != app.consumer_generation_id:
        return []
    return processed.fresh(bundle.records)


def _broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{server}" for server in settings.bootstrap_list]


def create_app(settings: Settings) -> Worker:
    load_schema()  # fail at startup on a broken schema, not on the first record
    app = faust.App(
        settings.app_id,
        broker=_broker_urls(settings),
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.instance_id,
        web_enabled=True,
        web_bind=settings.metrics_host,
        web_host=settings.metrics_host,
        web_port=settings.metrics_port,
        web_in_thread=False,
        producer_linger=0.02,  # dead letters; the table writer's batches are sent at once
        producer_max_batch_size=1024 * 1024,  # the most a record batch of the writer holds
        stream_buffer_maxsize=16_384,
    )
    # faust blocks intake whenever more than 100 records wait in its producer buffer (faust#173);
    # only dead letters use it, but a bad batch can hold thousands (still flushed before commits)
    app.producer.buffer.max_messages = PRODUCER_BUFFER_RECORDS
    # only the offsets of records the agents have finished may be committed (streams.consumer)
    finished = DoneRecords((settings.topic, settings.contacts_topic_name))
    app.transport = worker_transport(app, finished, bundle_records=settings.batch_records)
    route_acks_through_consumer()
    state = PipelineState()
    processed = ProcessedOffsets()  # a record seen again after a seek back is left out

    def raw_topic(name: str) -> Any:
        """A topic of raw bytes: the agents decode (and judge) the records themselves."""
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            # its events are bundles of up to batch_records records: a few per partition
            # bound what the fetcher reads ahead
            maxsize=BUNDLES_AHEAD_PER_PARTITION * settings.partitions,
        )

    source = raw_topic(settings.topic)

    writers: dict[int, TableWriter] = {}

    def table(name: str) -> Any:
        # str keys use the raw codec (decoded back to str); values are JSON.
        t = app.Table(name, default=None, partitions=settings.partitions, key_type=str)
        writers[id(t)] = TableWriter(app, t)  # the cache's changes are written by it
        return t

    kpi_settings = KpiSettings.from_settings(settings)
    # each agent reads and writes its tables through a write-back cache (streams.table_cache)
    ticket_cache, customer_cache = TableCache(), TableCache()
    # a stored row that cannot be read back is left out and counted (streams.stored_rows)
    ticket_cache.bad_rows = customer_cache.bad_rows = state.bad_rows
    processor = KpiProcessor(
        Tables(
            tickets=ticket_cache.table(table("tickets"), encode_ticket, read_ticket, "tickets"),
            buckets=ticket_cache.table(table("buckets"), decode=check_bucket, name="buckets"),
            meta=ticket_cache.table(table("meta"), decode=check_meta, name="meta"),
        ),
        kpi_settings,
    )
    customers = CustomerProcessor(
        CustomerTables(
            customers=customer_cache.table(
                table("customers"), decode=check_customer, name="customers"
            ),
            cbuckets=customer_cache.table(table("cbuckets"), decode=check_bucket, name="cbuckets"),
            cmeta=customer_cache.table(table("cmeta"), decode=check_meta, name="cmeta"),
        ),
        kpi_settings,
    )
    contacts = raw_topic(settings.contacts_topic_name)
    dead_letters = app.topic(
        settings.dlq_topic, key_serializer="raw", value_serializer="raw", internal=False
    )

    async def dead_letter(rejects: list[tuple[Any, Rejected]]) -> None:
        for message, rejected in rejects:
            headers = dlq_headers(message, rejected, time.time())
            await dead_letters.send(key=message.key, value=message.value, headers=headers)

    @app.agent(source, name="ingest", concurrency=1)
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            rejects: list[tuple[Any, Rejected]] = []
            forward: list[tuple[str, Contact]] = []
            records = _records(event, app, processed)
            with ticket_cache.batch():
                for message in records:
                    now = time.time()
                    state.record_offset(message.partition, message.offset)
                    outcome = classify(
                        message.key,
                        message.value,
                        now=now,
                        future_tolerance_s=settings.future_tolerance_seconds,
                        max_bytes=settings.max_record_bytes,
                    )
                    if isinstance(outcome, Rejected):
                        rejects.append((message, outcome))
                        state.record_rejected(outcome.reason, now)
                        continue
                    state.record_accepted(message.partition, outcome.event, now)
                    ticket_cache.partition = message.partition
                    done = processor.process(message.partition, message.offset, outcome.event)
                    if done.contact is not None:
                        forward.append(done.contact)
                state.table_writes += await write_changes(writers, ticket_cache.changes())
            state.batches += 1
            # dead letters are flushed before offsets are committed; contacts acknowledged
            # before the batch is done, like its table writes
            await dead_letter(rejects)
            contacts_out = [(c.encode(), encode_contact(c, contact)) for c, contact in forward]
            await send_keyed(app, settings.contacts_topic_name, settings.partitions, contacts_out)
            state.contacts_forwarded += len(forward)
            processed.done(records)
            finished.mark(event)

    @app.agent(contacts, name="customers", concurrency=1)
    async def customer_contacts(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            rejects: list[tuple[Any, Rejected]] = []
            records = _records(event, app, processed)
            with customer_cache.batch():
                for message in records:
                    state.contacts_received += 1
                    try:
                        customer_id, contact = decode_contact(message.value)
                    except BadContactError as exc:
                        rejected = Rejected("bad_contact", str(exc))
                        rejects.append((message, rejected))
                        state.record_rejected(rejected.reason, time.time())
                        continue
                    customer_cache.partition = message.partition
                    customers.process(message.partition, message.offset, customer_id, contact)
                state.table_writes += await write_changes(writers, customer_cache.changes())
            state.batches += 1
            await dead_letter(rejects)
            state.last_processed_at = time.time()
            processed.done(records)
            finished.mark(event)

    def forget(tp: Any) -> None:
        """Drop a partition's in-memory indexes and table copies: its tables may change hands."""
        if tp.topic == settings.topic:
            ticket_cache.reset()
            processor.forget_partition(tp.partition)
        elif tp.topic == settings.contacts_topic_name:
            customer_cache.reset()
            customers.forget_partition(tp.partition)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust signal typing
    def revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        for tp in args[0] if args else kwargs.get("revoked", ()):
            forget(tp)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust signal typing
    def assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        for tp in (
            args[0] if args else kwargs.get("assigned", ())
        ):  # tables are recovered afresh: rebuild indexes lazily
            forget(tp)
        state.rebalances += 1

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # faust signal typing
    def recovered(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Tables are recovered now: a copy read during recovery (by a scrape) is incomplete."""
        ticket_cache.reset()
        customer_cache.reset()

    def owned(topic: str = settings.topic) -> tuple[set[int], set[int]]:
        assignor = app.assignor
        actives = {tp.partition for tp in assignor.assigned_actives() if tp.topic == topic}
        standbys = {tp.partition for tp in assignor.assigned_standbys() if tp.topic == topic}
        return actives, standbys

    kpis = KpiCollector(
        processor,
        customers,
        owned=lambda: owned()[0],
        owned_contacts=lambda: owned(settings.contacts_topic_name)[0],
        clock=settings.clock,
        windows=dict(settings.windows),
        timezone=settings.timezone,
        fold=LabelFolder.of(settings.queue_allowlist, settings.max_queues),
        fold_agent=LabelFolder.of(settings.agent_allowlist, settings.max_agents),
    )

    def highwater(partition: int) -> int | None:
        try:
            return int(app.consumer.highwater(TP(settings.topic, partition)))
        except (AssertionError, TypeError, ValueError, KeyError):
            return None  # not known until the first fetch of the partition

    pipeline = PipelineCollector(state, settings.partitions, owned, highwater)
    registry = build_registry([pipeline, kpis])

    @app.page("/metrics")
    async def metrics(self: View, request: Request) -> Response:
        # aiohttp refuses a charset inside content_type; the text format is UTF-8 by definition
        content_type = CONTENT_TYPE_LATEST.split(";", 1)[0] + "; version=0.0.4"
        return self.bytes(generate_latest(registry), content_type=content_type)

    @app.page("/stats")
    async def stats(self: View, request: Request) -> Response:
        """Cheap progress counters as JSON, for tools that poll often (never the tables)."""
        return self.json(
            {
                "accepted": sum(state.accepted.values()),
                "rejected": sum(state.rejected.values()),
                "contacts_forwarded": state.contacts_forwarded,
                "contacts_received": state.contacts_received,
                "batches": state.batches,
                "table_writes": state.table_writes,
                "acks_released": finished.released,
                "last_processed_at": state.last_processed_at,
            }
        )

    @app.page("/healthz")
    async def healthz(self: View, request: Request) -> Response:
        return self.json({"status": "ok"})

    @app.page("/ready")
    async def ready(self: View, request: Request) -> Response:
        """Ready once partitions are assigned and tables recovered; 503 while rebalancing."""
        busy = app.rebalancing or app.in_recovery or not app.consumer.assignment()
        return self.json({"ready": not busy}, status=503 if busy else 200)

    return Worker(app=app, state=state, settings=settings, processor=processor, customers=customers)


class TopicMismatchError(RuntimeError):
    """The input topic exists with another partition count than configured."""


def prepare_topics(settings: Settings) -> None:
    """Create missing topics before joining the group (a consumer subscribed to a missing
    topic gets no partitions until its next metadata refresh, minutes later)."""
    counts = ensure_topics(settings, TABLES)
    for topic in (settings.topic, settings.contacts_topic_name):
        if counts.get(topic) != settings.partitions:
            msg = (
                f"topic {topic} has {counts.get(topic)} partitions but "
                f"partitions={settings.partitions} is configured; set --partitions to match"
            )
            raise TopicMismatchError(msg)


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; faust's Worker stops agents and commits on the way out."""
    prepare_topics(settings)
    worker = create_app(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runner = faust.Worker(
        worker.app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        redirect_stdouts=False,
    )
    # faust's terminal spinner sets the root logger to DEBUG at levels >= warning, so every
    # debug call of faust and aiokafka (several per record sent) would build a log record
    runner.spinner = None
    tune_gc()
    runner.execute_from_commandline()
