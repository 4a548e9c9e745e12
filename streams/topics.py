"""Create the input and dead-letter topics with explicit partition counts."""

from __future__ import annotations

import contextlib

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.config import Settings

DLQ_RETENTION_MS = 7 * 24 * 3600 * 1000  # the DLQ holds customer data: keep it short


def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create missing topics; return the partition count of each, existing or new."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_list, client_id="ticketpulse-admin"
    )
    try:
        wanted = [
            NewTopic(settings.topic, settings.partitions, settings.replication_factor),
            NewTopic(
                settings.dlq_topic,
                1,
                settings.replication_factor,
                topic_configs={"retention.ms": str(DLQ_RETENTION_MS)},
            ),
        ]
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(missing)
        described = admin.describe_topics([t.name for t in wanted])
        return {d.get("name", d.get("topic")): len(d["partitions"]) for d in described}
    finally:
        admin.close()
