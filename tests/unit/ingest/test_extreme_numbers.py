"""Extreme numbers never crash the pipeline nor come out non-finite (issue 11).

A log of tickets whose numbers are drawn from the edges of what JSON can carry goes
through the ingest boundary and the whole pipeline (``ticketpulse report``'s path);
every figure it gives must be a finite number, and every record is accepted or
dead-lettered, never lost.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import load_settings
from streams.tools.report import report
from tests.unit.event_lines import event_line

EXTREMES = [
    "1e308",
    "-1e308",
    "1e400",
    "-0.0",
    "0",
    "5e-324",
    "9223372036854775808",  # 2**63
    "18446744073709551616",  # 2**64
    "86400",
    "86399.999999",
    "1.7976931348623157e308",
    "-1",
    "3",
]
number = st.sampled_from(EXTREMES)


@st.composite
def tickets(draw: st.DrawFn) -> list[bytes]:
    lines: list[bytes] = []
    for t in range(draw(st.integers(1, 4))):
        ticket = f"T{t}"
        lines.append(event_line(0, ticket, "opened", 60 * t))
        reply = f',"author":"agent","handle_seconds":{draw(number)}'
        lines.append(event_line(1, ticket, "replied", 60 * (t + 1), reply))
        lines.append(
            event_line(2, ticket, "resolved", 60 * (t + 2), f',"handle_seconds":{draw(number)}')
        )
        kind = draw(st.sampled_from(["csat", "nps", "ces"]))
        score = f',"survey_kind":"{kind}","score":{draw(number)}'
        lines.append(event_line(3, ticket, "survey", 60 * (t + 3), score))
    return lines


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list | tuple):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


@settings(max_examples=60, deadline=None)
@given(tickets())
def test_report_never_crashes_nor_emits_a_non_finite_figure(lines: list[bytes]) -> None:
    out = report(lines, load_settings(), now=2_000_000_000.0)
    records = out["records"]
    assert records["accepted"] + records["rejected"] == records["records"] == len(lines)
    figures = [out["windows"], out["now"], out["window_end"]]
    assert all(math.isfinite(n) for n in _numbers(figures))
    for window in out["windows"].values():
        for series in window.values():
            assert None not in series["components"].values()
