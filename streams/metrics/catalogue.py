"""The catalogue of figure names: one place the exporter, ``report``, the rules, the
dashboards and the docs all read.

Each entry maps a bucket entry (what the core's facts add up) to the metric name it is
exported as and its help text. Renaming a figure here renames it everywhere, and the
generated rules and dashboards (``make assets``) fail their check until regenerated.
"""

from __future__ import annotations

# entry -> (metric name, help, "count" or "sum")
WINDOW_FIGURES: dict[str, tuple[str, str]] = {
    "offered": ("contacts_offered", "Contacts opened (offered)."),
    "complaints": ("complaints", "Opened contacts carrying the complaint tag."),
    "first_response": ("first_responses", "First agent replies (contacts answered)."),
    "first_response_within_target": (
        "first_responses_within_target",
        "First agent replies within the queue's target.",
    ),
    "abandoned": ("contacts_abandoned", "Abandoned before any agent reply."),
    "short_abandoned": (
        "contacts_short_abandoned",
        "Abandons quicker than the short-abandon threshold.",
    ),
    "disconnects": (
        "customer_disconnects",
        "Customers leaving after an agent reply (not abandons).",
    ),
    "transfers_out": ("transfers_out", "Transfers, counted against the queue transferred out of."),
    "escalations": ("escalations", "Transfers flagged as escalations."),
    "resolved": ("contacts_resolved", "First resolutions of contacts."),
    "resolved_within_target": ("contacts_resolved_within_target", "Resolutions within target."),
    "resolved_first_contact": (
        "contacts_resolved_first_contact",
        "Resolved with no transfer and no reopen within fcr_days.",
    ),
    "reopens": ("reopens", "Reopened contacts."),
    "handled": ("contacts_handled", "Handling periods that ended (resolve, transfer, disconnect)."),
    "reply_wait": (
        "replies_to_waiting_customers",
        "Agent replies that answered a waiting customer.",
    ),
    "csat_responses": ("csat_responses", "CSAT survey responses."),
    "csat_satisfied": ("csat_satisfied_responses", "CSAT responses scoring 4 or 5."),
    "nps_responses": ("nps_responses", "NPS survey responses."),
    "nps_promoters": ("nps_promoter_responses", "NPS responses scoring 9 or 10."),
    "nps_detractors": ("nps_detractor_responses", "NPS responses scoring 0 to 6."),
    "ces_responses": ("ces_responses", "CES survey responses."),
    "duplicate_events": ("duplicate_events", "Events recognised as duplicates (same event_id)."),
    "late_events": ("late_events", "Events later than the allowed lateness: counted, not applied."),
    "acr_resolved": (
        "acr_resolutions",
        "First resolutions of contacts with a customer_id (the ACR denominator).",
    ),
}
WINDOW_SUMS: dict[str, tuple[str, str]] = {
    "handled": ("handle_time_seconds", "Sum of handle_seconds of the handling periods that ended."),
    "ces_responses": ("ces_summed_score", "Sum of CES scores (mean = sum / responses)."),
    "csat_responses": ("csat_summed_score", "Sum of CSAT scores."),
}
HISTOGRAMS: dict[str, tuple[str, str]] = {
    "first_response": (
        "first_response_seconds",
        "First response time: first agent reply - opened (business seconds on a calendar queue).",
    ),
    "reply_wait": ("reply_wait_seconds", "Wait of a customer answered by an agent reply."),
    "resolved": (
        "resolution_seconds",
        "Resolution time: first resolved - opened (business seconds on a calendar queue).",
    ),
    "abandoned": ("abandon_wait_seconds", "Wait before abandoning."),
}
COUNTERS = (
    "offered",
    "first_response",
    "first_response_within_target",
    "abandoned",
    "short_abandoned",
    "transfers_out",
    "resolved",
    "resolved_first_contact",
)
# ACR figures, one per recontact period (``Entry.days``) -> (metric name, help)
ACR_FIGURES: dict[str, tuple[str, str]] = {
    "acr_recontacted": (
        "acr_recontacted",
        "Resolutions (with a customer) followed by a recontact or reopen within `days`, so far; "
        "attributed to the resolution.",
    ),
    "acr_final": (
        "acr_final_resolutions",
        "Resolutions whose `days` recontact period ended in the window.",
    ),
    "acr_final_active": (
        "acr_final_active_resolutions",
        "Resolutions whose period ended in the window with no recontact (final ACR numerator).",
    ),
}
REPEATS: dict[str, tuple[str, str]] = {
    "repeat_customers": (
        "repeat_customers",
        "Customers with two or more contacts opened in the window (labelled by the first).",
    ),
    "repeat_contacts": (
        "repeat_contacts",
        "Contacts opened in the window after the same customer's first one in the window.",
    ),
}
# per-agent twins (opt-in): entry base -> (count metric, sum metric or None, count help,
# sum help or None)
AGENT_FIGURES: dict[str, tuple[str, str | None, str, str | None]] = {
    "agent_first_response": (
        "agent_first_responses",
        "agent_first_response_wait_seconds",
        "First agent replies, by the replying agent.",
        "Sum of the waits (opened to first agent reply) the agent's first replies ended.",
    ),
    "agent_handled": (
        "agent_contacts_handled",
        "agent_handle_time_seconds",
        "Handling periods, by the agent of the event ending them.",
        "Sum of handle_seconds of the agent's handling periods.",
    ),
    "agent_acr_resolved": (
        "agent_acr_resolutions",
        None,
        "ACR resolutions by the resolving agent.",
        None,
    ),
    "agent_acr_recontacted": (
        "agent_acr_recontacted",
        None,
        "ACR resolutions recontacted so far, by the resolving agent.",
        None,
    ),
}
SERVICE_LEVEL: dict[str, str] = {
    "service_level_numerator": (
        "First responses within target (service level = numerator / denominator)."
    ),
    "service_level_denominator": (
        "Outcomes in the service-level denominator, per the queue's preset (docs/metrics.md)."
    ),
}
WINDOW_MAXIMA: dict[str, tuple[str, str]] = {
    "first_response": (
        "first_response_max_seconds",
        "Longest first response in the window (aggregate across workers with max).",
    ),
}
# Now gauges: metric name (after ``ticketpulse_``) -> (help, ``NowFigures`` attribute)
NOW_GAUGES: dict[str, tuple[str, str]] = {
    "contacts_open": ("Open contacts now.", "open"),
    "contacts_waiting": ("Open contacts with no agent reply yet.", "waiting"),
    "oldest_waiting_contact_age_seconds": (
        "Age of the oldest contact waiting for a first agent reply (aggregate with max).",
        "oldest_wait_s",
    ),
    "oldest_waiting_contact_target_age_seconds": (
        "Age of the oldest waiting contact on its first-response target's clock: business "
        "seconds on a calendar queue, else its age (aggregate with max).",
        "oldest_wait_target_s",
    ),
    "first_response_breaches": (
        "Contacts waiting longer than their first-response target now.",
        "first_response_breaches",
    ),
    "resolution_breaches": (
        "Open contacts older than their resolution target now.",
        "resolution_breaches",
    ),
}
# configured targets: metric name (after ``ticketpulse_``) -> (help, ``QueueRules`` attribute)
TARGETS: dict[str, tuple[str, str]] = {
    "service_level_objective_ratio": (
        "Service-level objective of the queue (0-1).",
        "service_level_objective",
    ),
    "first_response_target_seconds": (
        "First-response target of the queue (business seconds on a calendar queue).",
        "first_response_target_s",
    ),
    "resolution_target_seconds": (
        "Resolution target of the queue (business seconds on a calendar queue).",
        "resolution_target_s",
    ),
}
# 1 for each queue x channel, labelled by the clock its targets run on
CALENDAR_INFO = (
    "queue_calendar_info",
    "The clock of a queue and channel's first-response and resolution targets, histograms and "
    "breaches: the business-hours calendar's name, or 24x7 (calendar time).",
)
NO_CALENDAR = "24x7"
LABELS = ["queue", "channel", "window"]
WINDOW_PREFIX = "ticketpulse_window_"


