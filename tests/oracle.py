"""An independent reference computation of every window and Now figure, in SQL over SQLite.

It shares only the ingest boundary (``streams.ingest.schema.classify``), the policy
object (configuration) and the partitioner with the product. Per-ticket facts
are derived with SQL window functions and correlated subqueries instead of the
core's Python fold, so a mistake in one is unlikely to be repeated in the other.
The only Python loop is what is sequential by definition: each partition's
watermark and the lateness decision, in offset order.
"""

from __future__ import annotations

import math
import sqlite3
from bisect import bisect_left
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from kafka.partitioner.default import murmur2

from streams.core.contacts import days_label
from streams.core.policy import Policy
from streams.ingest.schema import Accepted, classify
from tests.oracle_calendar import MinuteGrid

Labels = tuple[tuple[str, str], ...]
Metrics = dict[tuple[str, Labels], float]


def differences(live: Metrics, oracle: Metrics) -> dict[tuple[str, Labels], tuple[float, float]]:
    """Every series the oracle knows of whose live value differs (a missing series is 0)."""
    names = {n for n, _ in oracle}
    keys = {k for k in live if k[0] in names} | set(oracle)
    return {
        k: (live.get(k, 0.0), oracle.get(k, 0.0))
        for k in keys
        if abs(live.get(k, 0.0) - oracle.get(k, 0.0)) > 1e-6
    }


def assert_agree(live: Metrics, oracle: Metrics) -> None:
    diff = differences(live, oracle)
    assert not diff, f"{len(diff)} differences, e.g. {sorted(diff.items())[:8]}"
    assert sum(1 for v in oracle.values() if v) > 200, "the comparison must cover real figures"


