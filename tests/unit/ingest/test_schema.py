"""The schema is the single source of truth: examples, the typed event and the docs follow it."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from streams.core.events import CHANNELS, EVENT_TYPES, TicketEvent
from streams.ingest.schema import REJECT_REASONS, Accepted, Rejected, classify, load_schema

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "schemas" / "examples"
NOW = 1_900_000_000.0  # 2030: after every example's occurred_at


def _examples(kind: str) -> list[Path]:
    found = sorted((EXAMPLES / kind).glob("*.json"))
    assert found, f"no {kind} examples"
    return found


@pytest.mark.parametrize("path", _examples("valid"), ids=lambda p: p.stem)
def test_valid_examples_are_accepted(path: Path) -> None:
    raw = path.read_bytes()
    key = orjson.loads(raw)["ticket_id"].encode()
    outcome = classify(key, raw, now=NOW, future_tolerance_s=300)
    assert isinstance(outcome, Accepted), outcome


@pytest.mark.parametrize("path", _examples("invalid"), ids=lambda p: p.stem)
def test_invalid_examples_are_rejected_by_the_schema(path: Path) -> None:
    raw = path.read_bytes()
    outcome = classify(b"T-9", raw, now=NOW, future_tolerance_s=300)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "schema", outcome.detail


def test_typed_event_mirrors_schema_properties() -> None:
    schema = load_schema()
    fields = set(TicketEvent.__struct_fields__)
    assert fields == set(schema["properties"])
    assert set(EVENT_TYPES) == set(schema["properties"]["type"]["enum"])
    assert set(CHANNELS) == set(schema["properties"]["channel"]["enum"])


def test_docs_and_readme_agree_with_schema() -> None:
    schema = load_schema()
    events_md = (ROOT / "docs" / "events.md").read_text()
    for prop in schema["properties"]:
        assert f"`{prop}`" in events_md, f"docs/events.md does not document {prop}"
    for kind in schema["properties"]["type"]["enum"]:
        assert f"`{kind}`" in events_md
    for reason in REJECT_REASONS:
        assert f"`{reason}`" in events_md, f"docs/events.md does not document reason {reason}"
    readme = (ROOT / "README.md").read_text()
    assert "schemas/ticket-event.v1.json" in readme
    assert "docs/events.md" in readme


def test_valid_example_values_round_trip() -> None:
    raw = (EXAMPLES / "valid" / "replied-agent.json").read_bytes()
    outcome = classify(b"T-1", raw, now=NOW, future_tolerance_s=300)
    assert isinstance(outcome, Accepted)
    event = outcome.event
    assert event.author == "agent"
    assert event.handle_seconds == 35.5
    assert event.occurred_at == pytest.approx(1795510841.25)


def test_offset_times_are_converted_to_utc() -> None:
    raw = (EXAMPLES / "valid" / "assigned.json").read_bytes()  # 09:00:05+01:00
    outcome = classify(b"T-1", raw, now=NOW, future_tolerance_s=300)
    assert isinstance(outcome, Accepted)
    assert outcome.event.occurred_at == 1795510800.0 - 3600 + 5


def test_schema_file_name_is_versioned() -> None:
    assert re.fullmatch(r"ticket-event\.v\d+\.json", "ticket-event.v1.json")
    assert load_schema()["$schema"].endswith("2020-12/schema")


@pytest.mark.parametrize(
    ("number", "accepted"),
    [
        ("1e308", False),
        ("1e400", False),  # past float range: no float holds it
        ("-1e400", False),
        ("86400.000001", False),
        ("9223372036854775808", False),  # 2**63
        ("18446744073709551616", False),  # 2**64
        ("-0.0", True),
        ("5e-324", True),  # the smallest subnormal
        ("86400", True),
        ("0", True),
    ],
)
def test_handle_seconds_is_bounded_and_finite(number: str, accepted: bool) -> None:
    """Issue 11: two events of 1e308 overflowed a sum to infinity, stored as JSON null."""
    raw = (
        b'{"event_id":"e","type":"resolved","ticket_id":"T","occurred_at":"2026-11-24T09:00:00Z",'
        b'"queue":"q","channel":"chat","handle_seconds":' + number.encode() + b"}"
    )
    outcome = classify(b"T", raw, now=NOW, future_tolerance_s=300)
    if accepted:
        assert isinstance(outcome, Accepted), outcome
    else:
        assert isinstance(outcome, Rejected) and outcome.reason == "schema", outcome


@pytest.mark.parametrize("score", ["9223372036854775808", "-1", "11", "1e400"])
def test_every_score_is_bounded(score: str) -> None:
    raw = (
        b'{"event_id":"e","type":"survey","ticket_id":"T","occurred_at":"2026-11-24T09:00:00Z",'
        b'"queue":"q","channel":"chat","survey_kind":"nps","score":' + score.encode() + b"}"
    )
    outcome = classify(b"T", raw, now=NOW, future_tolerance_s=300)
    assert isinstance(outcome, Rejected) and outcome.reason == "schema", outcome


def test_every_number_in_the_contract_has_bounds() -> None:
    """A number without a maximum can overflow a sum (issue 11): none may lack one."""
    for name, prop in load_schema()["properties"].items():
        if prop.get("type") in ("number", "integer"):
            assert "minimum" in prop and "maximum" in prop, f"{name} is unbounded"
