"""Where the wallboard reads the components: the workers' /metrics, or Prometheus.

Either way the result is one ``Metrics`` mapping aggregated as docs/metrics.md's PromQL
does (sum without instance; max for the oldest wait and the longest first response), so the
figures are exact across workers.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from streams.config import ConfigError
from streams.wallboard.figures import (
    COMPONENTS,
    MAX_SAMPLES,
    NOW,
    PARTITION_ACTIVE,
    TOPIC_PARTITIONS,
    Labels,
    Metrics,
    W,
    combine,
)

TIMEOUT = aiohttp.ClientTimeout(total=5)
PASSWORD_ENV = "TICKETPULSE_SOURCE_PASSWORD"  # noqa: S105 - the variable's name


@dataclass(frozen=True)
class SourceAccess:
    """How the wallboard reaches workers or Prometheus served with a web config
    (``streams.metrics.web_config``): a CA to verify https with, and basic auth."""

    cafile: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never logged

    @classmethod
    def load(
        cls, cafile: Path | None, username: str | None, password_file: Path | None
    ) -> SourceAccess:
        """The password from ``$TICKETPULSE_SOURCE_PASSWORD`` or a file, never a flag."""
        password = os.environ.get(PASSWORD_ENV)
        if password_file is not None:
            try:
                password = password_file.read_text().strip()
            except OSError as exc:
                msg = f"cannot read the source password file {password_file}: {exc.strerror}"
                raise ConfigError(msg) from exc
        if username and not password:
            msg = (
                f"--source-username needs a password: set ${PASSWORD_ENV} or --source-password-file"
            )
            raise ConfigError(msg)
        if cafile is not None and not cafile.is_file():
            msg = f"--source-cafile {cafile} is not a file"
            raise ConfigError(msg)
        return cls(cafile, username, password)

    @cached_property
    def options(self) -> dict[str, Any]:
        """``ssl`` and the basic-auth header for ``ClientSession.get`` (https is verified
        with the system's CAs without ``cafile``)."""
        options: dict[str, Any] = {}
        if self.cafile is not None:
            options["ssl"] = ssl.create_default_context(cafile=str(self.cafile))
        if self.username and self.password:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            options["headers"] = {"Authorization": f"Basic {token}"}
        return options


@dataclass
class Reading:
    metrics: Metrics
    missing: list[str] = field(default_factory=list)  # sources that did not answer


class Source(Protocol):
    name: str

    async def read(self, session: aiohttp.ClientSession) -> Reading: ...


def parse_exposition(text: str) -> Metrics:
    """Prometheus text format as {(sample name, sorted labels): value}."""
    out: Metrics = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@dataclass
class WorkersSource:
    """Scrapes every worker's /metrics and sums them; a worker that does not answer is
    listed in ``missing`` (its partitions' figures are then absent, never guessed)."""

    urls: list[str]
    name: str = "workers"
    access: SourceAccess = field(default_factory=SourceAccess)

    async def read(self, session: aiohttp.ClientSession) -> Reading:
        texts = await asyncio.gather(*(self._get(session, u) for u in self.urls))
        missing = [u for u, text in zip(self.urls, texts, strict=True) if text is None]
        if len(missing) == len(self.urls):
            msg = f"no worker answered ({', '.join(self.urls)})"
            raise ConnectionError(msg)
        return Reading(combine(parse_exposition(t) for t in texts if t is not None), missing)

    async def _get(self, session: aiohttp.ClientSession, url: str) -> str | None:
        try:
            options = self.access.options
            async with session.get(url, timeout=TIMEOUT, **options) as response:
                response.raise_for_status()
                return await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return None


# every sample the board reads, and how Prometheus aggregates it across workers
QUERIED = [
    *COMPONENTS.values(),
    f"{W}first_response_seconds_bucket",
    f"{W}first_response_max_seconds",
    f"{W}acr_recontacted",
    *NOW.values(),
    "ticketpulse_service_level_objective_ratio",
    "ticketpulse_queue_calendar_info",
    PARTITION_ACTIVE,
    TOPIC_PARTITIONS,
]


@dataclass
class PrometheusSource:
    """Instant queries against Prometheus: ``sum without (instance, job)`` of each component
    (``max`` for the maxima and the objective), the aggregation the recording rules use."""

    url: str
    name: str = "prometheus"
    access: SourceAccess = field(default_factory=SourceAccess)

    async def read(self, session: aiohttp.ClientSession) -> Reading:
        results = await asyncio.gather(*(self._query(session, name) for name in QUERIED))
        metrics: Metrics = {}
        for name, samples in zip(QUERIED, results, strict=True):
            for labels, value in samples:
                metrics[(name, labels)] = value
        return Reading(metrics)

    async def _query(self, session: aiohttp.ClientSession, name: str) -> list[tuple[Labels, float]]:
        configuration = name.endswith(("objective_ratio", "calendar_info"))
        agg = "max" if name in MAX_SAMPLES or configuration else "sum"
        query = f"{agg} without (instance, job) ({name})"
        endpoint = f"{self.url.rstrip('/')}/api/v1/query"
        options = {"params": {"query": query}, **self.access.options}
        async with session.get(endpoint, timeout=TIMEOUT, **options) as response:
            response.raise_for_status()
            body = await response.json()
        if body.get("status") != "success":
            msg = f"Prometheus refused {query!r}: {body.get('error')}"
            raise ConnectionError(msg)
        return [
            (tuple(sorted(r["metric"].items())), float(r["value"][1]))
            for r in body["data"]["result"]
        ]
