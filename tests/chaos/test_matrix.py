"""The reliability matrix, rows 1-12, on the real broker; each row judged against the oracle.

`make chaos` runs it (not `make test`: the rows take minutes each) and writes the results
into docs/reliability.md. Row 13, the soak, is `make soak`. The quick rows also run in
`make test` in their own integration tests; here each is run again, end to end, as a row.
"""

from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.cli import main
from streams.config import DEFAULT_WINDOWS, load_settings
from streams.tools.broker import launcher
from streams.tools.produce import key_of
from streams.tools.simulator import SimParams, generate
from tests.conftest import fetch, wait_for
from tests.integration.offsets import committed_and_end
from tests.integration.test_ingest import consume_all
from tests.integration.test_kpis import combined, replay_into_new_topics, wait_equal
from tests.oracle import Metrics, differences, expected

pytestmark = pytest.mark.chaos


def scenario(tmp: Path, seed: int, events: int, **faults: float) -> tuple[Path, Counter, Metrics]:
    """A simulated log with faults: its file, the count of each record kind, the oracle."""
    params = SimParams(
        seed=seed, rate=6, max_events=events, lateness_s=600,
        recontact_mean_s=1800, reopen_mean_s=1800, **faults,
    )  # fmt: skip
    made = list(generate(params))
    log = tmp / f"log-{seed}.jsonl"
    log.write_bytes(b"".join(r.value + b"\n" for r in made))
    records = [(key_of(r.value), r.value) for r in made]
    oracle = expected(
        records, partitions=4, policy=load_settings().policy(), now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
    )  # fmt: skip
    return log, Counter(r.kind for r in made), oracle


def stats(worker) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/stats", timeout=10) as r:
        return dict(orjson.loads(r.read()))


def contacts_caught_up(progress: dict) -> bool:
    """Every contact the ticket side forwarded is processed by the customer side."""
    return bool(progress["contacts_forwarded"] == progress["contacts_received"])


def total(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in metrics.items()
        if n == name and all(dict(ls).get(k) == x for k, x in labels.items())
    )


def active(worker) -> float:
    try:
        return worker.metrics().get(("ticketpulse_partitions_assigned", (("role", "active"),)), 0)
    except OSError:
        return 0.0


def ready_time(start_worker, *args: str, **kwargs) -> tuple[object, float]:
    began = time.monotonic()
    worker = start_worker(*args, **kwargs)
    return worker, time.monotonic() - began


def test_row_1_crash_mid_stream(kafka, names, start_worker, tmp_path, matrix) -> None:
    row = matrix(1, "Crash mid-stream", "SIGKILL 3x while the worker works through a "
                 "30,000-record backlog, each after a random number of records; restart on "
                 "the same data dir")  # fmt: skip
    log, _, oracle = scenario(tmp_path, 101, 30_000, duplicates=0.03, out_of_order=0.05)
    replay_into_new_topics(kafka, names, log)
    data, pick = tmp_path / "store", random.Random(1)
    # not waiting for each to be ready: by then it has read much of the backlog
    worker = start_worker("--clock", "event", data_dir=data, wait=False)
    killed_after, resumed = [], []
    for _ in range(3):
        killed_after.append(processed_past(worker, pick.randint(1_000, 5_000)))
        worker.stop(signal.SIGKILL)
        began = time.monotonic()
        worker = start_worker("--clock", "event", data_dir=data, wait=False)
        processed_past(worker, 1)
        resumed.append(time.monotonic() - began)
    wait_equal(oracle, worker)
    assert all(lag > 0 for _, lag in killed_after), killed_after  # each with records waiting
    row.result = ("= oracle, no crash loop; killed after "
                  f"{', '.join(f'{n:,}' for n, _ in killed_after)} records of its own")  # fmt: skip
    row.diffs = "0"
    row.recovery = "first record again after " + ", ".join(f"{t:.1f} s" for t in resumed)


def caught_up(kafka, names, start_worker, tmp: Path, seed: int, events: int):
    """A worker that has processed a whole simulated log: (worker, its data dir, oracle)."""
    log, _, oracle = scenario(tmp, seed, events)
    replay_into_new_topics(kafka, names, log)
    data = tmp / "store"
    worker = start_worker("--clock", "event", data_dir=data)
    wait_equal(oracle, worker)
    return worker, data, oracle


