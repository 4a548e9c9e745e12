"""ACR and repeat contacts: the core rules, and the customer side's idempotence."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.contacts import Contact, contact_of, customer_facts, repeat_contacts
from streams.core.events import TicketEvent
from streams.core.facts import DAY
from streams.processing.customers import (
    BadContactError,
    CustomerProcessor,
    CustomerTables,
    decode_contact,
    encode_contact,
)
from streams.processing.settings import KpiSettings

T0 = 1_800_000_000.0


def ev(eid: str, kind: str, t: float, ticket: str = "T1", customer: str | None = "C1"):
    return TicketEvent(eid, kind, ticket, T0 + t, "sales", "chat", customer_id=customer)


def names(facts) -> list[tuple[str, float]]:
    """(figure, time) of each fact, an ACR period written as ``figure:days``."""
    return sorted((f"{f.name}:{f.days}" if f.days else f.name, f.at - T0) for f in facts)


def test_contact_needs_an_opened_event_with_a_customer() -> None:
    assert contact_of([ev("a", "resolved", 10)]) is None
    assert contact_of([ev("a", "opened", 0, customer=None)]) is None
    customer, contact = contact_of([ev("b", "resolved", 50), ev("a", "opened", 0)])
    assert customer == "C1"
    assert (contact.opened_at, contact.resolved_at, contact.version) == (T0, T0 + 50, 2)


def test_a_new_ticket_within_the_period_is_a_recontact_and_one_after_it_is_not() -> None:
    resolved = Contact("T1", 2, T0, "sales", "chat", T0 + 100, "sales", "chat")
    soon = Contact("T2", 1, T0 + 100 + 0.5 * DAY, "sales", "chat")
    later = Contact("T3", 1, T0 + 100 + 1.5 * DAY, "sales", "chat")
    assert names(customer_facts([resolved, soon, later], [1])) == [
        ("acr_final:1", 100 + DAY),
        ("acr_recontacted:1", 100),
        ("acr_resolved", 100),
    ]
    assert names(customer_facts([resolved, later], [1, 2])) == [
        ("acr_final:1", 100 + DAY),
        ("acr_final:2", 100 + 2 * DAY),
        ("acr_final_active:1", 100 + DAY),
        ("acr_recontacted:2", 100),
        ("acr_resolved", 100),
    ]


def test_a_reopen_is_a_recontact_and_an_unresolved_contact_counts_nothing() -> None:
    reopened = Contact("T1", 3, T0, "sales", "chat", T0 + 100, "sales", "chat", (T0 + 200,))
    assert ("acr_recontacted:1", 100) in names(customer_facts([reopened], [1]))
    assert customer_facts([Contact("T1", 1, T0, "sales", "chat")], [1]) == []


def test_repeat_contacts_count_the_customer_once_and_each_later_contact() -> None:
    contacts = [
        Contact("T1", 1, T0, "sales", "chat"),
        Contact("T2", 1, T0 + 60, "billing", "email"),
        Contact("T3", 1, T0 + 120, "billing", "email"),
    ]
    assert repeat_contacts(contacts, T0, T0 + 3600) == [
        ("repeat_customers", "sales", "chat"),
        ("repeat_contacts", "billing", "email"),
        ("repeat_contacts", "billing", "email"),
    ]
    assert repeat_contacts(contacts, T0 + 100, T0 + 3600) == []


def test_contact_records_round_trip_and_foreign_records_are_refused() -> None:
    contact = Contact("T1", 3, T0, "sales", "chat", T0 + 9, "vip", "chat", (T0 + 20,))
    assert decode_contact(encode_contact("C1", contact)) == ("C1", contact)
    for bad in (b"", b"[]", b'{"customer_id": "C1"}', None):
        try:
            decode_contact(bad)
        except BadContactError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def versions(n: int, ticket: str, opened: float) -> list[tuple[str, Contact]]:
    """Successive versions of one ticket's contact: opened, resolved, reopened."""
    out = [("C1", Contact(ticket, 1, opened, "sales", "chat"))]
    if n > 1:
        out.append(
            ("C1", Contact(ticket, 2, opened, "sales", "chat", opened + 60, "sales", "chat"))
        )
    if n > 2:
        out.append(
            (
                "C1",
                Contact(
                    ticket, 3, opened, "sales", "chat", opened + 60, "sales", "chat", (opened + 90,)
                ),
            )
        )
    return out


def apply(records: list[tuple[str, Contact]], replay_from: int | None = None) -> dict:
    settings = KpiSettings()
    proc = CustomerProcessor(CustomerTables(), settings)
    for off, (customer, contact) in enumerate(records):
        proc.process(0, off, customer, contact)
    if replay_from is not None:
        proc = CustomerProcessor(proc.tables, settings)
        for off, (customer, contact) in enumerate(records[replay_from:], start=replay_from):
            proc.process(0, off, customer, contact)
    return {
        key: {entry: (total, count) for entry, total, count in row.sums}
        for key, row in proc.tables.cbuckets.items()
        if row.sums
    }


@st.composite
def contact_streams(draw: st.DrawFn) -> list[tuple[str, Contact]]:
    records: list[tuple[str, Contact]] = []
    for i in range(draw(st.integers(1, 4))):
        opened = T0 + draw(st.integers(0, 3 * 86400))
        records += versions(draw(st.integers(1, 3)), f"T{i}", opened)
    return records


@settings(max_examples=60, deadline=None)
@given(contact_streams(), st.randoms(use_true_random=False), st.integers(0, 20))
def test_the_customer_side_ignores_order_redelivery_and_stale_versions(
    records, rng, replay_from
) -> None:
    """The newest version of each ticket wins: any order, with old versions re-sent after new
    ones and a crash replay of any suffix, gives the same buckets."""
    expected = apply(records)
    shuffled = records + records[: len(records) // 2]  # stale re-sends after the fact
    rng.shuffle(shuffled)
    assert apply(shuffled, replay_from=min(replay_from, len(shuffled))) == expected
