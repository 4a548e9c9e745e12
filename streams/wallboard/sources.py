"""Where the wallboard reads the components: the workers' /metrics, or Prometheus.

Either way the result is one ``Metrics`` mapping aggregated as docs/metrics.md's PromQL
does (sum without instance; max for the oldest wait and the longest first response), so the
figures are exact across workers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from streams.wallboard.figures import (
    ACTIVE_PARTITIONS,
    COMPONENTS,
    MAX_SAMPLES,
    NOW,
    TOPIC_PARTITIONS,
    Labels,
    Metrics,
    W,
    combine,
)

TIMEOUT = aiohttp.ClientTimeout(total=5)


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

    async def read(self, session: aiohttp.ClientSession) -> Reading:
        texts = await asyncio.gather(*(self._get(session, u) for u in self.urls))
        missing = [u for u, text in zip(self.urls, texts, strict=True) if text is None]
        if len(missing) == len(self.urls):
            msg = f"no worker answered ({', '.join(self.urls)})"
            raise ConnectionError(msg)
        return Reading(combine(parse_exposition(t) for t in texts if t is not None), missing)

    async def _get(self, session: aiohttp.ClientSession, url: str) -> str | None:
        try:
            async with session.get(url, timeout=TIMEOUT) as response:
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
    ACTIVE_PARTITIONS[0],
    TOPIC_PARTITIONS,
]


@dataclass
class PrometheusSource:
    """Instant queries against Prometheus: ``sum without (instance, job)`` of each component
    (``max`` for the maxima and the objective), the aggregation the recording rules use."""

    url: str
    name: str = "prometheus"

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
        async with session.get(endpoint, params={"query": query}, timeout=TIMEOUT) as response:
            response.raise_for_status()
            body = await response.json()
        if body.get("status") != "success":
            msg = f"Prometheus refused {query!r}: {body.get('error')}"
            raise ConnectionError(msg)
        return [
            (tuple(sorted(r["metric"].items())), float(r["value"][1]))
            for r in body["data"]["result"]
        ]