def test_row_2_clean_restart(kafka, names, start_worker, tmp_path, matrix) -> None:
    row = matrix(2, "Clean restart", "SIGTERM after catch-up, restart with no new input")
    worker, data, _ = caught_up(kafka, names, start_worker, tmp_path, 102, 8000)
    before = {k: v for k, v in worker.metrics().items() if k[0].startswith("ticketpulse_window")}
    worker.stop(signal.SIGTERM)
    again, took = ready_time(start_worker, "--clock", "event", data_dir=data)
    time.sleep(5)
    after = {k: v for k, v in again.metrics().items() if k[0].startswith("ticketpulse_window")}
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed and stats(again)["accepted"] == 0, (sorted(changed)[:5], stats(again))
    row.result = f"no figure changed ({len(before):,} window series), 0 records read again"
    row.diffs, row.recovery = "0", f"ready after {took:.1f} s"


def test_rows_3_4_5_duplicates_out_of_order_and_late(
    kafka, names, start_worker, tmp_path, matrix
) -> None:
    rows = [
        matrix(3, "Duplicates", "8 % exact re-sends of an event (same event_id)"),
        matrix(4, "Out-of-order", "5 % delivered late but within the 600 s lateness"),
        matrix(5, "Late events", "2 % delivered after more than the lateness"),
    ]
    log, kinds, oracle = scenario(
        tmp_path, 103, 20_000, duplicates=0.08, out_of_order=0.05, late=0.02
    )
    replay_into_new_topics(kafka, names, log)
    worker = start_worker("--clock", "event")
    wait_equal(oracle, worker)
    live = worker.metrics()
    dupes = total(live, "ticketpulse_window_duplicate_events", window="24h")
    late = total(live, "ticketpulse_window_late_events", window="24h")
    # a re-send that arrives before its delayed original is applied, and the original is
    # then the duplicate (or late, when delayed past the lateness): the oracle agrees
    rows[0].result = (f"= oracle; {dupes:,.0f} duplicates counted for {kinds['duplicate']:,} "
                      "re-sends injected: the others came before an original delivered past "
                      "the lateness, which counts as late")  # fmt: skip
    rows[1].result = f"= event-time oracle ({kinds['out_of_order']:,} out of order)"
    rows[2].result = f"= oracle; late counted {late:,.0f}, injected {kinds['late']:,} (not applied)"
    for row in rows:
        row.diffs = "0"
    assert kinds["duplicate"] - late <= dupes <= kinds["duplicate"], (dupes, late, kinds)
    assert late == kinds["late"], (late, kinds)
    # one worker, never restarted: its counters since start count the same records
    skipped = {outcome: total(live, "ticketpulse_events_not_applied_total", outcome=outcome)
               for outcome in ("duplicate", "late")}  # fmt: skip
    assert skipped == {"duplicate": dupes, "late": late}, skipped


def test_row_6_broker_bounces(names, start_worker, tmp_path, matrix) -> None:
    row = matrix(6, "Broker restart", "5 bounces while the worker works through a 25,000-record "
                 "backlog (SIGTERM, SIGKILL alternately), 5 s down each")  # fmt: skip
    log, _, oracle = scenario(tmp_path, 106, 25_000)
    total = len(log.read_bytes().splitlines())
    broker = launcher.start(tmp_path / "kafka")
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    where = ["--bootstrap-servers", broker.bootstrap, "--topic", names["topic"]]
    try:
        assert main(["topics", *where, "--dlq-topic", names["dlq"], "--partitions", "4"]) == 0
        assert main(["replay", str(log), *where, "--no-progress"]) == 0
        # not waiting for it to be ready: by then it has read the whole backlog
        worker = start_worker("--clock", "event", bootstrap=broker.bootstrap, wait=False)
        at_kill = []
        for bounce in range(5):
            at_kill.append(processed_past(worker, 2_000 + 4_000 * bounce))
            if bounce % 2:
                broker.process.kill()
                broker.process.wait(30)
            else:
                broker.stop()
            time.sleep(5)
            broker = launcher.start(tmp_path / "kafka", port=port)
            returned = time.monotonic()
        # the matrix: lag back to 0 (every record committed) within 60 s of the return
        wait_for(lambda: all_committed(broker.bootstrap, names), 60,
                 "every record committed within 60 s of the broker's return", worker)  # fmt: skip
        caught_up = time.monotonic() - returned
        wait_equal(oracle, worker)
        assert worker.process.poll() is None
    finally:
        broker.stop()
    assert all(lag > 0 for _, lag in at_kill), at_kill  # every bounce came with records waiting
    kills = ", ".join(f"{n:,}" for n, _ in at_kill)
    row.result = ("= oracle; the worker stayed up through every bounce, each with records "
                  f"waiting (killed at {kills} of {total:,} processed)")  # fmt: skip
    row.diffs = "0"
    row.recovery = f"every record committed {caught_up:.1f} s after the last return"


