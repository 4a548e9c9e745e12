"""Scrape-time KPI families: window figures, Now gauges and cumulative counters.

Reads the tables of actively owned partitions only (the worker hands it none while
they change hands: partial tables), so a partition that moved to another worker is
exported by that worker alone.
Every window figure is an additive component (count, sum or histogram bucket):
``sum without (instance)`` across workers is exact; ratios belong in PromQL.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.registry import Collector

from streams.core.buckets import Entry, bound_label
from streams.core.contacts import days_label
from streams.core.facts import UNKNOWN_AGENT
from streams.core.now import NowFigures
from streams.core.policy import Policy, service_level_denominator
from streams.core.windows import Maxima, Sums
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
from streams.metrics.exposition import TextRenderer
from streams.metrics.families import Family
from streams.metrics.serving import PAUSE, run_in_pauses
from streams.processing.bucket_store import Watermarks
from streams.processing.customers import CustomerProcessor
from streams.processing.kpi import KpiProcessor, figures_by_pass
from streams.processing.repeat_totals import RepeatTotals
from streams.processing.window_totals import SCALE, Key, WindowState, WindowTotals

ExactSums = dict[Key, list[int]]  # (entry, queue label, channel) -> [exact sum, count]

# a failure that repeats: one line per 30 s, counted (the worker's RepeatFilter is
# attached to it: streams.runtime.quiet_logs.OWN_REPEATING)
warm_log = logging.getLogger(f"{__name__}.warm")

_NONE = (0.0, 0)  # (sum, count) of a series with nothing in a window
_SL_ENTRIES = ("first_response", "first_response_within_target", "abandoned", "short_abandoned")


# distinct folded names counted, at most: a hostile stream may send millions (row 11 of
# docs/reliability.md), and the gauge need only say "some" and roughly how many
FOLDED_COUNTED = 10_000
fold_log = logging.getLogger(f"{__name__}.fold")


@dataclass
class LabelFolder:
    """Queue (or agent) names outside the allow-list, or past the cap, are exported as
    ``other``. Without an allow-list the first ``max_queues`` names a worker meets get
    their own label: another worker, or this one after a restart, may meet others first,
    so the names it folds are counted (``folded``) and the first one is logged."""

    allowlist: frozenset[str] | None
    max_queues: int
    seen: dict[str, None]
    label: str = "queue"
    folded: set[str] = field(default_factory=set)
    # a name -> the label it is exported as (``pseudonyms``), for the names that get one
    shown: Callable[[str], str] | None = None

    @classmethod
    def of(
        cls,
        allowlist: list[str] | None,
        cap: int,
        label: str = "queue",
        shown: Callable[[str], str] | None = None,
    ) -> LabelFolder:
        listed = frozenset(allowlist) if allowlist is not None else None
        return cls(listed, cap, {}, label, shown=shown)

    @property
    def rule(self) -> str:
        """How names get a label: ``allowlist``, or ``first_seen`` (up to the cap)."""
        return "first_seen" if self.allowlist is None else "allowlist"

    def __call__(self, queue: str) -> str:
        if self._named(queue):
            self.seen.setdefault(queue)
            return queue if self.shown is None else self.shown(queue)
        if queue not in self.folded and len(self.folded) < FOLDED_COUNTED:
            if not self.folded and self.allowlist is None:
                fold_log.warning(
                    "more than %d distinct %s names: the others are exported as "
                    '%s="other", and another worker may name other ones; set %s_allowlist '
                    "(docs/metrics.md, Cardinality)",
                    self.max_queues, self.label, self.label, self.label,
                )  # fmt: skip
            self.folded.add(queue)
        return "other"

    @property
    def named(self) -> int:
        """Names met so far that have a label of their own."""
        return len(self.seen)

    def peek(self, queue: str) -> str:
        """The label ``queue`` has, or would get if met now, without meeting it (a
        self-check labels no name)."""
        if not self._named(queue):
            return "other"
        return queue if self.shown is None else self.shown(queue)

    def _named(self, queue: str) -> bool:
        """Whether ``queue`` has (or, met now, would get) a label of its own."""
        if self.allowlist is not None:
            return queue in self.allowlist
        return queue in self.seen or len(self.seen) < self.max_queues


def pseudonyms(salt: bytes) -> Callable[[str], str]:
    """An agent id -> ``a-`` and 16 hex digits of HMAC-SHA256(salt, id): the same on every
    worker given the same salt, and no way back to the id without it (a plain hash of an id
    could be reversed by hashing every id). ``unknown`` (no ``agent_id``) stays as it is."""

    @functools.cache
    def shown(agent: str) -> str:
        if agent == UNKNOWN_AGENT:
            return agent
        return "a-" + hmac.new(salt, agent.encode(), hashlib.sha256).hexdigest()[:16]

    return shown


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
        listen: bool = True,
    ) -> None:
        self.proc = processor
        self.customers = customers
        self.owned = owned
        self.owned_contacts = owned_contacts
        self.clock = clock
        self.windows = windows
        self.tz = timezone
        self.fold = fold
        self.fold_agent = fold_agent or LabelFolder(None, 50, {}, "agent")
        self.listen = listen  # else a copy built afresh from the tables (``rebuilt``)
        # totals per exported queue label (a scrape is O(series) however many queues
        # arrive), kept up to date by every write when ``listen``
        args = (windows, timezone, fold)
        agents = self.fold_agent  # per-agent twins summed per agent label as they are written
        self.totals = WindowTotals(processor.store, *args, agents, listen=listen)
        self.ctotals = WindowTotals(customers.store, *args, agents, listen=listen)
        self.repeats = RepeatTotals(customers, *args, listen=listen)
        if listen:  # the open tickets and counters since start, kept per label too
            processor.label_with(fold)

    @property
    def policy(self) -> Policy:
        return self.proc.settings.policy

    def warm(self) -> Iterator[None]:
        """Build the totals of every owned partition that has a clock and none yet (after a
        start, a rebalance or a recovery, or once a partition's first record sets its clock),
        a ``PAUSE`` before each, and the open-ticket index. Batches then keep them up to date,
        so the first scrape after a start reads them instead of building every partition at
        once (0.4 s at the end of the bench's log). Partitions built already are left as
        they are: a scrape slides their windows when it reads them."""
        sides = (
            (self.totals, self.owned, self.proc.clock),
            (self.ctotals, self.owned_contacts, self.customers.clock),
        )
        failed: list[Exception] = []
        for totals, owned, clock in sides:
            for p in self._ends(owned(), clock):
                if not totals.parts.get(p):  # none, or a fill that failed
                    yield PAUSE
                    # still owned and unbuilt (a scrape may have built it meanwhile): at the
                    # clock of now, never sliding back what a scrape moved on
                    end = self._ends({p} & owned(), clock).get(p)
                    if end is None or totals.parts.get(p):
                        continue
                    try:
                        totals.read(p, end)
                    except Exception as exc:  # the others are built all the same
                        failed.append(exc)
        index = self.proc.open_now  # the open tickets: a pass over the table, in slices
        if not index.mirroring and self._ends(self.owned(), self.proc.clock):
            yield PAUSE
            for _ in index.mirror_in_slices():
                yield PAUSE
        ends = self._ends(self.owned_contacts(), self.customers.clock)
        if any(p not in self.repeats.parts for p in ends):
            yield PAUSE
            still = self.owned_contacts()
            self.repeats.build({p: end for p, end in ends.items() if p in still})
        if failed:
            raise failed[0]  # for the worker to log; the next warm-up tries those again

    def rebuilt(self) -> KpiCollector:
        """A collector of the same tables and labels whose totals are built afresh when read
        and never kept up to date: what the live ones must equal (``self_check``)."""
        return KpiCollector(
            self.proc,
            self.customers,
            owned=self.owned,
            owned_contacts=self.owned_contacts,
            clock=self.clock,
            windows=self.windows,
            timezone=self.tz,
            fold=self.fold,  # the same labels: a queue keeps the label it was exported as
            fold_agent=self.fold_agent,
            listen=False,
        )

    def built(self) -> dict[str, list[int]]:
        """The partitions whose totals are built, per kind (for /stats)."""
        return {
            "tickets": sorted(p for p, states in self.totals.parts.items() if states),
            "customers": sorted(p for p, states in self.ctotals.parts.items() if states),
            "repeats": sorted(self.repeats.parts),  # set only once a scan is complete
        }

    def _ends(
        self, partitions: set[int], clock: Watermarks, now: float | None = None
    ) -> dict[int, float]:
        if self.clock == "wall":
            return dict.fromkeys(partitions, time.time() if now is None else now)
        ends = {}
        for p in partitions:
            end = clock.clock(p)
            if end is not None:
                ends[p] = end
        return ends

    def collect(self) -> Iterator[Any]:
        """prometheus_client families (the registry's interface; ``families`` is faster)."""
        for family in self.families():
            if family is not PAUSE:
                yield family.metric()

    def families(
        self, now: float | None = None, windows_only: bool = False
    ) -> Iterator[Family | None]:
        """Every KPI family, as rows for ``streams.metrics.exposition.TextRenderer``, with
        ``PAUSE`` between partitions where a sliced rendering (``serving``) may yield.
        ``now``: the wall clock's instant, if not the time of the call (a self-check
        renders twice at one instant); ``windows_only``: the window families alone."""
        ends = self._ends(self.owned(), self.proc.clock, now)
        cends = self._ends(self.owned_contacts(), self.customers.clock, now)
        merged: dict[str, ExactSums] = {w: {} for w in self.windows}
        maxima: dict[str, Maxima] = {w: {} for w in self.windows}
        yield from self._add_buckets(merged, maxima, self.totals, ends, self.owned)
        yield from self._add_buckets(merged, maxima, self.ctotals, cends, self.owned_contacts)
        windows = {w: _inexact(sums) for w, sums in merged.items()}
        yield from self._add_repeats(windows, cends)
        yield from self._window_families(windows)
        if self.policy.per_agent:
            yield from self._agent_families(merged)
        yield from self._max_families(maxima)
        if not windows_only:
            yield from self._now_families(ends)
            yield from self._cumulative_families()
            yield from self._label_families()

    def _add_buckets(
        self,
        windows: dict[str, ExactSums],
        maxima: dict[str, Maxima],
        totals: WindowTotals,
        ends: dict[int, float],
        owned: Callable[[], set[int]],
    ) -> Iterator[None]:
        """Sums and maxima of each partition's windows, ending where that partition's clock
        is: read from totals kept up to date as buckets are written, O(series). A pause
        before each partition's read; one that moved to another worker before it is left
        out, one forgotten after it (a rebalance) keeps the sums it held when read."""
        read: dict[int, dict[str, WindowState]] = {}
        for p, end in ends.items():
            yield PAUSE
            if p not in owned():
                continue
            read[p] = totals.read(p, end)
            for w, state in read[p].items():  # kept per label: one per exported series
                for key, value in state.label_maxima.items():
                    maxima[w][key] = max(maxima[w].get(key, value), value)
        for w, sums in windows.items():  # the partitions read, with batches applied since
            totals.add_into(sums, w, read)

    def _add_repeats(self, windows: dict[str, Sums], ends: dict[int, float]) -> Iterator[None]:
        """Repeat contacts are distinct counts per window: kept per customer change. The
        partitions not read since a rebalance are built first, in one scan of the customers;
        a pause before each partition's read, as for the buckets."""
        yield PAUSE
        owned = self.owned_contacts()
        self.repeats.build({p: end for p, end in ends.items() if p in owned})
        for p, end in ends.items():
            yield PAUSE
            if p not in self.owned_contacts():
                continue  # moved to another worker during the pause
            for w, repeats in self.repeats.read(p, end).items():
                sums = windows[w]
                for (name, q, c), n in repeats.counts.items():  # q: a label already
                    key = (Entry(name), q, c)
                    total, count = sums.get(key, (0.0, 0))
                    sums[key] = (total + n, count + n)

    def _window_families(self, windows: dict[str, Sums]) -> Iterator[Any]:
        series = sorted({(q, c) for sums in windows.values() for (_, q, c) in sums})
        # every (window's sums, queue, channel, label values), in the families' row order
        rows = [(sums, q, c, (q, c, w)) for w, sums in windows.items() for q, c in series]
        for figures, part in ((WINDOW_FIGURES, 1), (WINDOW_SUMS, 0), (REPEATS, 1)):
            for figure, (name, doc) in figures.items():
                fam = Family(f"ticketpulse_window_{name}", doc, LABELS)
                entry = Entry(figure)
                fam.rows = [(v, sums.get((entry, q, c), _NONE)[part]) for sums, q, c, v in rows]
                yield fam
        days = [(days_label(d), d) for d in self.policy.recontact_days]
        for acr, (name, doc) in ACR_FIGURES.items():
            fam = Family(f"ticketpulse_window_{name}", doc, [*LABELS, "days"])
            entries = [(Entry(acr, days=label), label) for label, _ in days]
            fam.rows = [
                ((*v, label), sums.get((entry, q, c), _NONE)[1])
                for sums, q, c, v in rows
                for entry, label in entries
            ]
            yield fam
        yield from self._service_level(windows, series)
        bounds = self.policy.bounds()
        for histogram, (name, doc) in HISTOGRAMS.items():
            hist = Family(f"ticketpulse_window_{name}", doc, LABELS, "gaugehistogram")
            entry = Entry(histogram)
            hist.rows = [
                (v, (_cumulate(sums, histogram, q, c, bounds), sums.get((entry, q, c), _NONE)[0]))
                for sums, q, c, v in rows
            ]
            yield hist

    def _service_level(
        self, windows: dict[str, Sums], series: list[tuple[str, str]]
    ) -> Iterator[Any]:
        num, den = (Family(window_metric(name), doc, LABELS) for name, doc in SERVICE_LEVEL.items())
        for w, sums in windows.items():
            for q, c in series:
                count = {e: sums.get((Entry(e), q, c), (0.0, 0))[1] for e in _SL_ENTRIES}
                denominator = service_level_denominator(
                    self.policy.for_queue(q, c).service_level,
                    count["first_response"],
                    count["abandoned"],
                    count["short_abandoned"],
                )
                num.add([q, c, w], count["first_response_within_target"])
                den.add([q, c, w], denominator)
        yield num
        yield den

    def _agent_families(self, windows: dict[str, ExactSums]) -> Iterator[Any]:
        """Entries of per-agent twins, kept per agent label (the allow-list, the cap, the
        pseudonym: ``WindowTotals.fold_agent``) as exact integers: floats added in the dicts'
        order would round differently from one worker's history to another's in the last
        digit (``/selfcheck`` saw it)."""
        per: dict[str, dict[tuple[str, ...], list[int]]] = {base: {} for base in AGENT_FIGURES}
        for w, sums in windows.items():
            for (entry, q, c), (total, count) in sums.items():
                if not entry.agent or entry.figure not in per:
                    continue
                days = (entry.days,) if entry.days else ()
                key = (q, c, w, entry.agent, *days)
                base = entry.figure
                acc = per[base].setdefault(key, [0, 0])
                acc[0] += total
                acc[1] += count
        for base, (count_name, sum_name, doc, sum_doc) in AGENT_FIGURES.items():
            labels = [*LABELS, "agent", *(["days"] if base == "agent_acr_recontacted" else [])]
            counts = Family(f"ticketpulse_window_{count_name}", doc, labels)
            sums_fam = None
            if sum_name is not None and sum_doc is not None:
                sums_fam = Family(f"ticketpulse_window_{sum_name}", sum_doc, labels)
            for key, (exact_sum, n) in sorted(per[base].items()):
                counts.add(list(key), float(n))
                if sums_fam is not None:
                    sums_fam.add(list(key), exact_sum / SCALE)
            yield counts
            if sums_fam is not None:
                yield sums_fam

    def _max_families(self, maxima: dict[str, Maxima]) -> Iterator[Any]:
        for figure, (metric, doc) in WINDOW_MAXIMA.items():
            fam = Family(window_metric(metric), doc, LABELS)
            for w, values in maxima.items():
                for (name, q, c), value in sorted(values.items()):
                    if name == figure:
                        fam.add([q, c, w], value)
            yield fam

    def _now_families(self, ends: dict[int, float]) -> Iterator[Any]:
        figures: dict[tuple[str, str], NowFigures] = {}
        for per_series in self._now_figures(ends).values():
            for series, fig in per_series.items():
                figures.setdefault(series, NowFigures()).add(fig)
        for name, (doc, attr) in NOW_GAUGES.items():
            fam = Family(f"ticketpulse_{name}", doc, ["queue", "channel"])
            for (q, c), fig in sorted(figures.items()):
                fam.add([q, c], getattr(fig, attr))
            yield fam

    def now_figures(self, now: float | None = None) -> dict[int, dict[tuple[str, str], NowFigures]]:
        """The Now figures of each owned partition by queue label x channel (``self_check``
        compares them): at ``now`` on the wall clock, else at each partition's clock."""
        return self._now_figures(self._ends(self.owned(), self.proc.clock, now))

    def _now_figures(self, ends: dict[int, float]) -> dict[int, dict[tuple[str, str], NowFigures]]:
        """Per partition, from the open tickets kept by label and rules; a copy built afresh
        (``rebuilt``) passes over every held ticket instead, as scrapes did until 2026-12-06,
        and adds up its queues' figures per label (each queue labelled as it is, or would be:
        a check labels no name)."""
        if self.listen:
            return self.proc.open_now.figures(ends, self.policy)
        out: dict[int, dict[tuple[str, str], NowFigures]] = {}
        for p, per_queue in figures_by_pass(self.proc.tables.tickets, ends, self.policy).items():
            folded = out[p] = {}
            for (q, c), fig in per_queue.items():
                folded.setdefault((self.fold.peek(q), c), NowFigures()).add(fig)
        return out

    def _label_families(self) -> Iterator[Family]:
        """How many queue (and agent) names have a label of their own, and how many this
        worker has folded into ``other`` since start (at most ``FOLDED_COUNTED``)."""
        folders = [self.fold, self.fold_agent] if self.policy.per_agent else [self.fold]
        named = Family(
            "ticketpulse_label_values_named",
            "Distinct queue (agent) names exported under their own label, by the rule that "
            "names them: allowlist, or first_seen (the first max_queues names this worker met).",
            ["label", "rule"],
        )
        folded = Family(
            "ticketpulse_label_values_folded",
            'Distinct queue (agent) names this worker has exported as "other" since start '
            "(counted up to 10000). Under rule first_seen, workers may fold different names.",
            ["label", "rule"],
        )
        for folder in folders:
            named.add([folder.label, folder.rule], folder.named)
            folded.add([folder.label, folder.rule], len(folder.folded))
        yield named
        yield folded

    def _target_families(self, series: list[tuple[str, str]]) -> Iterator[Any]:
        """The configured targets of the queues this worker has seen, for rules and panels."""
        for name, (doc, attr) in TARGETS.items():
            fam = Family(f"ticketpulse_{name}", doc, ["queue", "channel"])
            for q, c in series:
                fam.add([q, c], getattr(self.policy.for_queue(q, c), attr))
            yield fam
        name, doc = CALENDAR_INFO
        info = Family(f"ticketpulse_{name}", doc, ["queue", "channel", "calendar"])
        for q, c in series:
            calendar = self.policy.for_queue(q, c).calendar
            info.add([q, c, calendar.name if calendar else NO_CALENDAR], 1)
        yield info

    def _cumulative_snapshot(self) -> dict[tuple[Entry, str, str], list[float]]:
        """The counters since start (kept per queue label already: ``KpiProcessor.label_with``),
        copied: the processor adds into its lists in place, and batches may run between the
        families read from them."""
        return {key: [total, count] for key, (total, count) in self.proc.cumulative.items()}

    def _cumulative_families(self) -> Iterator[Any]:
        cumulative = self._cumulative_snapshot()
        series = sorted({(q, c) for (_, q, c) in cumulative})
        yield from self._target_families(series)
        den = Family(
            "ticketpulse_service_level_denominator",
            "Outcomes entering the service-level denominator (per the queue's preset) since the "
            "worker started.",
            ["queue", "channel"],
            "counter",
        )
        for q, c in series:
            n = {e: int(cumulative.get((Entry(e), q, c), [0.0, 0])[1]) for e in _SL_ENTRIES}
            preset = self.policy.for_queue(q, c).service_level
            den.add(
                [q, c],
                service_level_denominator(
                    preset, n["first_response"], n["abandoned"], n["short_abandoned"]
                ),
            )
        yield den
        for entry in COUNTERS:
            name, doc = WINDOW_FIGURES[entry]
            fam = Family(
                f"ticketpulse_{name}",
                doc + " Since the worker started.",
                ["queue", "channel"],
                "counter",
            )
            for q, c in series:
                count = cumulative.get((Entry(entry), q, c), [0.0, 0])[1]
                fam.add([q, c], count)
            yield fam
        bounds = self.policy.bounds()
        hist = Family(
            "ticketpulse_first_response_seconds",
            "First response time since the worker started, for rate()-based alerting.",
            ["queue", "channel"],
            "histogram",
        )
        flat: Sums = {k: (v[0], int(v[1])) for k, v in cumulative.items()}
        for q, c in series:
            hist.add_histogram(
                [q, c],
                _cumulate(flat, "first_response", q, c, bounds),
                flat.get((Entry("first_response"), q, c), (0.0, 0))[0],
            )
        yield hist


def _inexact(sums: ExactSums) -> Sums:
    """Merged exact totals as the figures' floats (sum, count)."""
    return {key: (total / SCALE, count) for key, (total, count) in sums.items()}


def _cumulate(
    sums: Sums, entry: str, q: str, c: str, bounds: tuple[float, ...]
) -> list[tuple[str, float]]:
    running = 0
    out: list[tuple[str, float]] = []
    for label, key in _bucket_entries(entry, bounds):
        running += sums.get((key, q, c), (0.0, 0))[1]
        out.append((label, float(running)))
    return out


@functools.lru_cache(maxsize=64)
def _bucket_entries(entry: str, bounds: tuple[float, ...]) -> tuple[tuple[str, Entry], ...]:
    """(le label, bucket entry) of a distribution, "+Inf" last: the same at every scrape."""
    labels = [*(bound_label(b, bounds) for b in bounds), "+Inf"]
    return tuple((label, Entry(entry, le=label)) for label in labels)


async def warm_in_background(kpis: KpiCollector, busy: Callable[[], bool]) -> bool:
    """One round of the worker's warm-up timer: ``kpis.warm()`` with the loop free at each
    pause, given up at the first pause where ``busy()`` (a rebalance or a recovery began: the
    end of recovery drops what a partial copy would build). A failure is logged, never
    raised: a raise would stop the worker, and the next round (or a scrape) builds the
    partition again. True when every partition was built."""
    try:
        return await run_in_pauses(kpis.warm(), busy)
    except Exception:
        warm_log.exception("building the window totals failed; tried again in 1 s")
        return False


async def self_check(
    kpis: KpiCollector, stop: Callable[[], bool] = lambda: False, shown: int = 20
) -> dict[str, object] | None:
    """The window figures from the totals kept up to date as batches write, against the
    same figures built afresh from the tables, both at one instant. A difference is a fault
    in the upkeep of the live totals; equal figures that disagree with an independent
    computation point at the tables, or at the code both renderings share.

    The live figures are rendered at one go (O(series), as a scrape). The rebuilt ones cost
    as much as a first scrape, so they are built a partition at a time with the loop free
    in between (probes and scrapes answered), while no batch is applied (``SelfChecks``
    holds the agents). None when ``stop()`` turned true at a pause (the partitions began to
    change hands): the tables were partial."""
    now = time.time()
    live = _window_lines(kpis.families(now, windows_only=True))
    live_now = _now_lines(kpis.now_figures(now))
    rebuilding = kpis.rebuilt()
    families = []
    for family in rebuilding.families(now, windows_only=True):
        if family is PAUSE:
            await asyncio.sleep(0)
            if stop():
                return None
        else:
            families.append(family)
    rebuilt = _window_lines(families) | _now_lines(rebuilding.now_figures(now))
    live |= live_now
    differ = sorted(live ^ rebuilt)
    return {
        "equal": not differ,
        "window_samples": len(live) - len(live_now),
        "now_samples": len(live_now),
        "live_only": [line for line in differ if line in live][:shown],
        "rebuilt_only": [line for line in differ if line in rebuilt][:shown],
    }


def _window_lines(families: Iterable[Family | None]) -> set[str]:
    text = TextRenderer().render(families).decode()
    return {line for line in text.splitlines() if line.startswith("ticketpulse_window_")}


def _now_lines(figures: dict[int, dict[tuple[str, str], NowFigures]]) -> set[str]:
    """Each Now gauge of each partition and series, as a line (queue labels as exported)."""
    return {
        f'ticketpulse_{name}{{partition="{p}",queue="{q}",channel="{c}"}} {getattr(fig, attr)!r}'
        for p, series in figures.items()
        for (q, c), fig in series.items()
        for name, (_, attr) in NOW_GAUGES.items()
    }


BUSY: dict[str, object] = {"equal": None, "busy": True}


def _open_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class SelfChecks:
    """``/selfcheck``'s answers. A check costs about as much as a first scrape, so one runs
    at most every ``spacing_s`` (the last answer is served in between, with its age) unless
    the partitions changed hands since (``version``); none while the worker withholds its
    figures (the partitions changing hands, or the worker stopping), when both renderings
    would read partial or closed tables. One runs at a time, and while it reads the agents
    apply no batch (``applies_allowed``): the loop stays free for probes, scrapes and
    commits, but the tables do not move under it."""

    spacing_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _last: tuple[float, object, dict[str, object]] | None = None
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)
    _applies: asyncio.Event = field(default_factory=_open_event)

    async def applies_allowed(self) -> None:
        """Return at once unless a check is reading: the agents await it before each apply.
        Woken by the end of one check, an agent waits again if another began meanwhile."""
        while not self._applies.is_set():
            await self._applies.wait()

    async def answer(
        self, kpis: KpiCollector, busy: Callable[[], bool], version: object
    ) -> tuple[int, dict[str, object]]:
        """(HTTP status, JSON body). ``busy()``: the partitions are changing hands or the
        worker is stopping (the worker's ``figures_withheld``)."""
        if busy():
            return 503, dict(BUSY)
        async with self._one_at_a_time:  # a caller that waited may reuse the answer
            now = self.clock()
            last = self._last
            if last is None or now - last[0] >= self.spacing_s or last[1] != version:
                self._applies.clear()
                try:
                    check = await self_check(kpis, busy)
                finally:
                    self._applies.set()
                if check is None:
                    return 503, dict(BUSY)
                last = self._last = (now, version, check)
        return 200, {**last[2], "age_seconds": round(now - last[0], 1)}
