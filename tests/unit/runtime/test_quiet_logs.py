"""Repeated client errors are summarised, not repeated; the broker watch says once when Kafka
goes away and once when it is back (issue 15)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from streams.metrics.kpi_exporter import warm_log
from streams.runtime.quiet_logs import (
    COORDINATOR_LOG,
    BrokerWatch,
    RepeatFilter,
    RetriedLookupAsInfo,
    install,
)


def record(msg: str, level: int = logging.ERROR, name: str = "aiokafka.client"):
    return logging.LogRecord(name, level, __file__, 1, msg, ("node",), None)


def test_repeats_pass_once_per_window_with_a_count() -> None:
    now = [0.0]
    f = RepeatFilter(window_s=30, clock=lambda: now[0])
    passed = []
    for second in range(75):
        now[0] = float(second)
        for _ in range(80):  # the client's rate in an outage
            r = record("Unable connect to node %s")
            if f.filter(r):
                passed.append(r.getMessage())
    assert passed == [
        "Unable connect to node node",
        "Unable connect to node node [repeated 2399 more times in the last 30 s]",
        "Unable connect to node node [repeated 2399 more times in the last 30 s]",
    ]
    assert f.filter(record("debug noise", logging.INFO))  # below WARNING: untouched
    assert f.filter(record("another template"))  # each template has its own window


def test_the_worker_summarises_the_clients_and_the_warm_ups_repeats(monkeypatch) -> None:
    """The filter goes on the Kafka clients' loggers and on the window totals' warm-up
    logger, whose failure would otherwise log every second while it lasts."""
    import aiokafka.consumer.fetcher  # noqa: F401  (creates the client's loggers)

    monkeypatch.setattr(warm_log, "filters", [])
    client = logging.getLogger("aiokafka.consumer.fetcher")
    monkeypatch.setattr(client, "filters", [])
    f = RepeatFilter()
    install(f)
    assert warm_log.filters == [f] and client.filters == [f]
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.removeFilter(f)


def test_the_watch_logs_the_outage_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> list[bool]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        watch = BrokerWatch([f"127.0.0.1:{port}"])
        seen = [await watch.check()]
        server.close()
        await server.wait_closed()
        seen += [await watch.check(), await watch.check()]
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        seen.append(await watch.check())
        server.close()
        return seen

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(run()) == [True, False, False, True]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("Kafka is unreachable at 127.0.0.1:")
    assert lines[1].startswith("Kafka is reachable again after")


def test_a_retried_coordinator_lookup_is_info_and_a_fatal_one_stays_an_error(monkeypatch) -> None:
    """aiokafka logs ``Group Coordinator Request failed`` as an ERROR and retries it when
    the error is retriable: every first start on a new broker did so. While Kafka is away
    the lookup fails ten times a second: the repeat filter, first, still summarises those."""
    from aiokafka import errors

    def lookup(error: Exception) -> logging.LogRecord:
        return logging.LogRecord(
            COORDINATOR_LOG, logging.ERROR, __file__, 1, "Group Coordinator Request failed: %s",
            (error,), None,
        )  # fmt: skip

    logger = logging.getLogger(COORDINATOR_LOG)
    monkeypatch.setattr(logger, "filters", [])
    install(RepeatFilter())
    kinds = [type(x) for x in logger.filters]
    assert kinds == [RepeatFilter, RetriedLookupAsInfo]  # repeats summarised on the ERROR
    away = [lookup(errors.NodeNotReadyError("node 1")) for _ in range(80)]
    passed = [r for r in away if logger.filter(r)]
    assert len(passed) == 1 and passed[0].getMessage().endswith("(retried)")
    assert passed[0].levelno == logging.INFO
    started = lookup(errors.GroupCoordinatorNotAvailableError())
    assert RetriedLookupAsInfo().filter(started) and started.levelname == "INFO"
    assert "(retried: usual while a new broker creates its offsets topic)" in started.getMessage()
    fatal = lookup(errors.GroupAuthorizationFailedError())
    assert RetriedLookupAsInfo().filter(fatal) and fatal.levelno == logging.ERROR
