"""`make chaos`: the reliability matrix (../shared reference §6) on the real broker, each row
judged against the oracle; the results replace the matrix block of docs/reliability.md."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"


@dataclass
class Row:
    number: int
    scenario: str
    injection: str
    result: str = "not run"
    diffs: str = ""
    recovery: str = ""


ROWS: dict[int, Row] = {}


@pytest.fixture
def matrix():
    """``matrix(number, scenario, injection)`` -> the Row the test fills; a failed test
    leaves ``FAILED`` in its result."""
    made: list[Row] = []

    def row(number: int, scenario: str, injection: str) -> Row:
        made.append(ROWS.setdefault(number, Row(number, scenario, injection, "FAILED")))
        return ROWS[number]

    yield row


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not ROWS or not DOC.exists():
        return
    lines = [
        START,
        f"Last `make chaos` run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        "this machine (2 cores), the local Kafka 4.1 broker.",
        "",
        "| # | scenario | injection | result | diffs from the oracle | recovery |",
        "|---|---|---|---|---|---|",
    ]
    text = DOC.read_text()
    table = _earlier_rows(text)  # rows not run this time keep their last result
    for row in ROWS.values():
        table[row.number] = (
            f"| {row.number} | {row.scenario} | {row.injection} | {row.result} | "
            f"{row.diffs} | {row.recovery} |"
        )
    lines += [table[n] for n in sorted(table)]
    lines.append(END)
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + "\n".join(lines) + rest.split(END, 1)[1]
    else:
        text += "\n## The fault matrix (`make chaos`)\n" + "\n".join(lines) + "\n"
    DOC.write_text(text)


def _earlier_rows(text: str) -> dict[int, str]:
    if START not in text or END not in text:
        return {}
    block = text.split(START, 1)[1].split(END, 1)[0]
    rows = {}
    for line in block.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and cells[1].strip().isdigit():
            rows[int(cells[1])] = line
    return rows