def partition_of(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


SCHEMA = """
CREATE TABLE ev (p INT, off INT, ticket TEXT, eid TEXT, type TEXT, t REAL, queue TEXT,
  channel TEXT, author TEXT, handle REAL, escalation INT, kind TEXT, score INT,
  complaint INT, to_queue TEXT, customer TEXT, agent TEXT);
CREATE TABLE marks (p INT, t REAL, name TEXT, queue TEXT, channel TEXT);
CREATE INDEX ev_ticket ON ev (ticket, eid, off);
"""

# the ticket's events after dedupe (first offset wins), from its first "opened" on, in order
ORDERED = """
CREATE TABLE o AS
WITH dedup AS (
  SELECT * FROM ev e
  WHERE off = (SELECT MIN(off) FROM ev x WHERE x.ticket = e.ticket AND x.eid = e.eid)
), opened AS (
  SELECT ticket, t AS t0, eid AS open_eid, channel AS open_channel FROM (
    SELECT ticket, t, eid, channel,
           ROW_NUMBER() OVER (PARTITION BY ticket ORDER BY t, eid) AS r
    FROM dedup WHERE type = 'opened') WHERE r = 1
)
SELECT d.*, op.t0, op.open_channel, d.eid = op.open_eid AS is_open,
  ROW_NUMBER() OVER (PARTITION BY d.ticket
                     ORDER BY d.t, CASE d.type WHEN 'opened' THEN 0 ELSE 1 END, d.eid) AS seq
FROM dedup d JOIN opened op ON op.ticket = d.ticket WHERE d.t >= op.t0;
CREATE INDEX o_ticket ON o (ticket, seq);
"""

FACTS = """
CREATE TABLE facts AS
-- offered and complaints
SELECT p, t, 'offered' AS name, queue, channel, 1.0 AS value FROM o WHERE is_open
UNION ALL SELECT p, t, 'complaints', queue, channel, 1.0 FROM o WHERE is_open AND complaint
-- first agent reply
UNION ALL SELECT p, t, 'first_response', queue, channel, elapsed(queue, channel, t0, t) FROM o a
  WHERE NOT is_open AND type = 'replied' AND author = 'agent' AND seq = (
    SELECT MIN(seq) FROM o b WHERE b.ticket = a.ticket AND NOT b.is_open
      AND b.type = 'replied' AND b.author = 'agent')
-- agent replies answering a waiting customer: the first one, or one after a customer message
UNION ALL SELECT p, t, 'reply_wait', queue, channel,
  t - COALESCE((SELECT MIN(c.t) FROM o c WHERE c.ticket = a.ticket AND c.type = 'replied'
      AND c.author = 'customer' AND c.seq < a.seq AND c.seq > (
        SELECT MAX(r.seq) FROM o r WHERE r.ticket = a.ticket AND NOT r.is_open
          AND r.type = 'replied' AND r.author = 'agent' AND r.seq < a.seq)), t0)
  FROM o a WHERE NOT is_open AND type = 'replied' AND author = 'agent' AND (
    NOT EXISTS (SELECT 1 FROM o r WHERE r.ticket = a.ticket AND NOT r.is_open AND r.type = 'replied'
                AND r.author = 'agent' AND r.seq < a.seq)
    OR EXISTS (SELECT 1 FROM o c WHERE c.ticket = a.ticket AND c.type = 'replied'
               AND c.author = 'customer' AND c.seq < a.seq AND c.seq > (
                 SELECT MAX(r.seq) FROM o r WHERE r.ticket = a.ticket AND NOT r.is_open
                   AND r.type = 'replied' AND r.author = 'agent' AND r.seq < a.seq)))
-- transfers
UNION ALL SELECT p, t, 'transfers_out', queue, channel, 1.0 FROM o WHERE type = 'transferred'
UNION ALL SELECT p, t, 'escalations', queue, channel, 1.0 FROM o
  WHERE type = 'transferred' AND escalation
UNION ALL SELECT p, t, 'reopens', queue, channel, 1.0 FROM o WHERE type = 'reopened'
-- surveys
UNION ALL SELECT p, t, kind || '_responses', queue, channel, score FROM o WHERE type = 'survey'
UNION ALL SELECT p, t, 'csat_satisfied', queue, channel, 1.0 FROM o
  WHERE type = 'survey' AND kind = 'csat' AND score >= 4
UNION ALL SELECT p, t, 'nps_promoters', queue, channel, 1.0 FROM o
  WHERE type = 'survey' AND kind = 'nps' AND score >= 9
UNION ALL SELECT p, t, 'nps_detractors', queue, channel, 1.0 FROM o
  WHERE type = 'survey' AND kind = 'nps' AND score <= 6;

CREATE TABLE firsts AS
SELECT ticket,
  (SELECT MIN(seq) FROM o b WHERE b.ticket = a.ticket AND b.type = 'abandoned') AS abandon_seq,
  (SELECT MIN(seq) FROM o b WHERE b.ticket = a.ticket AND b.type = 'resolved') AS resolve_seq,
  (SELECT MIN(seq) FROM o b WHERE b.ticket = a.ticket AND NOT b.is_open AND b.type = 'replied'
     AND b.author = 'agent') AS answer_seq
FROM (SELECT DISTINCT ticket FROM o) a;
CREATE INDEX firsts_ticket ON firsts (ticket);

-- handling periods end at a transfer, any resolution, or a disconnect (abandon after an answer)
CREATE TABLE ends AS
SELECT o.*, (o.type IN ('transferred', 'resolved') OR (o.seq = f.abandon_seq
  AND f.answer_seq IS NOT NULL AND f.answer_seq < o.seq)) AS is_end
FROM o JOIN firsts f ON f.ticket = o.ticket;
CREATE INDEX ends_ticket ON ends (ticket, seq);
"""


def _targets(db: sqlite3.Connection, policy: Policy) -> None:
    db.execute("CREATE TABLE targets (queue TEXT, channel TEXT, frt REAL, res REAL, short REAL)")
    pairs = db.execute("SELECT DISTINCT queue, channel FROM ev").fetchall()
    for q, c in pairs:
        rules = policy.for_queue(q, c)
        db.execute(
            "INSERT INTO targets VALUES (?,?,?,?,?)",
            (q, c, rules.first_response_target_s, rules.resolution_target_s, rules.short_abandon_s),
        )


TARGETED = """
INSERT INTO facts
SELECT f.p, f.t, 'first_response_within_target', f.queue, f.channel, 1.0 FROM facts f
  JOIN targets g ON g.queue = f.queue AND g.channel = f.channel
  WHERE f.name = 'first_response' AND f.value <= g.frt;
INSERT INTO facts
SELECT o.p, o.t, CASE WHEN fi.answer_seq < o.seq THEN 'disconnects' ELSE 'abandoned' END,
  o.queue, o.channel, o.t - o.t0
FROM o JOIN firsts fi ON fi.ticket = o.ticket WHERE o.seq = fi.abandon_seq;
INSERT INTO facts
SELECT f.p, f.t, 'short_abandoned', f.queue, f.channel, f.value FROM facts f
  JOIN targets g ON g.queue = f.queue AND g.channel = f.channel
  WHERE f.name = 'abandoned' AND f.value < g.short;
INSERT INTO facts
SELECT o.p, o.t, 'resolved', o.queue, o.channel, elapsed(o.queue, o.channel, o.t0, o.t)
FROM o JOIN firsts fi ON fi.ticket = o.ticket WHERE o.seq = fi.resolve_seq;
INSERT INTO facts
SELECT f.p, f.t, 'resolved_within_target', f.queue, f.channel, 1.0 FROM facts f
  JOIN targets g ON g.queue = f.queue AND g.channel = f.channel
  WHERE f.name = 'resolved' AND f.value <= g.res;
INSERT INTO facts
SELECT o.p, o.t, 'resolved_first_contact', o.queue, o.channel, 1.0
FROM o JOIN firsts fi ON fi.ticket = o.ticket WHERE o.seq = fi.resolve_seq
  AND NOT EXISTS (SELECT 1 FROM o x WHERE x.ticket = o.ticket AND x.type = 'transferred'
                  AND x.seq < o.seq)
  AND NOT EXISTS (SELECT 1 FROM o x WHERE x.ticket = o.ticket AND x.type = 'reopened'
                  AND x.t >= o.t AND x.t <= o.t + :fcr_s);
INSERT INTO facts
SELECT e.p, e.t, 'handled', e.queue, e.channel,
  (SELECT COALESCE(SUM(h.handle), 0) FROM ends h WHERE h.ticket = e.ticket AND h.seq <= e.seq
     AND h.seq > COALESCE((SELECT MAX(z.seq) FROM ends z WHERE z.ticket = e.ticket AND z.is_end
                           AND z.seq < e.seq), 0))
FROM ends e WHERE e.is_end;
INSERT INTO facts SELECT p, t, name, queue, channel, 1.0 FROM marks;
"""

# one row per ticket whose opening event names a customer; cp = its contacts partition,
# numbered from CONTACTS so that windows of ticket and contacts partitions never mix
CONTACTS = 1000
CUSTOMER_FACTS = """
CREATE TABLE contacts AS
SELECT op.ticket, op.customer, CONTACTS + part(op.customer) AS cp, op.t AS opened,
  op.queue AS oq, op.channel AS oc, r.t AS resolved, r.queue AS rq, r.channel AS rc,
  r.agent AS ragent,
  MAX(op.t, COALESCE(r.t, op.t), COALESCE((SELECT MAX(x.t) FROM o x
      WHERE x.ticket = op.ticket AND x.type = 'reopened'), op.t)) AS latest
FROM o op JOIN firsts f ON f.ticket = op.ticket
LEFT JOIN o r ON r.ticket = op.ticket AND r.seq = f.resolve_seq
WHERE op.is_open AND op.customer IS NOT NULL AND op.customer != '';
CREATE INDEX contacts_customer ON contacts (customer, opened);
INSERT INTO facts SELECT cp, resolved, 'acr_resolved', rq, rc, 1.0 FROM contacts
  WHERE resolved IS NOT NULL;
"""

# per recontact period (:d seconds, labelled :label)
RECONTACTED = """
CREATE TEMP TABLE rec AS
SELECT c.*, (EXISTS (SELECT 1 FROM contacts n WHERE n.customer = c.customer
                       AND n.ticket != c.ticket AND n.opened > c.resolved
                       AND n.opened <= c.resolved + :d)
          OR EXISTS (SELECT 1 FROM o x WHERE x.ticket = c.ticket AND x.type = 'reopened'
                       AND x.t >= c.resolved AND x.t <= c.resolved + :d)) AS recontacted
FROM contacts c WHERE c.resolved IS NOT NULL;
INSERT INTO facts SELECT cp, resolved, 'acr_recontacted:' || :label, rq, rc, 1.0 FROM rec
  WHERE recontacted;
INSERT INTO facts SELECT cp, resolved + :d, 'acr_final:' || :label, rq, rc, 1.0 FROM rec;
INSERT INTO facts SELECT cp, resolved + :d, 'acr_final_active:' || :label, rq, rc, 1.0 FROM rec
  WHERE NOT recontacted;
INSERT INTO facts SELECT cp, resolved, 'agent_acr_recontacted:' || :label || '@' || ragent,
  rq, rc, 1.0 FROM rec WHERE recontacted AND :per_agent;
DROP TABLE rec;
"""

# per-agent twins: the replying agent of a first response, the agent of the event ending a
# handling period, the resolving agent of an ACR resolution
PER_AGENT = """
INSERT INTO facts SELECT o.p, o.t, 'agent_first_response@' || o.agent, o.queue, o.channel,
  elapsed(o.queue, o.channel, o.t0, o.t) FROM o JOIN firsts fi ON fi.ticket = o.ticket
  WHERE o.seq = fi.answer_seq;
INSERT INTO facts
SELECT e.p, e.t, 'agent_handled@' || e.agent, e.queue, e.channel,
  (SELECT COALESCE(SUM(h.handle), 0) FROM ends h WHERE h.ticket = e.ticket AND h.seq <= e.seq
     AND h.seq > COALESCE((SELECT MAX(z.seq) FROM ends z WHERE z.ticket = e.ticket AND z.is_end
                           AND z.seq < e.seq), 0))
FROM ends e WHERE e.is_end;
INSERT INTO facts SELECT cp, resolved, 'agent_acr_resolved@' || ragent, rq, rc, 1.0
  FROM contacts WHERE resolved IS NOT NULL;
"""

OPEN = """
SELECT o.p, o.ticket, o.t0, o.open_channel,
  (SELECT CASE WHEN l.type = 'transferred' THEN l.to_queue ELSE l.queue END FROM o l
     WHERE l.ticket = o.ticket ORDER BY l.seq DESC LIMIT 1) AS queue,
  (SELECT l.type FROM o l WHERE l.ticket = o.ticket AND NOT l.is_open
     AND l.type IN ('resolved', 'abandoned', 'reopened') ORDER BY l.seq DESC LIMIT 1) AS last_state,
  (SELECT COUNT(*) FROM o a WHERE a.ticket = o.ticket AND NOT a.is_open AND a.type = 'replied'
     AND a.author = 'agent') AS answers
FROM o WHERE o.is_open
"""


def expected(
    records: list[tuple[bytes | None, bytes | None]],
    *,
    partitions: int,
    policy: Policy,
    now: float,
    windows: dict[str, float | None],
    bucket_s: int = 60,
    lateness_s: float = 600.0,
    tz: str = "UTC",
    future_tolerance_s: float = 300.0,
    agent_allowlist: frozenset[str] | None = None,
) -> Metrics:
    """Window and Now figures (clock = event) of records produced in this order."""
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    high: dict[int, float] = {}
    offsets: dict[int, int] = defaultdict(int)
    for key, value in records:
        if key is None:
            continue  # unkeyed records are rejected; their partition is irrelevant
        p = partition_of(key, partitions)
        off = offsets[p]
        offsets[p] += 1
        outcome = classify(key, value, now=now, future_tolerance_s=future_tolerance_s)
        if not isinstance(outcome, Accepted):
            continue
        e = outcome.event
        wmb = math.floor(high[p] / bucket_s) * bucket_s if p in high else -math.inf
        if e.occurred_at < wmb - lateness_s:
            db.execute(
                "INSERT INTO marks VALUES (?,?,?,?,?)", (p, wmb, "late_events", e.queue, e.channel)
            )
            continue
        high[p] = max(high.get(p, -math.inf), e.occurred_at)
        dup = db.execute("SELECT 1 FROM ev WHERE ticket = ? AND eid = ?", (e.ticket_id, e.event_id))
        if dup.fetchone():
            at = wmb if wmb > -math.inf else e.occurred_at
            db.execute(
                "INSERT INTO marks VALUES (?,?,?,?,?)",
                (p, at, "duplicate_events", e.queue, e.channel),
            )
        db.execute(
            "INSERT INTO ev VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                p,
                off,
                e.ticket_id,
                e.event_id,
                e.type,
                e.occurred_at,
                e.queue,
                e.channel,
                e.author,
                e.handle_seconds or 0.0,
                int(e.escalation),
                e.survey_kind,
                e.score,
                int(policy.complaint_tag in e.tags),
                e.to_queue,
                e.customer_id,
                e.agent_id or "unknown",
            ),
        )
    db.executescript(ORDERED)
    elapsed = _business_time(db, policy, now)
    db.create_function("elapsed", 4, elapsed)
    db.executescript(FACTS)
    _targets(db, policy)
    for statement in TARGETED.split(";"):
        if statement.strip():
            db.execute(statement, {"fcr_s": policy.fcr_days * 86400.0})
    db.create_function("part", 1, lambda c: partition_of(c.encode(), partitions))
    db.executescript(CUSTOMER_FACTS.replace("CONTACTS", str(CONTACTS)))
    if policy.per_agent:
        db.executescript(PER_AGENT)
    for days in policy.recontact_days:
        params = {"d": days * 86400.0, "label": days_label(days), "per_agent": policy.per_agent}
        for statement in RECONTACTED.split(";"):
            if statement.strip():
                db.execute(statement, params)
    ends = {p: math.floor(h / bucket_s) * bucket_s for p, h in high.items()}
    # the customer side ends where the newest input partition's watermark is: every input
    # partition tells every contacts partition when its watermark moves (docs/metrics.md)
    newest = max(ends.values(), default=None)
    for (cp,) in db.execute("SELECT DISTINCT cp FROM contacts"):
        ends[cp] = newest
    out = _window_metrics(db, ends, windows, bucket_s, tz, policy)
    if policy.per_agent:
        out.update(_agent_metrics(db, ends, windows, bucket_s, tz, agent_allowlist))
    out.update(_now_metrics(db, ends, policy, elapsed))
    return out


