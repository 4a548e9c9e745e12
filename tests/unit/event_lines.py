"""Raw event records for tests: one JSON line, as a producer would send it."""

from __future__ import annotations


def event_line(n: int, ticket: str, kind: str, second: int, extra: str = "") -> bytes:
    """Event ``n`` of ``ticket`` at 08:00 + ``second`` on 2026-01-05 (UTC), queue q, chat,
    customer C-ticket; ``extra``: more fields, e.g. ``',"handle_seconds":5'``."""
    return (
        f'{{"event_id":"{ticket}-{n}","type":"{kind}","ticket_id":"{ticket}",'
        f'"occurred_at":"2026-01-05T08:{second // 60:02d}:{second % 60:02d}Z","queue":"q",'
        f'"channel":"chat","customer_id":"C-{ticket}"{extra}}}'
    ).encode()
