"""The catalogue of figure names: one place the exporter, ``report``, the rules, the
dashboards and the docs all read.

Each entry maps a bucket entry (what the core's facts add up) to the metric name it is
exported as and its help text. Renaming a figure here renames it everywhere, and the
generated rules and dashboards (``make assets``) fail their check until regenerated.
"""

from __future__ import annotations

# entry -> (metric name, help, "count" or "sum")
WINDOW_FIGURES: dict[str, tuple[str, str]] = {
    "offered": ("contacts_offered", "Contacts opened (offered) in the window."),
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
        "First response time: first agent reply - opened.",
    ),
    "reply_wait": ("reply_wait_seconds", "Wait of a customer answered by an agent reply."),
    "resolved": ("resolution_seconds", "Resolution time: first resolved - opened."),
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
# ACR entries "<name>:<days>" -> (metric name, help)
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
# per-agent twins (opt-in): entry base -> (count metric, sum metric or None, help)
AGENT_FIGURES: dict[str, tuple[str, str | None, str]] = {
    "agent_first_response": (
        "agent_first_responses",
        "agent_first_response_wait_seconds",
        "First agent replies by the replying agent (count; sum of waits).",
    ),
    "agent_handled": (
        "agent_contacts_handled",
        "agent_handle_time_seconds",
        "Handling periods by the agent of the event ending them (count; sum of handle_seconds).",
    ),
    "agent_acr_resolved": (
        "agent_acr_resolutions",
        None,
        "ACR resolutions by the resolving agent.",
    ),
    "agent_acr_recontacted": (
        "agent_acr_recontacted",
        None,
        "ACR resolutions recontacted so far, by the resolving agent.",
    ),
}
LABELS = ["queue", "channel", "window"]