def _business_time(db: sqlite3.Connection, policy: Policy, now: float):
    """``elapsed(queue, channel, t0, t)``: seconds on the queue's calendar (a minute grid per
    calendar over the log's span, tests/oracle_calendar.py), real seconds without one."""
    first, last = db.execute("SELECT MIN(t), MAX(t) FROM ev").fetchone()
    if first is None:
        return lambda q, c, t0, t: t - t0
    grids = {
        name: MinuteGrid(cal, first - 2 * 86400, max(last, now) + 2 * 86400)
        for name, cal in policy.calendars.items()
    }

    def elapsed(queue: str, channel: str, t0: float, t: float) -> float:
        calendar = policy.for_queue(queue, channel).calendar  # which calendar: configuration
        if calendar is None:
            return t - t0
        return grids[calendar.name].seconds(t0, t)

    return elapsed


def _first_bucket(window: str, span: float | None, end: float, bucket_s: int, tz: str) -> float:
    if span is None:
        local = datetime.fromtimestamp(end, ZoneInfo(tz))
        return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    return end - span + bucket_s


def _facts_in(db, p: int, lo: float, end: float, bucket_s: int, name: str = "%"):
    """(name, queue, channel, value) of partition p's facts whose bucket is in [lo, end]."""
    return db.execute(
        "SELECT name, queue, channel, value FROM facts WHERE p = ? AND name LIKE ? "
        "AND (CAST(t AS INTEGER) / ?) * ? BETWEEN ? AND ?",
        (p, name, bucket_s, bucket_s, lo, end),
    )