def window_names() -> set[str]:
    """Every window gauge's name after ``ticketpulse_window_`` (histograms without suffix)."""
    tables: list[dict[str, tuple[str, str]]] = [
        WINDOW_FIGURES, WINDOW_SUMS, HISTOGRAMS, ACR_FIGURES, REPEATS, WINDOW_MAXIMA,
    ]  # fmt: skip
    names = {name for table in tables for name, _ in table.values()}
    names |= set(SERVICE_LEVEL)
    names |= {n for count, total, *_ in AGENT_FIGURES.values() for n in (count, total) if n}
    return names


def window_metric(name: str, suffix: str = "") -> str:
    """``ticketpulse_window_<name><suffix>``, for a name the catalogue has: the rules and
    dashboards take names from here, so a renamed figure fails their generator."""
    if name not in window_names():
        msg = f"{name!r} is not a window figure of streams.metrics.catalogue"
        raise KeyError(msg)
    return f"{WINDOW_PREFIX}{name}{suffix}"


def now_metric(name: str) -> str:
    """``ticketpulse_<name>`` for a Now gauge, target or counter of the catalogue."""
    counters = {WINDOW_FIGURES[entry][0] + "_total" for entry in COUNTERS}
    known = {*NOW_GAUGES, *TARGETS, *counters, "service_level_denominator_total"}
    if name not in known | {CALENDAR_INFO[0]}:
        msg = f"{name!r} is not a Now gauge, target or counter of streams.metrics.catalogue"
        raise KeyError(msg)
    return f"ticketpulse_{name}"
