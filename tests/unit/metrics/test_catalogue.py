"""The catalogue is the one list of figure names: docs/metrics.md defines every one, and
the generators refuse a name it does not have."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.metrics import catalogue

DOC = Path(__file__).parents[3] / "docs" / "metrics.md"


def catalogue_metrics() -> list[str]:
    counters = [f"{catalogue.WINDOW_FIGURES[e][0]}_total" for e in catalogue.COUNTERS]
    return [
        *(catalogue.window_metric(name) for name in sorted(catalogue.window_names())),
        *(catalogue.now_metric(name) for name in [*catalogue.NOW_GAUGES, *catalogue.TARGETS]),
        *(catalogue.now_metric(name) for name in counters),
        catalogue.now_metric(catalogue.CALENDAR_INFO[0]),
    ]


def test_docs_define_every_figure_of_the_catalogue() -> None:
    doc = DOC.read_text()
    # a table row may shorten a name sharing its prefix: `..._csat_summed_score`
    missing = [
        m
        for m in catalogue_metrics()
        if f"`{m}" not in doc and f"`..._{m.removeprefix(catalogue.WINDOW_PREFIX)}" not in doc
    ]
    assert len(catalogue_metrics()) > 40
    assert not missing, f"docs/metrics.md lacks {missing}"


def test_a_name_the_catalogue_lacks_is_refused() -> None:
    assert catalogue.window_metric("contacts_offered") == "ticketpulse_window_contacts_offered"
    with pytest.raises(KeyError, match="contacts_ofered"):
        catalogue.window_metric("contacts_ofered")
    with pytest.raises(KeyError, match="contacts_wating"):
        catalogue.now_metric("contacts_wating")