def _repeats(db, cp: int, lo: float, hi: float, counts) -> None:
    """Customers with 2+ contacts opened in [lo, hi): once for the customer (labelled by the
    first contact), once per contact after the first (labelled by that contact)."""
    rows = db.execute(
        "SELECT customer, oq, oc FROM contacts WHERE cp = ? AND opened >= ? AND opened < ? "
        "AND customer IN (SELECT customer FROM contacts WHERE cp = ? AND opened >= ? "
        "AND opened < ? GROUP BY customer HAVING COUNT(*) > 1) ORDER BY customer, opened, ticket",
        (cp, lo, hi, cp, lo, hi),
    )
    previous = None
    for customer, q, c in rows:
        name = "repeat_contacts" if customer == previous else "repeat_customers"
        counts[(name, q, c)][1] += 1
        previous = customer


def _window_metrics(db, ends, windows, bucket_s, tz, policy) -> Metrics:
    from streams.metrics.catalogue import (
        ACR_FIGURES,
        HISTOGRAMS,
        REPEATS,
        WINDOW_FIGURES,
        WINDOW_SUMS,
    )

    bounds = policy.bounds()
    days = [days_label(d) for d in policy.recontact_days]
    out: Metrics = {}
    for w, span in windows.items():
        counts: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0])
        hist: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * (len(bounds) + 1))
        longest: dict[tuple[str, str], float] = {}
        for p, end in ends.items():
            lo = _first_bucket(w, span, end, bucket_s, tz)
            for name, q, c, value in _facts_in(db, p, lo, end, bucket_s):
                acc = counts[(name, q, c)]
                acc[0] += value
                acc[1] += 1
                if name in HISTOGRAMS:
                    hist[(name, q, c)][bisect_left(bounds, value)] += 1
                if name == "first_response":
                    longest[(q, c)] = max(longest.get((q, c), value), value)
            if p >= CONTACTS:
                _repeats(db, p, lo, end + bucket_s, counts)
        series = {(q, c) for (_, q, c) in counts}
        for q, c in series:
            labels = (("channel", c), ("queue", q), ("window", w))
            if (q, c) in longest:
                out[("ticketpulse_window_first_response_max_seconds", labels)] = longest[(q, c)]
            for entry, (metric, _) in REPEATS.items():
                out[(f"ticketpulse_window_{metric}", labels)] = counts[(entry, q, c)][1]
            for entry, (metric, _) in ACR_FIGURES.items():
                for d in days:
                    key = (f"ticketpulse_window_{metric}", tuple(sorted((*labels, ("days", d)))))
                    out[key] = counts[(f"{entry}:{d}", q, c)][1]
            for entry, (metric, _) in WINDOW_FIGURES.items():
                out[(f"ticketpulse_window_{metric}", labels)] = counts[(entry, q, c)][1]
            for entry, (metric, _) in WINDOW_SUMS.items():
                out[(f"ticketpulse_window_{metric}", labels)] = counts[(entry, q, c)][0]
            preset = policy.for_queue(q, c).service_level
            den = counts[("first_response", q, c)][1]
            if preset != "answered":
                den += counts[("abandoned", q, c)][1]
            if preset == "answered_abandoned_minus_short":
                den -= counts[("short_abandoned", q, c)][1]
            out[("ticketpulse_window_service_level_denominator", labels)] = den
            out[("ticketpulse_window_service_level_numerator", labels)] = counts[
                ("first_response_within_target", q, c)
            ][1]
            for entry, (metric, _) in HISTOGRAMS.items():
                running = 0
                per_bound = hist[(entry, q, c)]
                for i, b in enumerate(bounds):
                    running += per_bound[i]
                    le = str(int(b)) if float(b).is_integer() else repr(b)
                    out[(f"ticketpulse_window_{metric}_bucket", _with_le(labels, le))] = running
                running += per_bound[-1]
                out[(f"ticketpulse_window_{metric}_bucket", _with_le(labels, "+Inf"))] = running
                out[(f"ticketpulse_window_{metric}_gcount", labels)] = running
                out[(f"ticketpulse_window_{metric}_gsum", labels)] = counts[(entry, q, c)][0]
    return out


