"""The bench's Quix Streams peer: a fair subset of our figures, in Quix's idiomatic API.

What it computes, from the same topic and log as the product:

- per ticket (state keyed by ticket, in Quix's RocksDB state store): the event ids seen
  (duplicates dropped), when it opened and whether an agent replied yet;
- facts: offered (an ``opened``), first response and its seconds (the first agent reply
  after the opening), abandoned, transfers out;
- per queue x channel (``group_by``, which repartitions through a topic, as Quix
  requires for a new key) in 60-second tumbling windows in event time (the timestamp is
  the event's ``occurred_at``; a grace of 600 s, the product's allowed lateness): offered,
  first responses, FRT sum, abandoned, transfers out.

What it skips (the product does all of these): schema validation and dead letters
(unparseable records are dropped), lateness and watermarks beyond Quix's window closing,
retractions when a later event corrects an earlier fact (reopen, transfer, out-of-order
reply), the customer side (ACR, FCR, repeats), Now gauges, histograms, calendars,
exactly-once-in-effect table writes, the exporter. Settings are Quix's defaults
(at-least-once, 5 s commits, RocksDB state), as its documentation recommends. Its windows
close per repartition partition on the highest event time seen there, and the input
partitions are read at different paces, so some facts arrive after their window closed
and are dropped (Quix logs each): its figures are a lower bound, and its work a little less.

Run by ``make bench`` (``quixstreams`` is the ``bench`` extra, never a runtime dependency):
``python -m streams.tools.bench_peer BOOTSTRAP TOPIC N WORKDIR`` prints
``{"records": ..., "seconds": ...}``: input records from the first to the last fact counted.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

FIELDS = ("offered", "first_responses", "frt_sum", "abandoned", "transfers_out")


def occurred_ms(value: Any, headers: Any, timestamp: float, kind: Any) -> int:
    """Event time: the event's ``occurred_at`` (Kafka's timestamp when it has none)."""
    try:
        text = value["occurred_at"].replace("Z", "+00:00")
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except (KeyError, TypeError, ValueError, AttributeError):
        return int(timestamp)


def ticket_facts(event: dict[str, Any], state: Any) -> list[dict[str, Any]]:
    """The facts one event adds, from the ticket's state (duplicates add none)."""
    seen = set(state.get("seen", []))
    if event["event_id"] in seen:
        return []
    seen.add(event["event_id"])
    state.set("seen", sorted(seen))
    kind, at = event.get("type"), occurred_ms(event, None, 0, None) / 1000
    base = {"queue": event.get("queue", ""), "channel": event.get("channel", "")}
    if kind == "opened" and state.get("opened_at") is None:
        state.set("opened_at", at)
        return [{**base, "fact": "offered", "value": 1}]
    if kind == "replied" and event.get("author") == "agent" and not state.get("answered"):
        opened = state.get("opened_at")
        if opened is not None:
            state.set("answered", True)
            return [{**base, "fact": "first_responses", "value": max(0.0, at - opened)}]
    if kind in ("abandoned", "transferred"):
        fact = "abandoned" if kind == "abandoned" else "transfers_out"
        return [{**base, "fact": fact, "value": 1}]
    return []


def add_fact(totals: dict[str, float], fact: dict[str, Any]) -> dict[str, float]:
    name = fact["fact"]
    if name == "first_responses":
        totals["first_responses"] += 1
        totals["frt_sum"] += fact["value"]
    else:
        totals[name] += 1
    return totals


def run(bootstrap: str, topic_name: str, n: int, work: Path) -> dict[str, float]:
    from quixstreams import Application
    from quixstreams.models.serializers import Deserializer

    class Json(Deserializer):
        def __init__(self) -> None:
            super().__init__()

        def __call__(self, value: bytes, ctx: Any) -> Any:
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError:
                return {}
            return doc if isinstance(doc, dict) else {}

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{time.time_ns()}",
        auto_offset_reset="earliest",
        state_dir=str(work / "quix-state"),
        loglevel="ERROR",  # its late-record warnings would cost it time (see below)
    )
    topic = app.topic(topic_name, value_deserializer=Json(), timestamp_extractor=occurred_ms)
    progress = {"input": 0, "facts": 0, "first": 0.0, "last": 0.0}

    def counted(value: Any) -> None:
        progress["input"] += 1
        if progress["input"] == 1:
            progress["first"] = time.monotonic()

    def fact_counted(value: Any) -> None:
        progress["facts"] += 1
        progress["last"] = time.monotonic()

    sdf = app.dataframe(topic)
    sdf = sdf.update(counted)
    sdf = sdf.filter(lambda v: bool(v.get("ticket_id")) and bool(v.get("event_id")))
    sdf = sdf.apply(ticket_facts, stateful=True, expand=True)
    sdf = sdf.group_by(lambda f: f"{f['queue']}|{f['channel']}", name="queue-channel")
    sdf = sdf.update(fact_counted)
    # grace = the product's allowed lateness (600 s): partitions interleave in event time
    windows = sdf.tumbling_window(duration_ms=60_000, grace_ms=600_000).reduce(
        reducer=add_fact, initializer=lambda f: add_fact(dict.fromkeys(FIELDS, 0.0), f)
    )
    windows.final()  # each window's totals once it closes
    threading.Thread(target=_stop_when_done, args=(app, progress, n), daemon=True).start()
    app.run()
    return {"records": progress["input"], "seconds": progress["last"] - progress["first"]}


def _stop_when_done(app: Any, progress: dict[str, float], n: int) -> None:
    """Stop once every input record was read and no fact arrived for 2 s."""
    while True:
        time.sleep(0.5)
        if progress["input"] >= n and time.monotonic() - progress["last"] > 2:
            app.stop()
            return


if __name__ == "__main__":
    bootstrap, topic, n, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    print(json.dumps(run(bootstrap, topic, n, work)))