def processed_past(worker, records: int, timeout: float = 180) -> tuple[int, int]:
    """Poll /stats every 20 ms until the worker has processed ``records`` (accepted or
    dead-lettered): (how many it had then, its consumer lag then). A wait_for's 0.5 s would
    let a fast worker finish the backlog between two polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.log()
        try:
            seen = stats(worker)
        except OSError:  # busy: not yet
            seen = {"accepted": 0, "rejected": 0, "lag": 0}
        done = int(seen["accepted"] + seen["rejected"])
        if done >= records:
            return done, int(seen["lag"] or 0)
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {records:,} records")


def all_committed(bootstrap: str, names: dict[str, str]) -> bool:
    """The group's committed offsets at the input topic's end offsets (no lag left); a
    coordinator still loading after the broker's return is "not yet"."""
    try:
        offsets = committed_and_end(bootstrap, names["app_id"], [names["topic"]])
    except KafkaError:
        return False
    return all(committed == end for committed, end in offsets.values())


def test_row_7_rebalance(kafka, names, start_worker, tmp_path, matrix) -> None:
    row = matrix(7, "Rebalance, 2 workers", "worker 2 joins mid-stream; worker 1 stopped "
                 "(SIGTERM); a new worker joins; worker 2 SIGKILLed")  # fmt: skip
    log, _, oracle = scenario(tmp_path, 107, 30_000)
    one = start_worker("--clock", "event")
    replay_into_new_topics(kafka, names, log)
    time.sleep(2)
    two = start_worker("--clock", "event", wait=False)
    wait_for(lambda: active(one) and active(two), 120, "both to own partitions")
    owned = [
        {dict(ls)["partition"] for (n, ls) in w.metrics()
         if n == "ticketpulse_event_time_watermark_timestamp_seconds"}
        for w in (one, two)
    ]  # fmt: skip
    assert not owned[0] & owned[1], "no partition exported by both"
    one.stop(signal.SIGTERM)
    wait_for(lambda: active(two) == 4, 60, "worker 2 to own all")
    three = start_worker("--clock", "event", wait=False)
    wait_for(lambda: active(three) and active(two), 120, "a new balance")
    two.stop(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: active(three) == 4, 60, "the survivor to own all")
    takeover = time.monotonic() - killed
    wait_equal(oracle, three)
    row.result = "= oracle; no partition exported by two workers"
    row.diffs, row.recovery = "0", f"survivor owned every partition {takeover:.1f} s after SIGKILL"


def test_row_8_state_loss(kafka, names, start_worker, tmp_path, matrix) -> None:
    row = matrix(8, "State loss", "the data dir (RocksDB) deleted, worker restarted; "
                 "its changelogs compacted by the broker first (gaps, as after days)")  # fmt: skip
    log, _, oracle = scenario(tmp_path, 108, 20_000)
    lines = log.read_bytes().splitlines(keepends=True)
    halves = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    halves[0].write_bytes(b"".join(lines[:10_000]))
    halves[1].write_bytes(b"".join(lines[10_000:]))
    replay_into_new_topics(kafka, names, halves[0])
    data = tmp_path / "store"
    worker = start_worker("--clock", "event", data_dir=data)
    wait_for(lambda: stats(worker)["accepted"] + stats(worker)["rejected"] >= 10_000, 300,
             "the first half", worker)  # fmt: skip
    changelogs = compact_soon(kafka, names["app_id"])
    time.sleep(2)  # older than segment.ms: the next write rolls each segment
    assert main(["replay", str(halves[1]), "--bootstrap-servers", kafka.bootstrap,
                 "--topic", names["topic"], "--no-progress"]) == 0  # fmt: skip
    wait_equal(oracle, worker)
    gaps: dict[str, int] = {}
    wait_for(lambda: bool(gaps.update(compacted(kafka, changelogs)) or gaps), 180,
             "the broker to compact a changelog", worker)  # fmt: skip
    worker.stop(signal.SIGTERM)
    shutil.rmtree(data)
    again, took = ready_time(start_worker, "--clock", "event", data_dir=data)
    wait_equal(oracle, again)
    removed = ", ".join(f"{topic.removeprefix(names['app_id'] + '-')} {n:,}"
                        for topic, n in sorted(gaps.items()))  # fmt: skip
    row.result = f"rebuilt from compacted changelogs (records compacted away: {removed}) = oracle"
    row.diffs, row.recovery = "0", f"ready after {took:.1f} s"


