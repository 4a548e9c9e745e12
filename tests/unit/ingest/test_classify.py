"""Every record ends as Accepted or Rejected with one of the documented reasons; nothing raises."""

from __future__ import annotations

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.ingest.schema import REJECT_REASONS, Accepted, Rejected, classify, to_event

NOW = 1_795_510_900.0
GOOD = {
    "event_id": "e-1",
    "type": "opened",
    "ticket_id": "T-1",
    "occurred_at": "2026-11-24T09:00:00Z",
    "queue": "billing",
    "channel": "chat",
}


def run(key: bytes | None, value: bytes | None, tolerance: float = 300) -> Accepted | Rejected:
    return classify(key, value, now=NOW, future_tolerance_s=tolerance)


def reason(key: bytes | None, value: bytes | None, tolerance: float = 300) -> str:
    outcome = run(key, value, tolerance)
    assert isinstance(outcome, Rejected), outcome
    assert outcome.detail
    return outcome.reason


def test_good_record_is_accepted() -> None:
    outcome = run(b"T-1", orjson.dumps(GOOD))
    assert isinstance(outcome, Accepted)
    assert outcome.event.type == "opened"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"{not json", "not_json"),
        (b"\xff\xfe\x00", "not_json"),
        (b"", "not_json"),
        (None, "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"a string"', "not_object"),
        (b"42", "not_object"),
        (orjson.dumps({**GOOD, "type": "closed"}), "schema"),
        (orjson.dumps({k: v for k, v in GOOD.items() if k != "queue"}), "schema"),
        (orjson.dumps({**GOOD, "notes": "x" * 70_000}), "too_large"),
    ],
)
def test_reasons(value: bytes | None, expected: str) -> None:
    assert reason(b"T-1", value) == expected


def test_key_mismatch() -> None:
    assert reason(b"T-2", orjson.dumps(GOOD)) == "key_mismatch"
    assert reason(None, orjson.dumps(GOOD)) == "key_mismatch"


def test_future_timestamp_respects_tolerance() -> None:
    ahead = {**GOOD, "occurred_at": "2026-11-24T09:10:00Z"}  # 500 s after NOW-ish
    assert reason(b"T-1", orjson.dumps(ahead), tolerance=300) == "future_timestamp"
    assert isinstance(run(b"T-1", orjson.dumps(ahead), tolerance=3600), Accepted)


def test_size_limit_is_on_bytes_not_characters() -> None:
    just_under = orjson.dumps({**GOOD, "notes": "é" * 20_000})  # 40 kB of UTF-8
    assert isinstance(run(b"T-1", just_under), Accepted)


@given(st.binary(max_size=300), st.one_of(st.none(), st.binary(max_size=20)))
def test_arbitrary_bytes_never_raise(value: bytes, key: bytes | None) -> None:
    outcome = run(key, value)
    assert isinstance(outcome, Accepted | Rejected)
    if isinstance(outcome, Rejected):
        assert outcome.reason in REJECT_REASONS


@given(
    st.dictionaries(
        st.text(max_size=12), st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1), st.none())
    )
)
def test_arbitrary_objects_never_raise(doc: dict[str, object]) -> None:
    outcome = run(b"T-1", orjson.dumps(doc))
    assert isinstance(outcome, Accepted | Rejected)


def test_huge_numbers_do_not_crash() -> None:
    raw = (
        orjson.dumps(GOOD)[:-1]
        + b', "score": 123456789012345678901234567890, "handle_seconds": 1e999}'
    )
    assert isinstance(run(b"T-1", raw), Accepted | Rejected)


def test_every_field_lands_in_its_own_place() -> None:
    """``to_event`` builds the event positionally (speed): each property must still reach
    the field of its name, whatever order ``TicketEvent`` declares them in."""
    doc = {
        "event_id": "e-1", "type": "transferred", "ticket_id": "T-1",
        "occurred_at": "2026-01-05T08:00:00Z", "queue": "sales", "channel": "chat",
        "customer_id": "C-1", "agent_id": "A-1", "priority": "high", "tags": ["vip"],
        "handle_seconds": 12.5, "author": "agent", "to_queue": "tier2", "to_agent": "A-2",
        "escalation": True, "survey_kind": "csat", "score": 4,
    }  # fmt: skip
    event = msgspec.structs.asdict(to_event(doc))
    assert event.pop("occurred_at") == 1767600000.0
    assert event.pop("tags") == ("vip",)
    assert event == {k: v for k, v in doc.items() if k not in ("occurred_at", "tags")}
