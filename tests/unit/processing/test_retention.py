"""Memory is bounded in event time: old buckets, closed tickets and customers go, open
tickets stay, and a replay after a restart does not bring anything back."""

from __future__ import annotations

from streams.core.contacts import Contact
from streams.core.events import TicketEvent
from streams.core.facts import DAY
from streams.core.policy import Policy
from streams.processing.customers import CustomerProcessor, CustomerTables
from streams.processing.kpi import KpiProcessor, Tables
from streams.processing.settings import KpiSettings

T0 = 1_800_000_000.0


def ev(eid: str, kind: str, ticket: str, t: float) -> TicketEvent:
    return TicketEvent(eid, kind, ticket, T0 + t, "sales", "chat")  # type: ignore[arg-type]


def test_closed_tickets_and_old_buckets_expire_open_tickets_stay_and_replays_do_not_resurrect():
    settings = KpiSettings()
    proc = KpiProcessor(Tables(), settings)
    old = [ev("a1", "opened", "closed", 0), ev("a2", "resolved", "closed", 60)]
    old += [ev("b1", "opened", "open", 30)]
    for offset, event in enumerate(old):
        proc.process(0, offset, event)
    old_buckets = set(proc.tables.buckets)
    assert {"closed", "open"} <= set(proc.tables.tickets) and old_buckets

    later = settings.ticket_retention_s + settings.bucket_retention_s + DAY
    proc.process(0, len(old), ev("c1", "opened", "new", later))
    assert "closed" not in proc.tables.tickets
    assert "open" in proc.tables.tickets  # the backlog is kept however old
    assert not old_buckets & set(proc.tables.buckets)

    restarted = KpiProcessor(proc.tables, settings)  # a crash: the old records come again
    for offset, event in enumerate(old):
        restarted.process(0, offset, event)
    assert "closed" not in restarted.tables.tickets
    assert not old_buckets & set(restarted.tables.buckets)


def test_customers_expire_once_their_newest_contact_is_out_of_reach():
    settings = KpiSettings()
    proc = CustomerProcessor(CustomerTables(), settings)
    old = Contact("T1", 2, T0, "sales", "chat", T0 + 60, "sales", "chat")
    proc.process(0, 0, "C-old", old)
    proc.process(0, 1, "C-new", Contact("T2", 1, T0 + 10, "sales", "chat"))
    proc.process(0, 2, "C-new", Contact("T3", 1, T0 + proc.retention_s + DAY, "sales", "chat"))
    assert "C-old" not in proc.tables.customers
    assert "C-new" in proc.tables.customers
    before_replay = dict(proc.tables.cbuckets)
    restarted = CustomerProcessor(proc.tables, settings)
    restarted.process(0, 0, "C-old", old)  # replayed after a crash
    assert "C-old" not in restarted.tables.customers
    assert restarted.tables.cbuckets == before_replay


def test_the_expiry_heap_holds_one_entry_per_ticket_not_per_event():
    settings = KpiSettings()
    proc = KpiProcessor(Tables(), settings)
    events = [ev("o", "opened", "T", 0)]
    events += [ev(f"r{i}", "replied", "T", 10 + i) for i in range(50)]
    events += [ev("z", "resolved", "T", 100), ev("o2", "opened", "U", 5)]
    for offset, event in enumerate(events):
        proc.process(0, offset, event)
    assert len(proc.retention._heaps[0]) == 2
    # the entry of T carries an early time; T still goes only once its newest event is out
    newest = T0 + 100
    proc.retention.expire(0, newest)
    assert "T" in proc.tables.tickets
    proc.retention.expire(0, newest + 1)
    assert "T" not in proc.tables.tickets
    assert "U" in proc.tables.tickets  # open: kept


def test_a_closed_ticket_waits_keep_seconds_for_late_events_and_no_longer():
    settings = KpiSettings(
        Policy(recontact_days=(0.001,), fcr_days=0.001),
        window_retention_s=900,
        closed_keep_s=1800,
        lateness_s=60,
    )
    proc = KpiProcessor(Tables(), settings)
    events = [ev("a1", "opened", "t", 0), ev("a2", "resolved", "t", 60)]
    events += [ev("x1", "opened", "other", 1800)]  # the watermark passes keep - lateness
    for offset, event in enumerate(events):
        proc.process(0, offset, event)
    assert "t" in proc.tables.tickets  # still waiting for a late survey
    proc.process(0, 3, ev("x2", "opened", "other2", 60 + 1800 + 60 + 61))
    assert "t" not in proc.tables.tickets  # keep + lateness after its last event: gone
