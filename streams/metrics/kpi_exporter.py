"""Scrape-time KPI families: window figures, Now gauges and cumulative counters.

Reads the tables of actively owned partitions only and builds everything afresh,
so a partition that moved to another worker is exported by that worker alone.
Every window figure is an additive component (count, sum or histogram bucket):
``sum without (instance)`` across workers is exact; ratios belong in PromQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from streams.core.buckets import Entry, bound_label
from streams.core.contacts import days_label, repeat_contacts
from streams.core.now import NowFigures, now_figures
from streams.core.policy import Policy, service_level_denominator
from streams.core.windows import (
    Maxima,
    Sums,
    merge_sums,
    window_maxima,
    window_range,
    window_sums,
)
from streams.metrics.catalogue import (
    ACR_FIGURES,
    AGENT_FIGURES,
    CALENDAR_INFO,
    COUNTERS,
    HISTOGRAMS,
    LABELS,
    NO_CALENDAR,
    NOW_GAUGES,
    REPEATS,
    SERVICE_LEVEL,
    TARGETS,
    WINDOW_FIGURES,
    WINDOW_MAXIMA,
    WINDOW_SUMS,
    window_metric,
)
from streams.processing.bucket_store import Watermarks, bucket_contents
from streams.processing.customers import CustomerProcessor, customer_rows
from streams.processing.kpi import KpiProcessor, open_rows

_SL_ENTRIES = ("first_response", "first_response_within_target", "abandoned", "short_abandoned")


@dataclass
class LabelFolder:
    """Queue names outside the allow-list (or past the cap) are exported as ``other``."""

    allowlist: frozenset[str] | None
    max_queues: int
    seen: dict[str, None]

    @classmethod
    def of(cls, allowlist: list[str] | None, cap: int) -> LabelFolder:
        return cls(frozenset(allowlist) if allowlist is not None else None, cap, {})

    def __call__(self, queue: str) -> str:
        if self.allowlist is not None:
            return queue if queue in self.allowlist else "other"
        if queue in self.seen or len(self.seen) < self.max_queues:
            self.seen.setdefault(queue)
            return queue
        return "other"


class KpiCollector(Collector):
    def __init__(
        self,
        processor: KpiProcessor,
        customers: CustomerProcessor,
        *,
        owned: Callable[[], set[int]],
        owned_contacts: Callable[[], set[int]],
        clock: str,
        windows: dict[str, float | None],
        timezone: str,
        fold: LabelFolder,
        fold_agent: LabelFolder | None = None,
    ) -> None:
        self.proc = processor
        self.customers = customers
        self.owned = owned
        self.owned_contacts = owned_contacts
        self.clock = clock
        self.windows = windows
        self.tz = timezone
        self.fold = fold
        self.fold_agent = fold_agent or LabelFolder(None, 50, {})

    @property
    def policy(self) -> Policy:
        return self.proc.settings.policy

    def _ends(self, partitions: set[int], clock: Watermarks) -> dict[int, float]:
        if self.clock == "wall":
            now = time.time()
            return dict.fromkeys(partitions, now)
        ends = {}
        for p in partitions:
            end = clock.clock(p)
            if end is not None:
                ends[p] = end
        return ends

    def collect(self) -> Iterator[Any]:
        ends = self._ends(self.owned(), self.proc.clock)
        cends = self._ends(self.owned_contacts(), self.customers.clock)
        windows: dict[str, Sums] = {w: {} for w in self.windows}
        maxima: dict[str, Maxima] = {w: {} for w in self.windows}
        for table, partition_ends in (
            (self.proc.tables.buckets, ends),
            (self.customers.tables.cbuckets, cends),
        ):
            self._add_buckets(windows, maxima, table, partition_ends)
        self._add_repeats(windows, cends)
        yield from self._window_families(windows)
        if self.policy.per_agent:
            yield from self._agent_families(windows)
        yield from self._max_families(maxima)
        yield from self._now_families(ends)
        yield from self._cumulative_families()

    def _add_buckets(
        self,
        windows: dict[str, Sums],
        maxima: dict[str, Maxima],
        table: Any,
        ends: dict[int, float],
    ) -> None:
        """Sums and maxima of each partition's windows, ending where that partition's clock is."""
        rows, max_rows = bucket_contents(table, set(ends))
        width = self.proc.settings.bucket_s
        for p, end in ends.items():
            for w, sums in window_sums(rows[p], self.windows, end, width, self.tz).items():
                windows[w] = merge_sums(windows[w], self._folded(sums))
            for w, values in window_maxima(max_rows[p], self.windows, end, width, self.tz).items():
                for (name, q, c), value in values.items():
                    key = (name, self.fold(q), c)
                    maxima[w][key] = max(maxima[w].get(key, value), value)

    def _add_repeats(self, windows: dict[str, Sums], ends: dict[int, float]) -> None:
        """Repeat contacts are distinct counts per window: computed from the customers table."""
        width = self.proc.settings.bucket_s
        ranges = {
            p: {w: window_range(w, span, end, width, self.tz) for w, span in self.windows.items()}
            for p, end in ends.items()
        }
        for p, contacts in customer_rows(self.customers.tables.customers, set(ends)):
            for w, (first, stop) in ranges[p].items():
                sums = windows[w]
                for name, q, c in repeat_contacts(contacts, first, stop):
                    key = (Entry(name), self.fold(q), c)
                    total, count = sums.get(key, (0.0, 0))
                    sums[key] = (total + 1, count + 1)

    def _folded(self, sums: Sums) -> Sums:
        out: Sums = {}
        for (entry, queue, channel), (total, count) in sums.items():
            key = (entry, self.fold(queue), channel)
            s, c = out.get(key, (0.0, 0))
            out[key] = (s + total, c + count)
        return out

    def _window_families(self, windows: dict[str, Sums]) -> Iterator[Any]:
        series = sorted({(q, c) for sums in windows.values() for (_, q, c) in sums})
        for figures, part in ((WINDOW_FIGURES, 1), (WINDOW_SUMS, 0), (REPEATS, 1)):
            for figure, (name, doc) in figures.items():
                fam = GaugeMetricFamily(f"ticketpulse_window_{name}", doc, labels=LABELS)
                entry = Entry(figure)
                for w, sums in windows.items():
                    for q, c in series:
                        fam.add_metric([q, c, w], sums.get((entry, q, c), (0.0, 0))[part])
                yield fam
        days = [days_label(d) for d in self.policy.recontact_days]
        for acr, (name, doc) in ACR_FIGURES.items():
            fam = GaugeMetricFamily(f"ticketpulse_window_{name}", doc, labels=[*LABELS, "days"])
            for w, sums in windows.items():
                for q, c in series:
                    for d in days:
                        count = sums.get((Entry(acr, days=d), q, c), (0.0, 0))[1]
                        fam.add_metric([q, c, w, d], count)
            yield fam
        yield from self._service_level(windows, series)
        bounds = self.policy.bounds()
        for histogram, (name, doc) in HISTOGRAMS.items():
            hist = GaugeHistogramMetricFamily(f"ticketpulse_window_{name}", doc, labels=LABELS)
            for w, sums in windows.items():
                for q, c in series:
                    total = sums.get((Entry(histogram), q, c), (0.0, 0))
                    buckets = _cumulate(sums, histogram, q, c, bounds)
                    hist.add_metric([q, c, w], buckets, total[0])
            yield hist

    def _service_level(
        self, windows: dict[str, Sums], series: list[tuple[str, str]]
    ) -> Iterator[Any]:
        num, den = (
            GaugeMetricFamily(window_metric(name), doc, labels=LABELS)
            for name, doc in SERVICE_LEVEL.items()
        )
        for w, sums in windows.items():
            for q, c in series:
                count = {e: sums.get((Entry(e), q, c), (0.0, 0))[1] for e in _SL_ENTRIES}
                denominator = service_level_denominator(
                    self.policy.for_queue(q, c).service_level,
                    count["first_response"],
                    count["abandoned"],
                    count["short_abandoned"],
                )
                num.add_metric([q, c, w], count["first_response_within_target"])
                den.add_metric([q, c, w], denominator)
        yield num
        yield den

    def _agent_families(self, windows: dict[str, Sums]) -> Iterator[Any]:
        """Entries of per-agent twins, agents folded past the allow-list/cap."""
        per: dict[str, dict[tuple[str, ...], list[float]]] = {base: {} for base in AGENT_FIGURES}
        for w, sums in windows.items():
            for (entry, q, c), (total, count) in sums.items():
                if not entry.agent or entry.figure not in per:
                    continue
                days = (entry.days,) if entry.days else ()
                key = (q, c, w, self.fold_agent(entry.agent), *days)
                base = entry.figure
                acc = per[base].setdefault(key, [0.0, 0.0])
                acc[0] += total
                acc[1] += count
        for base, (count_name, sum_name, doc) in AGENT_FIGURES.items():
            labels = [*LABELS, "agent", *(["days"] if base == "agent_acr_recontacted" else [])]
            counts = GaugeMetricFamily(f"ticketpulse_window_{count_name}", doc, labels=labels)
            sums_fam = (
                GaugeMetricFamily(f"ticketpulse_window_{sum_name}", doc, labels=labels)
                if sum_name
                else None
            )
            for key, (value_sum, n) in sorted(per[base].items()):
                counts.add_metric(list(key), n)
                if sums_fam is not None:
                    sums_fam.add_metric(list(key), value_sum)
            yield counts
            if sums_fam is not None:
                yield sums_fam

    def _max_families(self, maxima: dict[str, Maxima]) -> Iterator[Any]:
        for figure, (metric, doc) in WINDOW_MAXIMA.items():
            fam = GaugeMetricFamily(window_metric(metric), doc, labels=LABELS)
            for w, values in maxima.items():
                for (name, q, c), value in sorted(values.items()):
                    if name == figure:
                        fam.add_metric([q, c, w], value)
            yield fam

    def _now_families(self, ends: dict[int, float]) -> Iterator[Any]:
        figures: dict[tuple[str, str], NowFigures] = {}
        by_partition: dict[int, list[Any]] = {}
        for p, ticket in open_rows(self.proc.tables.tickets, set(ends)):
            by_partition.setdefault(p, []).append(ticket)
        for p, tickets in by_partition.items():
            for (q, c), fig in now_figures(tickets, ends[p], self.policy).items():
                total = figures.setdefault((self.fold(q), c), NowFigures())
                total.open += fig.open
                total.waiting += fig.waiting
                total.oldest_wait_s = max(total.oldest_wait_s, fig.oldest_wait_s)
                total.first_response_breaches += fig.first_response_breaches
                total.resolution_breaches += fig.resolution_breaches
        for name, (doc, attr) in NOW_GAUGES.items():
            fam = GaugeMetricFamily(f"ticketpulse_{name}", doc, labels=["queue", "channel"])
            for (q, c), fig in sorted(figures.items()):
                fam.add_metric([q, c], getattr(fig, attr))
            yield fam

    def _target_families(self, series: list[tuple[str, str]]) -> Iterator[Any]:
        """The configured targets of the queues this worker has seen, for rules and panels."""
        for name, (doc, attr) in TARGETS.items():
            fam = GaugeMetricFamily(f"ticketpulse_{name}", doc, labels=["queue", "channel"])
            for q, c in series:
                fam.add_metric([q, c], getattr(self.policy.for_queue(q, c), attr))
            yield fam
        name, doc = CALENDAR_INFO
        info = GaugeMetricFamily(
            f"ticketpulse_{name}", doc, labels=["queue", "channel", "calendar"]
        )
        for q, c in series:
            calendar = self.policy.for_queue(q, c).calendar
            info.add_metric([q, c, calendar.name if calendar else NO_CALENDAR], 1)
        yield info

    def _cumulative_families(self) -> Iterator[Any]:
        series = sorted({(q, c) for (_, q, c) in self.proc.cumulative})
        yield from self._target_families(series)
        den = CounterMetricFamily(
            "ticketpulse_service_level_denominator",
            "Outcomes entering the service-level denominator (per the queue's preset) since the "
            "worker started.",
            labels=["queue", "channel"],
        )
        for q, c in series:
            n = {
                e: int(self.proc.cumulative.get((Entry(e), q, c), [0.0, 0])[1]) for e in _SL_ENTRIES
            }
            preset = self.policy.for_queue(q, c).service_level
            den.add_metric(
                [q, c],
                service_level_denominator(
                    preset, n["first_response"], n["abandoned"], n["short_abandoned"]
                ),
            )
        yield den
        for entry in COUNTERS:
            name, doc = WINDOW_FIGURES[entry]
            fam = CounterMetricFamily(
                f"ticketpulse_{name}",
                doc + " Since the worker started.",
                labels=["queue", "channel"],
            )
            for q, c in series:
                count = self.proc.cumulative.get((Entry(entry), q, c), [0.0, 0])[1]
                fam.add_metric([q, c], count)
            yield fam
        bounds = self.policy.bounds()
        hist = HistogramMetricFamily(
            "ticketpulse_first_response_seconds",
            "First response time since the worker started, for rate()-based alerting.",
            labels=["queue", "channel"],
        )
        flat: Sums = {k: (v[0], int(v[1])) for k, v in self.proc.cumulative.items()}
        for q, c in series:
            hist.add_metric(
                [q, c],
                _cumulate(flat, "first_response", q, c, bounds),
                flat.get((Entry("first_response"), q, c), (0.0, 0))[0],
            )
        yield hist


def _cumulate(
    sums: Sums, entry: str, q: str, c: str, bounds: tuple[float, ...]
) -> list[tuple[str, float]]:
    running = 0
    out: list[tuple[str, float]] = []
    for label in [*(bound_label(b, bounds) for b in bounds), "+Inf"]:
        running += sums.get((Entry(entry, le=label), q, c), (0.0, 0))[1]
        out.append((label, float(running)))
    return out
