"""Producing to Kafka for replay and the simulator: keyed, ordered per key, counted."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError
from tqdm import tqdm

from streams.config import Settings
from streams.runtime.security import kafka_python_args
from streams.runtime.topics import BrokerUnreachableError
from streams.tools.simulator import Record


@dataclass
class ProduceSummary:
    records: int = 0
    keyed: int = 0
    unkeyed: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def line(self, what: str) -> str:
        rate = self.records / self.seconds if self.seconds else 0.0
        text = (
            f"{what}: {self.records} records ({self.keyed} keyed, {self.unkeyed} without a key), "
            f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f}s ({rate:,.0f}/s), "
            f"{self.failed} failed"
        )
        if self.errors:
            text += f"; first error: {self.errors[0]}"
        return text


def make_producer(settings: Settings) -> KafkaProducer:
    """acks=all and one request in flight, so retries cannot reorder a ticket's events;
    ``BrokerUnreachableError`` after ``connect_timeout_seconds`` without a broker."""
    try:
        return KafkaProducer(
            bootstrap_servers=settings.bootstrap_list,
            acks="all",
            retries=10,
            max_in_flight_requests_per_connection=1,
            linger_ms=5,
            batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
            client_id="ticketpulse-producer",
            bootstrap_timeout_ms=int(settings.connect_timeout_seconds * 1000),
            **kafka_python_args(settings),
        )
    except KafkaTimeoutError as exc:
        raise BrokerUnreachableError.of(settings, exc) from None


def key_of(line: bytes) -> bytes | None:
    """The record key of a JSONL line: its ticket_id, or None when there is none to read."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    ticket = doc.get("ticket_id") if isinstance(doc, dict) else None
    return ticket.encode() if isinstance(ticket, str) else None


def read_jsonl(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for raw in handle:
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield line


def produce(
    producer: KafkaProducer,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    total: int | None,
    description: str,
    rate: float = 0.0,
    progress: bool = True,
) -> ProduceSummary:
    """Send (key, value) pairs in order with a progress bar; optional rate limit (records/s)."""
    summary = ProduceSummary()
    started = time.monotonic()

    def failed(exc: BaseException) -> None:
        summary.failed += 1
        if len(summary.errors) < 3:
            summary.errors.append(repr(exc))

    # disable=None: a bar only on a terminal, never a flood of carriage returns in logs
    with tqdm(
        total=total, desc=description, unit="rec", disable=None if progress else True, smoothing=0.1
    ) as bar:
        for key, value in records:
            if rate > 0:
                delay = started + summary.records / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            producer.send(topic, key=key, value=value).add_errback(failed)
            summary.records += 1
            summary.bytes += len(value)
            if key is None:
                summary.unkeyed += 1
            else:
                summary.keyed += 1
            bar.update(1)
        producer.flush()
    summary.seconds = time.monotonic() - started
    return summary


def paced(
    records: Iterable[Record], start: float, speed: float
) -> Iterator[tuple[bytes | None, bytes]]:
    """Release simulated records when the wall clock reaches their emission time / speed."""
    wall0 = time.time()
    for record in records:
        if speed > 0:
            delay = wall0 + (record.emit_at - start) / speed - time.time()
            if delay > 0:
                time.sleep(delay)
        yield record.key, record.value