def compact_soon(kafka, app_id: str) -> list[str]:
    """The app's changelog topics made to roll a segment each second and clean at once (what
    a broker does to them over days), incrementally: their other settings stay."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        topics = sorted(
            t for t in admin.list_topics() if t.startswith(f"{app_id}-") and t.endswith("changelog")
        )
        soon = {"segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01",
                "min.compaction.lag.ms": "0"}  # fmt: skip
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, configs=soon) for t in topics],
            incremental=True,
        )
    finally:
        admin.close()
    assert topics, "no changelog topic"
    return topics


def compacted(kafka, topics: list[str]) -> dict[str, int]:
    """Per changelog topic whose log has offset gaps, how many offsets the cleaner removed."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t)]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends, held = consumer.end_offsets(parts), dict.fromkeys(parts, 0)
        starts = consumer.beginning_offsets(parts)
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            assert time.monotonic() < deadline, "reading the changelogs took over 60 s"
            for tp, records in consumer.poll(timeout_ms=500).items():
                held[tp] += len(records)
    finally:
        consumer.close()
    removed: dict[str, int] = {}
    for tp in parts:
        gone = ends[tp] - starts[tp] - held[tp]
        if gone > 0:
            removed[tp.topic] = removed.get(tp.topic, 0) + gone
    return removed


def test_row_9_poison_pills(kafka, names, start_worker, tmp_path, matrix) -> None:
    row = matrix(9, "Poison pills", "5 % malformed records of every kind the simulator makes")
    log, kinds, oracle = scenario(tmp_path, 109, 10_000, malformed=0.05)
    replay_into_new_topics(kafka, names, log)
    worker = start_worker("--clock", "event")
    wait_equal(oracle, worker)
    bad = {
        k: n for k, n in kinds.items() if k not in ("event", "duplicate", "out_of_order", "late")
    }
    dead = consume_all(kafka.bootstrap, names["dlq"], sum(bad.values()))
    reasons = Counter(dict(r.headers)["ticketpulse.reason"].decode() for r in dead)
    rejected = {
        dict(ls)["reason"]: v
        for (n, ls), v in worker.metrics().items()
        if n == "ticketpulse_events_rejected_total" and v
    }
    assert sum(reasons.values()) == sum(bad.values()) == sum(rejected.values()), (reasons, bad)
    where = (
        "ticketpulse.source.topic",
        "ticketpulse.source.partition",
        "ticketpulse.source.offset",
    )
    assert all(all(h in dict(r.headers) for h in where) for r in dead)
    row.result = (f"{sum(bad.values())} dead letters with original bytes and reason "
                  f"({', '.join(f'{k} {n}' for k, n in sorted(reasons.items()))}); "
                  "rejected counters equal; processing went on")  # fmt: skip
    row.diffs = "0"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def event(ticket: str, queue: str, kind: str = "opened", **more) -> bytes:
    doc = {"event_id": f"{ticket}-{kind}", "ticket_id": ticket, "type": kind,
           "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "queue": queue, "channel": "chat", "customer_id": f"c-{ticket}", **more}  # fmt: skip
    return orjson.dumps(doc)


def test_row_10_oversized(kafka, names, start_worker, tmp_path, matrix) -> None:
    row = matrix(10, "Oversized messages", "a 0.9 MB record (over the 64 KB app limit) x5; "
                 "a 2 MB record")  # fmt: skip
    replay_into_new_topics(kafka, names, scenario(tmp_path, 110, 100)[0])
    worker = start_worker("--clock", "event")
    wait_for(lambda: stats(worker)["accepted"] >= 90, 60, "the small log")
    before = rss_kib(worker.process.pid)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, max_request_size=3_000_000)
    big = event("T-BIG", "billing", note="x" * 900_000)
    for i in range(5):
        producer.send(
            names["topic"], key=b"T-BIG", value=big.replace(b"T-BIG-opened", f"b{i}".encode())
        )
    producer.flush()
    refused = ""
    try:
        producer.send(names["topic"], key=b"T-2MB", value=b"x" * 2_000_000).get(30)
    except KafkaError as exc:
        refused = type(exc).__name__
    producer.close()
    wait_for(lambda: stats(worker)["rejected"] >= 5, 60, "the oversized records", worker)
    after = rss_kib(worker.process.pid)
    dead = [r for r in consume_all(kafka.bootstrap, names["dlq"], 5)
            if dict(r.headers)["ticketpulse.reason"] == b"too_large"]  # fmt: skip
    assert len(dead) == 5 and all(len(r.value) > 900_000 for r in dead) and refused
    row.result = (
        f"5 dead letters, reason too_large, original bytes kept; the 2 MB one refused "
        f"at produce ({refused}); worker RSS {before // 1024} -> {after // 1024} MiB"
    )
    row.diffs = "n/a (no figure involved)"