AGENT_METRICS = {  # entry base -> (count metric, sum metric)
    "agent_first_response": ("agent_first_responses", "agent_first_response_wait_seconds"),
    "agent_handled": ("agent_contacts_handled", "agent_handle_time_seconds"),
    "agent_acr_resolved": ("agent_acr_resolutions", None),
    "agent_acr_recontacted": ("agent_acr_recontacted", None),
}


def _agent_metrics(db, ends, windows, bucket_s, tz, allowlist) -> Metrics:
    """Per-agent figures; agents outside the allow-list are summed as agent="other"."""
    out: Metrics = {}
    for w, span in windows.items():
        for p, end in ends.items():
            lo = _first_bucket(w, span, end, bucket_s, tz)
            for name, q, c, value in _facts_in(db, p, lo, end, bucket_s, "agent%"):
                figure, agent = name.split("@", 1)
                base, _, days = figure.partition(":")
                if allowlist is not None and agent not in allowlist:
                    agent = "other"
                labels = [("queue", q), ("channel", c), ("window", w), ("agent", agent)]
                if days:
                    labels.append(("days", days))
                key = tuple(sorted(labels))
                count_metric, sum_metric = AGENT_METRICS[base]
                count_key = (f"ticketpulse_window_{count_metric}", key)
                out[count_key] = out.get(count_key, 0) + 1
                if sum_metric:
                    sum_key = (f"ticketpulse_window_{sum_metric}", key)
                    out[sum_key] = out.get(sum_key, 0.0) + value
    return out


