"""The local broker launcher: data survives a restart, failures explain themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.tools.broker import launcher

pytestmark = pytest.mark.integration


def test_data_survives_restart_and_nothing_is_left_running(tmp_path: Path) -> None:
    data = tmp_path / "kafka"
    broker = launcher.start(data)
    first_port = broker.port
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("kept", 2, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send("kept", key=b"k", value=b"still here").get(timeout=30)
    producer.close()
    broker.stop()
    assert not broker.alive()

    again = launcher.start(data)
    try:
        assert again.port == first_port, "an earlier run's ports are reused when free"
        consumer = KafkaConsumer(
            "kept",
            bootstrap_servers=again.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=15000,
        )
        values = [m.value for m in consumer]
        consumer.close()
        assert values == [b"still here"]
    finally:
        again.stop()
    assert again.process.poll() is not None


def test_start_failure_shows_the_log_tail(tmp_path: Path) -> None:
    with pytest.raises(launcher.BrokerError) as info:
        launcher.start(tmp_path / "bad", heap="1k", timeout=30)
    text = str(info.value)
    assert "exited" in text
    assert "heap" in text.lower()
