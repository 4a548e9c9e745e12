"""The Prometheus text format, byte for byte what ``prometheus_client.generate_latest``
writes, at a fraction of its cost.

``generate_latest`` validates and escapes every label name and value of every sample,
about 25 µs per series: 300 ms for the 11,600 series of a loaded worker, once the
figures themselves cost O(series). The same few thousand label sets come back at
every scrape, so each is escaped once (by prometheus_client's own functions) and
kept; a sample line is then a dictionary lookup and a number. The KPI exporter's
``Family`` rows are rendered straight from their label values; any other family
(the pipeline and process collectors) through its samples.
``tests/unit/metrics/test_exposition.py`` checks the bytes equal generate_latest's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from prometheus_client.openmetrics.exposition import (
    ALLOWUTF8,
    UNDERSCORES,
    _escape,
    escape_label_name,
    escape_metric_name,
)
from prometheus_client.utils import floatToGoString as _go_float

from streams.metrics.families import Family

_TYPES = {"gaugehistogram": "histogram", "unknown": "untyped", "info": "gauge"}
_SUFFIXES = ("_created", "_gsum", "_gcount")
SUFFIXES, GAUGE_SUFFIXES = ("_count", "_sum"), ("_gcount", "_gsum")
CACHE_LIMIT = 100_000  # lines' heads (or label sets) kept; past it the cache starts again
HeadKey = tuple[str, tuple[str, ...], tuple[str, ...]]


def go_float(value: float) -> str:
    """prometheus_client's number format; whole numbers below 10,000 (counts, most values,
    as ints or floats: equal keys of one dict) from a table. -0.0 equals 0 but is written
    "-0.0"."""
    known = _WHOLE.get(value)
    if known is None or (known is _ZERO and math.copysign(1.0, value) < 0):
        text: str = _go_float(value)  # type: ignore[no-untyped-call]
        return text
    return known


_WHOLE: dict[float, str] = {n: _go_float(n) for n in range(10_000)}  # type: ignore[no-untyped-call]
_ZERO = _WHOLE[0]


class TextRenderer:
    """Renders collected families; keeps escaped label sets between scrapes."""

    def __init__(self) -> None:
        self._labels: dict[Any, str] = {}  # a sample's labels items -> text
        self._heads: dict[HeadKey, str] = {}  # (sample, label names, values) -> 'name{..} '
        self._names: dict[str, str] = {}

    def render(self, families: Iterable[Any]) -> bytes:
        out: list[str] = []
        for family in families:
            if family is not None:  # ``streams.metrics.serving.PAUSE``
                self.add(family, out)
        return self.finish(out)

    def add(self, family: Any, out: list[str]) -> None:
        """Append one family's lines to ``out``."""
        if isinstance(family, Family):
            self._fast(family, out)
        else:
            self._generic(family, out)

    def finish(self, out: list[str]) -> bytes:
        for cache in (self._labels, self._heads):
            if len(cache) > CACHE_LIMIT:
                cache.clear()
        return "".join(out).encode("utf-8")

    # -- the KPI exporter's families ----------------------------------------------------
    def _fast(self, family: Family, out: list[str]) -> None:
        name, kind, names = family.name, family.kind, tuple(family.labels)
        doc = _doc(family.doc)
        if kind in ("counter", "gauge"):
            sample = name + "_total" if kind == "counter" else name
            self._header(out, sample, kind, doc)
            head, heads = self._head, self._heads
            for values, value in family.rows:
                start = heads.get((sample, names, values)) or head(sample, names, values)
                out.append(f"{start}{go_float(value)}\n")
            return
        self._histogram(family, names, doc, out)

    def _histogram(self, family: Family, names: tuple[str, ...], doc: str, out: list[str]) -> None:
        name, gauge = family.name, family.kind == "gaugehistogram"
        self._header(out, name, "histogram", doc)
        with_le = (*names, "le")
        tail: list[str] = []
        count_out, sum_out = (tail, []) if gauge else (out, out)
        gsums: list[str] = []
        count_name, sum_name = (name + s for s in (GAUGE_SUFFIXES if gauge else SUFFIXES))
        bucket = name + "_bucket"
        head, heads = self._head, self._heads
        for values, (buckets, total) in family.rows:
            for le, count in buckets:
                key = (bucket, with_le, (*values, le))
                out.append(f"{heads.get(key) or head(*key)}{go_float(count)}\n")
            start = heads.get((count_name, names, values)) or head(count_name, names, values)
            count_out.append(f"{start}{go_float(buckets[-1][1])}\n")
            start = heads.get((sum_name, names, values)) or head(sum_name, names, values)
            (gsums if gauge else sum_out).append(f"{start}{go_float(total)}\n")
        if gauge:
            for suffix, lines in (("_gcount", tail), ("_gsum", gsums)):
                self._header(out, name + suffix, "gauge", doc)
                out.extend(lines)

    def _head(self, sample: str, names: tuple[str, ...], values: tuple[str, ...]) -> str:
        """A sample line up to its value, labels escaped: built once, then looked up."""
        text = f"{sample}{_label_text(dict(zip(names, values, strict=True)))} "
        self._heads[(sample, names, values)] = text
        return text

    def _header(self, out: list[str], name: str, kind: str, doc: str) -> None:
        shown = self._name(name)
        out.append(f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n")

    # -- any other family ---------------------------------------------------------------
    def _generic(self, family: Any, out: list[str]) -> None:
        name, kind = family.name, family.type
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name += "_info"
        kind = "gauge" if kind == "stateset" else _TYPES.get(kind, kind)
        doc = _doc(family.documentation)
        self._header(out, name, kind, doc)
        extra: dict[str, list[str]] = {}
        for sample in family.samples:
            line = self._line(sample)
            for suffix in _SUFFIXES:
                if sample.name == family.name + suffix:
                    extra.setdefault(suffix, []).append(line)
                    break
            else:
                out.append(line)
        for suffix, lines in sorted(extra.items()):
            self._header(out, family.name + suffix, "gauge", doc)
            out.extend(lines)

    def _line(self, sample: Any) -> str:
        labels = sample.labels
        text = ""
        if labels:
            key = tuple(labels.items())
            text = self._labels.get(key, "")
            if not text:
                text = self._labels[key] = _label_text(labels)
        stamp = ""
        if sample.timestamp is not None:
            stamp = f" {int(float(sample.timestamp) * 1000):d}"
        return f"{self._name(sample.name)}{text} {go_float(sample.value)}{stamp}\n"

    def _name(self, name: str) -> str:
        shown = self._names.get(name)
        if shown is None:
            shown = self._names[name] = escape_metric_name(name, UNDERSCORES)
        return shown


def _doc(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _label_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(
        f'{escape_label_name(k, UNDERSCORES)}="{_escape(v, ALLOWUTF8, _any_rune)}"'
        for k, v in sorted(labels.items())
    )
    return "{" + pairs + "}"


def _any_rune(char: str, index: int) -> bool:
    return True  # label values may hold any UTF-8 (only \\, \" and newline are escaped)


def render_collectors(collectors: Iterable[Any], renderer: TextRenderer) -> bytes:
    """Every collector's families in order: ``families()`` where it has it (the KPI
    exporter's fast rows), else prometheus_client's ``collect()``."""
    families: list[Any] = []
    for collector in collectors:
        fast = getattr(collector, "families", None)
        families.extend(fast() if fast is not None else collector.collect())
    return renderer.render(families)