def _with_le(labels: Labels, le: str) -> Labels:
    return tuple(sorted((*labels, ("le", le))))


def _now_metrics(db, ends, policy, elapsed) -> Metrics:
    figures: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0, 0, 0.0])
    for p, _ticket, t0, channel, queue, last_state, answers in db.execute(OPEN):
        if last_state in ("resolved", "abandoned") or p not in ends:
            continue
        age = max(0.0, ends[p] - t0)
        target_age = max(0.0, elapsed(queue, channel, t0, ends[p]))
        rules = policy.for_queue(queue, channel)
        f = figures[(queue, channel)]
        f[0] += 1
        if target_age > rules.resolution_target_s:
            f[4] += 1
        if answers == 0:
            f[1] += 1
            f[2] = max(f[2], age)
            f[5] = max(f[5], target_age)
            if target_age > rules.first_response_target_s:
                f[3] += 1
    out: Metrics = {}
    names = (
        "contacts_open",
        "contacts_waiting",
        "oldest_waiting_contact_age_seconds",
        "first_response_breaches",
        "resolution_breaches",
        "oldest_waiting_contact_target_age_seconds",
    )
    for (q, c), values in figures.items():
        for name, value in zip(names, values, strict=True):
            out[(f"ticketpulse_{name}", (("channel", c), ("queue", q)))] = value
    return out
