"""A seeded discrete-event simulation of a contact centre that emits ticket events.

Arrivals follow a time-of-day profile; each queue has its own channel, agent pool,
handling speed and customer patience. Chat and messaging get a bot reply first;
customers abandon when their wait exceeds their patience; agents reply, sometimes
transfer or escalate, then resolve; some customers send a survey, some tickets are
reopened and some customers come back within days with a new ticket.

``generate`` is deterministic for a given (seed, start): the same inputs give the
same bytes. Fault injection (duplicates, out-of-order, late and malformed records)
happens in the output stage so the underlying valid history stays coherent.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

EVENTS_PER_TICKET = 7.5  # measured average of this model, used to turn --rate into arrivals
HOURLY_PROFILE = (
    0.15,
    0.1,
    0.08,
    0.08,
    0.1,
    0.2,
    0.45,
    0.9,
    1.4,
    1.7,
    1.8,
    1.7,
    1.4,
    1.5,
    1.7,
    1.7,
    1.5,
    1.2,
    0.9,
    0.7,
    0.5,
    0.4,
    0.3,
    0.2,
)
_PROFILE_MEAN = sum(HOURLY_PROFILE) / 24
_PROFILE_MAX = max(HOURLY_PROFILE) / _PROFILE_MEAN


@dataclass(frozen=True)
class QueueProfile:
    name: str
    channel: str
    share: float  # of arrivals
    handle_s: float  # mean agent time per reply
    patience_s: float | None  # mean customer patience; None = never abandons (email)
    bot_first: bool
    transfer_p: float
    exchanges: float  # mean customer/agent exchanges after the first reply
    customer_gap_s: float  # mean time the customer takes to answer


QUEUES: tuple[QueueProfile, ...] = (
    QueueProfile("sales", "phone", 0.25, 90, 60, False, 0.08, 1, 20),
    QueueProfile("support", "chat", 0.30, 60, 240, True, 0.10, 2, 45),
    QueueProfile("billing", "email", 0.20, 240, None, False, 0.06, 1, 600),
    QueueProfile("tech", "messaging", 0.15, 120, 900, True, 0.15, 2, 300),
    QueueProfile("vip", "phone", 0.10, 120, 40, False, 0.05, 1, 20),
)
ESCALATIONS = QueueProfile("escalations", "phone", 0.0, 180, 600, False, 0.0, 1, 30)
FAR_FUTURE = "2099-01-01T00:00:00Z"


@dataclass(frozen=True)
class SimParams:
    seed: int = 1
    start: float = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()
    rate: float = 20.0  # mean events per simulated second over a day
    duration: float | None = None  # simulated seconds; None = until max_events
    max_events: int | None = None
    duplicates: float = 0.0
    out_of_order: float = 0.0
    late: float = 0.0
    malformed: float = 0.0
    lateness_s: float = 600.0  # the worker's allowed lateness: out-of-order stays inside it
    key_mismatch: bool = False  # only representable when writing to Kafka
    recontact_mean_s: float = 129_600.0  # mean delay before a customer comes back (1.5 days)
    reopen_mean_s: float = 86_400.0  # mean delay before a resolved ticket is reopened
    # every duration of a contact (handling, customer replies, patience, bot replies, wrap-up,
    # survey delay) times this; 0.25 is a centre four times as quick, whose backlog of open
    # tickets settles within minutes of a cold start (the soak's load), where at 1.0 it
    # takes most of an hour
    pace: float = 1.0


@dataclass(frozen=True, slots=True)
class Record:
    """One record to produce: key bytes (or None) and value bytes, in emission order."""

    emit_at: float
    key: bytes | None
    value: bytes
    kind: str  # "event", "duplicate", "out_of_order", "late" or a malformed reason


@dataclass
class _Ticket:
    id: str
    customer: str | None
    queue: QueueProfile
    channel: str
    priority: str
    tags: tuple[str, ...]
    patience: float
    answered: bool = False
    waiting: bool = False
    closed: bool = False
    busy_since: float = 0.0


@dataclass
class _Pool:
    agents: list[str]
    free: deque[str] = field(default_factory=deque)
    waiting: deque[_Ticket] = field(default_factory=deque)


def _iso(ts: float) -> str:
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class _Simulation:
    def __init__(self, params: SimParams) -> None:
        self.p = params
        self.rng = random.Random(params.seed)
        self.tag = f"{params.seed:x}-{int(params.start):x}"
        self.heap: list[tuple[float, int, Callable[[float], None]]] = []
        self.seq = itertools.count()
        self.tickets = itertools.count(1)
        self.events = itertools.count(1)
        self.customers = itertools.count(1)
        self.out: list[tuple[float, dict[str, Any]]] = []
        ticket_rate = params.rate / EVENTS_PER_TICKET
        self.pools: dict[str, _Pool] = {}
        for q in (*QUEUES, ESCALATIONS):
            share = q.share if q.share else 0.04
            # expected agent-seconds per contact, staffed for 85% of the daytime peak
            work = 3 + q.handle_s * 0.5 + q.exchanges * (q.customer_gap_s + q.handle_s + 4) + 35
            work *= params.pace
            size = max(1, math.ceil(ticket_rate * share * work * _PROFILE_MAX * 0.85))
            agents = [f"A-{q.name}-{i}" for i in range(1, size + 1)]
            self.pools[q.name] = _Pool(agents, deque(agents))

    # --- scheduling -------------------------------------------------------
    def at(self, t: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self.heap, (t, next(self.seq), action))

    def emit(self, t: float, ticket: _Ticket, kind: str, **extra: Any) -> None:
        doc: dict[str, Any] = {
            "event_id": f"E-{self.tag}-{next(self.events)}",
            "type": kind,
            "ticket_id": ticket.id,
            "occurred_at": _iso(t),
            "queue": ticket.queue.name,
            "channel": ticket.channel,
        }
        if ticket.customer:
            doc["customer_id"] = ticket.customer
        if kind == "opened":
            doc["priority"] = ticket.priority
            if ticket.tags:
                doc["tags"] = list(ticket.tags)
        doc.update(extra)
        self.out.append((t, doc))

    # --- arrivals ---------------------------------------------------------
    def next_arrival(self, t: float) -> None:
        """Non-homogeneous Poisson arrivals by thinning against the hourly profile."""
        peak = self.p.rate / EVENTS_PER_TICKET * _PROFILE_MAX
        while True:
            t += self.rng.expovariate(peak)
            hour = datetime.fromtimestamp(t, UTC).hour
            if self.rng.random() * _PROFILE_MAX <= HOURLY_PROFILE[hour] / _PROFILE_MEAN:
                break
        self.at(t, self.arrive)

    def arrive(
        self, t: float, customer: str | None = None, queue: QueueProfile | None = None
    ) -> None:
        if customer is None and queue is None:
            self.next_arrival(t)
        rng, pace = self.rng, self.p.pace
        if queue is None:
            queue = rng.choices(QUEUES, weights=[q.share for q in QUEUES])[0]
        if customer is None and rng.random() > 0.05:
            customer = f"C-{self.tag}-{next(self.customers)}"
        mean_patience = queue.patience_s
        ticket = _Ticket(
            id=f"T-{self.tag}-{next(self.tickets)}",
            customer=customer,
            queue=queue,
            channel=queue.channel,
            priority=rng.choices(("low", "normal", "high", "urgent"), (2, 6, 2, 0.5))[0],
            tags=tuple(
                tag
                for tag, p in (("complaint", 0.05), ("refund", 0.08), ("outage", 0.03))
                if rng.random() < p
            ),
            patience=rng.expovariate(1 / mean_patience) * pace if mean_patience else math.inf,
        )
        self.emit(t, ticket, "opened")
        if queue.bot_first:
            self.at(t + rng.uniform(1, 5) * pace, lambda s: self.bot_reply(s, ticket))
        if queue.channel in ("chat", "messaging") and rng.random() < 0.3:
            self.at(t + rng.uniform(10, 90) * pace, lambda s: self.customer_nudge(s, ticket))
        self.enqueue(t, ticket)

    def bot_reply(self, t: float, ticket: _Ticket) -> None:
        if not ticket.closed:
            self.emit(t, ticket, "replied", author="bot")

    def customer_nudge(self, t: float, ticket: _Ticket) -> None:
        if ticket.waiting and not ticket.answered:
            self.emit(t, ticket, "replied", author="customer")

    # --- queueing ---------------------------------------------------------
    def enqueue(self, t: float, ticket: _Ticket) -> None:
        pool = self.pools[ticket.queue.name]
        ticket.waiting = True
        if pool.free:
            self.start_service(t, ticket, pool.free.popleft())
            return
        pool.waiting.append(ticket)
        if not ticket.answered and math.isfinite(ticket.patience):
            self.at(t + ticket.patience, lambda s: self.abandon(s, ticket))

    def abandon(self, t: float, ticket: _Ticket) -> None:
        if ticket.waiting and not ticket.answered and not ticket.closed:
            ticket.waiting = False
            ticket.closed = True
            self.emit(t, ticket, "abandoned")

    def release(self, t: float, ticket: _Ticket, agent: str) -> None:
        pool = self.pools[ticket.queue.name]
        while pool.waiting:
            nxt = pool.waiting.popleft()
            if nxt.waiting and not nxt.closed:
                self.start_service(t, nxt, agent)
                return
        pool.free.append(agent)

    # --- service ----------------------------------------------------------
    def start_service(self, t: float, ticket: _Ticket, agent: str) -> None:
        ticket.waiting = False
        rng, pace = self.rng, self.p.pace
        q = ticket.queue
        self.emit(t, ticket, "assigned", agent_id=agent)
        steps: list[tuple[float, str, dict[str, Any]]] = []
        clock = t
        clock += (rng.expovariate(1 / (q.handle_s * 0.5)) + 3) * pace
        steps.append((clock, "replied", {"author": "agent", "agent_id": agent}))
        for _ in range(self._poisson(q.exchanges)):
            clock += (rng.expovariate(1 / q.customer_gap_s) + 1) * pace
            steps.append((clock, "replied", {"author": "customer"}))
            clock += (rng.expovariate(1 / q.handle_s) + 3) * pace
            steps.append((clock, "replied", {"author": "agent", "agent_id": agent}))
        clock += rng.uniform(10, 60) * pace
        roll = rng.random()
        if q is not ESCALATIONS and roll < q.transfer_p:
            escalate = rng.random() < 0.3
            target = ESCALATIONS if escalate else rng.choice([x for x in QUEUES if x is not q])
            fields = {"to_queue": target.name, "agent_id": agent, "escalation": escalate}
            steps.append((clock, "transferred", fields))
        elif roll > 0.98:
            steps.append((clock, "abandoned", {}))  # customer disconnect after an answer
        else:
            steps.append((clock, "resolved", {"agent_id": agent}))
        ticket.busy_since = t
        self.at(steps[0][0], lambda s: self.step(s, ticket, agent, steps, 0))

    def _poisson(self, mean: float) -> int:
        limit, k, prod = math.exp(-mean), 0, self.rng.random()
        while prod > limit:
            k += 1
            prod *= self.rng.random()
        return k

    def step(
        self,
        t: float,
        ticket: _Ticket,
        agent: str,
        steps: list[tuple[float, str, dict[str, Any]]],
        i: int,
    ) -> None:
        _, kind, fields = steps[i]
        fields = dict(fields)
        if fields.get("author", "agent") == "agent" and kind != "abandoned":
            fields["handle_seconds"] = round(t - ticket.busy_since, 3)
            ticket.busy_since = t
        self.emit(t, ticket, kind, **fields)
        if kind == "replied" and fields.get("author") == "agent":
            ticket.answered = True
        if i + 1 < len(steps):
            self.at(steps[i + 1][0], lambda s: self.step(s, ticket, agent, steps, i + 1))
            return
        self.release(t, ticket, agent)
        if kind == "transferred":
            ticket.queue = ESCALATIONS if fields["escalation"] else self._queue(fields["to_queue"])
            self.enqueue(t, ticket)
        elif kind == "resolved":
            self.after_resolution(t, ticket)
        else:
            ticket.closed = True

    def _queue(self, name: str) -> QueueProfile:
        return next(q for q in QUEUES if q.name == name)

    def after_resolution(self, t: float, ticket: _Ticket) -> None:
        rng = self.rng
        if rng.random() < 0.35:
            kind = rng.choices(("csat", "nps", "ces"), (5, 3, 2))[0]
            score = {
                "csat": lambda: rng.choices(range(1, 6), (1, 1, 2, 4, 5))[0],
                "nps": lambda: rng.choices(range(11), (1, 1, 1, 1, 1, 2, 2, 4, 5, 5, 4))[0],
                "ces": lambda: rng.choices(range(1, 8), (1, 1, 2, 3, 4, 4, 3))[0],
            }[kind]()
            self.at(
                t + rng.expovariate(1 / 600) * self.p.pace,
                lambda s: self.emit(s, ticket, "survey", survey_kind=kind, score=score),
            )
        if rng.random() < 0.05:
            self.at(t + rng.expovariate(1 / self.p.reopen_mean_s), lambda s: self.reopen(s, ticket))
        else:
            ticket.closed = True
        if ticket.customer and rng.random() < 0.12:
            customer, queue = ticket.customer, ticket.queue
            if queue is ESCALATIONS:
                queue = QUEUES[1]
            delay = rng.expovariate(1 / self.p.recontact_mean_s)
            self.at(t + delay, lambda s: self.arrive(s, customer, queue))

    def reopen(self, t: float, ticket: _Ticket) -> None:
        self.emit(t, ticket, "reopened")
        self.enqueue(t, ticket)

    # --- driver -----------------------------------------------------------
    def run(self) -> Iterator[tuple[float, dict[str, Any]]]:
        self.next_arrival(self.p.start)
        end = self.p.start + self.p.duration if self.p.duration is not None else math.inf
        while self.heap:
            t, _, action = heapq.heappop(self.heap)
            if t > end:
                return
            action(t)
            yield from self.out
            self.out.clear()


def _malformed(
    rng: random.Random, doc: dict[str, Any], key_mismatch: bool
) -> tuple[str, bytes | None, bytes]:
    """One bad record modelled on what real producers get wrong."""
    key = doc["ticket_id"].encode()
    kinds = ["not_json", "not_object", "schema", "schema", "too_large", "future_timestamp"]
    if key_mismatch:
        kinds.append("key_mismatch")
    kind = rng.choice(kinds)
    bad = dict(doc, event_id=doc["event_id"] + "-bad")
    if kind == "not_json":
        return kind, key, orjson.dumps(bad)[:-7]  # truncated mid-object
    if kind == "not_object":
        return kind, key, orjson.dumps([bad])
    if kind == "schema":
        bad.pop(rng.choice(["queue", "channel", "occurred_at"]))
        return kind, key, orjson.dumps(bad)
    if kind == "too_large":
        return kind, key, orjson.dumps(dict(bad, notes="x" * 70_000))
    if kind == "future_timestamp":
        return kind, key, orjson.dumps(dict(bad, occurred_at=FAR_FUTURE))
    return kind, b"not-" + key, orjson.dumps(bad)


def generate(params: SimParams) -> Iterator[Record]:
    """Yield records in emission order with the requested faults injected."""
    sim = _Simulation(params)
    faults = random.Random(params.seed ^ 0x5EED)
    pending: list[tuple[float, int, Record]] = []
    seq = itertools.count()
    emitted = 0
    limit = params.max_events if params.max_events is not None else math.inf

    def push(at: float, record: Record) -> None:
        heapq.heappush(pending, (at, next(seq), record))

    for t, doc in sim.run():
        key, value = doc["ticket_id"].encode(), orjson.dumps(doc)
        roll = faults.random()
        if roll < params.late:
            at = t + faults.uniform(params.lateness_s * 1.5, params.lateness_s * 3)
            push(at, Record(at, key, value, "late"))
        elif roll < params.late + params.out_of_order:
            at = t + faults.uniform(1, params.lateness_s * 0.8)
            push(at, Record(at, key, value, "out_of_order"))
        else:
            push(t, Record(t, key, value, "event"))
        if faults.random() < params.duplicates:
            at = t + faults.uniform(0, 30)
            push(at, Record(at, key, value, "duplicate"))
        if faults.random() < params.malformed:
            kind, bad_key, bad = _malformed(faults, doc, params.key_mismatch)
            push(t, Record(t, bad_key, bad, kind))
        while pending and pending[0][0] <= t:
            yield heapq.heappop(pending)[2]
            emitted += 1
            if emitted >= limit:
                return
    while pending and emitted < limit:
        yield heapq.heappop(pending)[2]
        emitted += 1
