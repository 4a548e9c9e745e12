"""Create the input, contacts and dead-letter topics with explicit partition counts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

from streams.config import Settings
from streams.runtime.security import diagnose, kafka_python_args


def changelog_topic(settings: Settings, table: str) -> str:
    """Faust's name for a table's changelog topic."""
    return f"{settings.app_id}-{table}-changelog"


class BrokerUnreachableError(RuntimeError):
    """No bootstrap server answered within ``connect_timeout_seconds``."""

    @classmethod
    def of(cls, settings: Settings, exc: Exception) -> BrokerUnreachableError:
        """The security setting at fault when there is one (``security.diagnose``), else
        that nothing answered."""
        reason = diagnose(settings)
        if reason is not None:
            return cls(f"cannot connect to Kafka: {reason}")
        msg = (
            f"cannot reach Kafka at {settings.bootstrap_servers} within "
            f"{settings.connect_timeout_seconds:g} s ({exc}); is the broker running, and is "
            "bootstrap_servers (--bootstrap-servers, KAFKA_BOOTSTRAP_SERVERS) right?"
        )
        return cls(msg)


def admin_client(settings: Settings) -> KafkaAdminClient:
    """An admin client, or ``BrokerUnreachableError`` after a bounded wait."""
    timeout_ms = int(settings.connect_timeout_seconds * 1000)
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_list,
            client_id="ticketpulse-admin",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms, 5000),
            **kafka_python_args(settings),
        )
    except KafkaTimeoutError as exc:
        raise BrokerUnreachableError.of(settings, exc) from None


def ensure_topics(settings: Settings, tables: tuple[str, ...] = ()) -> dict[str, int]:
    """Create missing topics; return the partition count of each, existing or new.

    ``tables``: also create their compacted changelog topics, co-partitioned with the input.
    Creating them before the worker joins its group avoids a race in which the first table
    write happens before the consumer's metadata knows the new changelog topic.
    """
    admin = admin_client(settings)
    try:
        wanted = [
            NewTopic(settings.topic, settings.partitions, settings.replication_factor),
            NewTopic(
                settings.contacts_topic_name, settings.partitions, settings.replication_factor
            ),
            NewTopic(
                settings.dlq_topic,
                1,
                settings.replication_factor,
                topic_configs={"retention.ms": str(round(settings.dlq_retention_hours * 3.6e6))},
            ),
        ]
        wanted += [
            NewTopic(
                changelog_topic(settings, table),
                settings.partitions,
                settings.replication_factor,
                topic_configs={"cleanup.policy": "compact"},
            )
            for table in tables
        ]
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(missing)
        return described_counts(admin, [t.name for t in wanted], settings.connect_timeout_seconds)
    finally:
        admin.close()


def described_counts(
    admin: KafkaAdminClient,
    names: list[str],
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """The partition count of each topic. A topic created a moment ago can still describe
    with no partitions while its metadata spreads (a worker once refused to start, "topic has
    0 partitions", right after creating it): asked again until none is empty or ``timeout_s``
    has passed; a topic still empty then is reported as it is."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = admin.describe_topics(names)
        counts = {d.get("name", d.get("topic")): len(d["partitions"]) for d in described}
        if all(counts.values()) or time.monotonic() >= deadline:
            return counts
        sleep(0.2)
