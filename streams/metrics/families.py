"""Metric families as the KPI exporter builds them: rows of label values, cheap to render.

prometheus_client's families turn every sample into a ``Sample`` with a fresh labels
dict, and its exposition re-escapes them all: most of a scrape once the figures cost
O(series). A ``Family`` keeps each row as the label values tuple the exporter already
has; ``streams.metrics.exposition`` renders it, and ``metric()`` gives the
prometheus_client family (for ``collect()``, the registry and the tests that parse it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

Buckets = list[tuple[str, float]]  # cumulative (le, count), "+Inf" last
KINDS = {
    "gauge": GaugeMetricFamily,
    "counter": CounterMetricFamily,
    "gaugehistogram": GaugeHistogramMetricFamily,
    "histogram": HistogramMetricFamily,
}


@dataclass(slots=True)
class Family:
    name: str
    doc: str
    labels: Sequence[str]
    kind: str = "gauge"  # one of KINDS
    # (label values, value) or, for the histogram kinds, (label values, (buckets, sum))
    rows: list[tuple[tuple[str, ...], Any]] = field(default_factory=list)

    def add(self, values: Sequence[str], value: float) -> None:
        self.rows.append((tuple(values), value))

    def add_histogram(self, values: Sequence[str], buckets: Buckets, total: float) -> None:
        self.rows.append((tuple(values), (buckets, total)))

    def metric(self) -> Any:
        """The same family as a prometheus_client one."""
        family = KINDS[self.kind](self.name, self.doc, labels=list(self.labels))
        for values, value in self.rows:
            if self.kind.endswith("histogram"):
                family.add_metric(list(values), *value)
            else:
                family.add_metric(list(values), value)
        return family
