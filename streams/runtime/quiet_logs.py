"""Quiet, useful logs while Kafka is away.

A 25 s broker outage once wrote 126,271 ERROR/WARNING lines: the Kafka client logs every
failed connect, metadata refresh, fetch and coordinator lookup, about 80 a second, and
the first useful line drowned. Two parts keep an outage to a handful of lines:

- ``RepeatFilter`` passes the first WARNING-or-worse record of each message template of the
  Kafka clients and then one summary per window ("repeated N more times in the last 30 s").
- ``BrokerWatch`` says what is going on in one line when Kafka becomes unreachable and one
  when it is back (with the outage's length), and feeds ``ticketpulse_broker_up`` and the
  readiness page. Reachable = a bootstrap server accepts a TCP connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
# the Kafka clients' logger families, whose repeats are summarised; Faust's and mode's own
# warnings (a stuck shutdown, a crashed agent) always pass whole
NOISY = ("aiokafka", "kafka")
# our own loggers whose failure can repeat every second while it lasts (the window totals'
# warm-up timer), summarised the same way
OWN_REPEATING = ("streams.metrics.kpi_exporter.warm",)
MAX_KEYS = 1000  # distinct message templates remembered: bounded whatever is logged
# aiokafka logs a failed coordinator lookup as an ERROR even when it retries it, which every
# worker's first start on a new broker does (the offsets topic is being created): INFO then
COORDINATOR_LOG = "aiokafka.consumer.group_coordinator"


@dataclass
class _Seen:
    since: float
    suppressed: int = 0


@dataclass
class RepeatFilter(logging.Filter):
    """A ``logging.Filter``: repeats of one message template are summarised per window."""

    window_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    seen: dict[tuple[str, str], _Seen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key, now = (record.name, str(record.msg)), self.clock()
        entry = self.seen.get(key)
        if entry is not None and now - entry.since < self.window_s:
            entry.suppressed += 1
            return False
        if entry is not None and entry.suppressed:
            record.msg = (
                f"{record.msg} [repeated {entry.suppressed} more times in the last "
                f"{now - entry.since:.0f} s]"
            )
        if len(self.seen) >= MAX_KEYS and key not in self.seen:
            self.seen.pop(next(iter(self.seen)))
        self.seen[key] = _Seen(now)
        return True


class RetriedLookupAsInfo(logging.Filter):
    """A coordinator lookup that failed with a retriable error is retried at once: logged
    as INFO, not as an ERROR on every healthy first start. Attached after ``RepeatFilter``,
    which still summarises a lookup failing ten times a second while Kafka is away (it sees
    the ERROR); this turns what passes it into INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if record.levelno >= logging.ERROR and getattr(error, "retriable", False):
            record.levelno, record.levelname = logging.INFO, "INFO"
            new_broker = type(error).__name__ == "GroupCoordinatorNotAvailableError"
            hint = ": usual while a new broker creates its offsets topic" if new_broker else ""
            record.msg = f"{record.msg} (retried{hint})"
        return True


def install(repeat_filter: RepeatFilter) -> None:
    """Attach the filter to every logger of the noisy families that exists now (they are
    created at import; a logger's filters see the records logged through it), and to our
    own repeating ones."""
    manager = logging.Logger.manager
    logging.getLogger(COORDINATOR_LOG)  # created now if aiokafka has not yet: filtered below
    for name in list(manager.loggerDict):
        logger = manager.loggerDict[name]
        if isinstance(logger, logging.Logger) and name.split(".")[0] in NOISY:
            logger.addFilter(repeat_filter)
    for name in OWN_REPEATING:
        logging.getLogger(name).addFilter(repeat_filter)
    logging.getLogger(COORDINATOR_LOG).addFilter(RetriedLookupAsInfo())  # after the repeats'


@dataclass
class BrokerWatch:
    """Whether a bootstrap server answers, checked every ``interval_s``."""

    servers: list[str]  # host:port
    timeout_s: float = 1.0
    up: bool = True
    down_since: float | None = None

    async def check(self) -> bool:
        reachable = any(await asyncio.gather(*(self._connects(s) for s in self.servers)))
        self._moved(reachable, time.monotonic())
        return reachable

    def _moved(self, reachable: bool, now: float) -> None:
        if reachable == self.up:
            return
        self.up = reachable
        if not reachable:
            self.down_since = now
            log.warning(
                "Kafka is unreachable at %s: processing waits and the client keeps retrying; "
                "its repeated errors are summarised every 30 s",
                ",".join(self.servers),
            )
        else:
            away = now - (self.down_since or now)
            log.warning("Kafka is reachable again after %.0f s: processing resumes", away)

    async def _connects(self, server: str) -> bool:
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), self.timeout_s
            )
        except (OSError, TimeoutError, ValueError):
            return False
        writer.close()
        return True