def test_row_11_label_cardinality(kafka, names, start_worker, tmp_path, matrix, promtool) -> None:
    row = matrix(11, "Label-cardinality attack", "100,000 distinct queue names (half of them "
                 "with a first response), 10 KB names, unicode, "
                 '`"}` and newline injection')  # fmt: skip
    hostile = ["ünïcødé-✓", 'evil"}\nticketpulse_fake{x="1', "back\\slash", "q" * 10_000]
    lines = [event(f"T{i}", f"queue-{i:06d}") for i in range(100_000)]
    # a first response for every other ticket: a maximum (FRT) per queue name too
    answer = {"author": "agent", "agent_id": "a1"}
    lines += [event(f"T{i}", f"queue-{i:06d}", "replied", **answer) for i in range(0, 100_000, 2)]
    lines += [event(f"H{i}", name) for i, name in enumerate(hostile)]
    log = tmp_path / "hostile.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    replay_into_new_topics(kafka, names, log)
    worker = start_worker("--clock", "event")
    wait_for(lambda: stats(worker)["accepted"] + stats(worker)["rejected"] >= len(lines), 300,
             "every hostile record", worker)  # fmt: skip
    wait_for(lambda: contacts_caught_up(stats(worker)), 300, "the customer side caught up", worker)
    took = []
    for _ in range(3):  # each rendered anew (past the spacing of renderings), none shared
        time.sleep(stats(worker)["metrics_rendering"]["spacing_s"] + 0.2)
        began = time.monotonic()
        text = fetch(worker.url, timeout=300)
        took.append(time.monotonic() - began)
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    queues = {m.group(1) for m in re.finditer(r'queue="((?:[^"\\]|\\.)*)"', text)}
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, check=False)  # fmt: skip
    per_label = 4 * 160  # windows x the most lines one queue x channel gets in a window
    assert len(queues) <= 51 and series <= 51 * per_label, (len(queues), series)
    assert not any(line.startswith("ticketpulse_fake") for line in text.splitlines())
    assert check.returncode in (0, 3), check.stderr  # 3: lint warnings only
    rss = rss_kib(worker.process.pid) // 1024
    row.result = (
        f"{len(queues)} queue labels (50 by name, the rest `other`), {series:,} series; "
        f"escaped (promtool parses it); scrape {min(took) * 1000:.0f}-"
        f"{max(took) * 1000:.0f} ms (3, caught up, each rendered anew); RSS {rss} MiB with "
        f"100,000 open tickets"
    )
    row.diffs = "n/a"


def test_row_12_clock_skew(kafka, names, start_worker, tmp_path, matrix) -> None:
    row = matrix(12, "Clock skew", "events dated +1 day and 1970 into a caught-up worker")
    log, _, oracle = scenario(tmp_path, 112, 6000)
    replay_into_new_topics(kafka, names, log)
    worker = start_worker("--clock", "event")
    wait_equal(oracle, worker)
    marks = {k: v for k, v in worker.metrics().items()
             if k[0] == "ticketpulse_event_time_watermark_timestamp_seconds"}  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86_400))
    for i in range(20):
        for ticket, at in ((f"F{i}", future), (f"O{i}", "1970-01-01T00:00:00Z")):
            producer.send(names["topic"], key=ticket.encode(),
                          value=event(ticket, "billing", occurred_at=at))  # fmt: skip
    producer.flush()
    producer.close()
    wait_for(lambda: stats(worker)["rejected"] >= 20, 60, "the future records", worker)
    time.sleep(3)
    live = worker.metrics()
    after = {k: v for k, v in live.items() if k in marks}
    future_dead = total(live, "ticketpulse_events_rejected_total", reason="future_timestamp")
    assert after == marks and future_dead == 20
    diff = differences(combined(worker), oracle)  # the 1970 records: counted late, not applied
    assert {name for name, _ in diff} <= {"ticketpulse_window_late_events"}, sorted(diff)[:5]
    late = "ticketpulse_window_late_events"
    assert total(live, late, window="24h") - total(oracle, late, window="24h") == 20
    row.result = (
        "20 future ones dead-lettered (future_timestamp), watermarks unchanged; "
        "1970 ones counted late, never applied"
    )
    row.diffs = "0 (windows unchanged but the late count)"
