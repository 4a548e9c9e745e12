"""Live figures from workers on the real broker equal the SQL oracle exactly.

A seeded simulated log (duplicates, out-of-order within lateness, late beyond it,
malformed records) is replayed into Kafka; workers run with ``--clock event`` so
windows end at each partition's watermark and the figures are deterministic.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from streams.cli import main
from streams.config import DEFAULT_WINDOWS, load_settings
from streams.tools.produce import key_of, read_jsonl
from tests.conftest import wait_for
from tests.integration.offsets import wait_committed_to_end
from tests.oracle import Metrics, differences, expected

pytestmark = pytest.mark.integration
PARTITIONS = 4
ENVIRONMENT = {
    # 14.4 and 57.6 minutes: final ACR figures occur in the log
    "TICKETPULSE_RECONTACT_DAYS": "[0.01, 0.04]",
    # per-agent figures for a few agents by name, the rest as "other"
    "TICKETPULSE_PER_AGENT": "true",
    "TICKETPULSE_AGENT_ALLOWLIST": '["A-sales-1", "A-support-1", "A-support-2", "A-billing-1"]',
}


@pytest.fixture(scope="module", autouse=True)
def environment():
    """Workers (started with this environment) and the oracle share these settings."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in ENVIRONMENT.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Metrics]:
    """50,000+ records with every kind of fault, and what the oracle says of them."""
    log = tmp_path_factory.mktemp("traffic") / "traffic.jsonl"
    assert (
        main(
            [
                "simulate",
                "--seed",
                "42",
                "--rate",
                "8",
                "--events",
                "52000",
                "--output",
                str(log),
                "--duplicates",
                "0.03",
                "--out-of-order",
                "0.05",
                "--late",
                "0.01",
                "--malformed",
                "0.01",
                "--lateness",
                "600",
                "--recontact-mean",
                "1800",
                "--reopen-mean",
                "1800",
            ]
        )
        == 0
    )
    records = [(key_of(line), line) for line in read_jsonl(log)]
    assert len(records) >= 50_000
    settings = load_settings()
    oracle = expected(
        records,
        partitions=PARTITIONS,
        policy=settings.policy(),
        now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
        agent_allowlist=frozenset(settings.agent_allowlist or ()),
    )
    covered = {name for (name, _), value in oracle.items() if value}
    assert {
        "ticketpulse_window_acr_recontacted",
        "ticketpulse_window_acr_final_active_resolutions",
        "ticketpulse_window_repeat_contacts",
        "ticketpulse_window_first_response_max_seconds",
        "ticketpulse_window_agent_first_responses",
        "ticketpulse_window_agent_acr_recontacted",
    } <= covered, "the log must exercise recontacts, final ACR and repeat contacts"
    return log, oracle


def replay(
    kafka, names, log: Path, start: int = 0, stop: int | None = None, tmp: Path | None = None
) -> None:
    source = log
    if start or stop is not None:
        assert tmp is not None
        lines = log.read_bytes().splitlines(keepends=True)[start:stop]
        source = tmp / f"part-{start}.jsonl"
        source.write_bytes(b"".join(lines))
    assert (
        main(
            [
                "replay",
                str(source),
                "--bootstrap-servers",
                kafka.bootstrap,
                "--topic",
                names["topic"],
                "--no-progress",
            ]
        )
        == 0
    )


def simulated(log: Path, seed: int, rate: float, events: int) -> tuple[list, Metrics]:
    """A simulated log written to ``log``: its records and the oracle's figures of them
    (4 partitions, default settings, the standard windows)."""
    args = ["simulate", "--seed", str(seed), "--rate", str(rate), "--events", str(events)]
    assert main([*args, "--output", str(log)]) == 0
    records = [(key_of(line), line) for line in read_jsonl(log)]
    oracle = expected(
        records, partitions=4, policy=load_settings().policy(), now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
    )  # fmt: skip
    return records, oracle


def replay_into_new_topics(kafka, names, log: Path, partitions: int = 4) -> None:
    """The test's topics created with ``partitions``, then the whole log produced."""
    from streams.runtime.topics import ensure_topics

    ensure_topics(
        load_settings(
            bootstrap_servers=kafka.bootstrap,
            app_id=names["app_id"],
            topic=names["topic"],
            dlq_topic=names["dlq"],
            partitions=partitions,
        )
    )
    replay(kafka, names, log)


MAX_GAUGES = {  # aggregated with max without (instance)
    "ticketpulse_oldest_waiting_contact_age_seconds",
    "ticketpulse_oldest_waiting_contact_target_age_seconds",
    "ticketpulse_window_first_response_max_seconds",
}


def combined(*workers) -> Metrics:
    """What PromQL's ``sum without (instance)`` (``max`` for the oldest wait) gives."""
    total: Metrics = {}
    for w in workers:
        for key, value in w.metrics().items():
            if key[0] in MAX_GAUGES:
                total[key] = max(total.get(key, 0.0), value)
            else:
                total[key] = total.get(key, 0.0) + value
    return total


def wait_equal(oracle: Metrics, *workers, timeout: float = 420) -> None:
    """Wait until the workers' summed figures equal the oracle. The timeout stays below
    pytest-timeout's 600 s, so a wait that never ends (the others having taken their usual
    seconds) reports the differences and each worker's /stats."""
    last: dict = {}

    def agree() -> bool:
        nonlocal last
        try:
            last = differences(combined(*workers), oracle)
        except OSError:
            return False
        return not last

    try:
        wait_for(agree, timeout, "live figures to equal the oracle")
    except pytest.fail.Exception:
        per_metric: dict[str, int] = {}
        for name, _ in last:
            per_metric[name] = per_metric.get(name, 0) + 1
        states = "\n".join(f"worker {i}: {w.diagnosis()}\n{w.log()}" for i, w in enumerate(workers))
        pytest.fail(
            f"{len(last)} differences, per metric {per_metric}, e.g. "
            f"{sorted(last.items())[:6]}\n{states}"
        )


def test_one_worker_equals_oracle(kafka, names, start_worker, traffic) -> None:
    """The backlog is in Kafka before the worker starts (its first write comes at once)."""
    from streams.runtime.topics import ensure_topics

    log, oracle = traffic
    ensure_topics(
        load_settings(
            bootstrap_servers=kafka.bootstrap,
            topic=names["topic"],
            dlq_topic=names["dlq"],
            partitions=PARTITIONS,
        )
    )
    replay(kafka, names, log)
    worker = start_worker(
        "--clock", "event", "--store-write-buffer-mb", "4", "--store-memory-mb", "64"
    )
    wait_equal(oracle, worker)
    assert sum(1 for v in oracle.values() if v) > 500
    # the store's memory settings reach every RocksDB database, and the gauge shows it
    assert worker.data_dir is not None
    options = list(worker.data_dir.glob("**/*.db/OPTIONS-*"))
    assert len({o.parent for o in options}) == 6 * PARTITIONS, options
    for path in options:
        text = path.read_text()
        assert "write_buffer_size=4194304" in text and "max_write_buffer_number=2" in text
        assert "cache_index_and_filter_blocks=true" in text  # the shared budget's options
        assert "arena_block_size=65536" in text  # memtables grow in small blocks
    memory = worker.metrics()
    held = {kind: memory[("ticketpulse_store_memory_bytes", (("kind", kind),))] for kind in KINDS}
    assert held["memtables"] > 0
    assert held["memtables"] + held["block_cache"] <= 64 * 1024 * 1024
    # closed, quiet tickets were left to RocksDB, and late events read them back, exactly
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/stats", timeout=5) as r:
        stats = orjson.loads(r.read())
    tickets = stats["tickets"]
    assert tickets["shelved"] > 1000 and tickets["read_back"] > 100, tickets
    # /offsets: the same two maps of input offsets alone, as the bench's freshness polls them
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/offsets", timeout=5) as r:
        offsets = orjson.loads(r.read())
    assert offsets == {key: stats[key] for key in ("next_offsets", "applied_offsets")}
    assert len(offsets["next_offsets"]) == PARTITIONS, offsets
    # every field of the live /stats is documented
    missing = _undocumented_stats(stats)
    assert not missing, f"/stats fields missing from {METRICS_DOC}, {STATS_HEADING!r}: {missing}"


KINDS = ("memtables", "block_cache", "table_readers")
METRICS_DOC = Path(__file__).parents[2] / "docs" / "metrics.md"
STATS_HEADING = "## /stats: the worker's progress counters"
BY_PARTITION = ("commit", "next_offsets", "applied_offsets")  # keyed by partition, not by field


def _undocumented_stats(stats: dict) -> list[str]:
    """The fields of a live /stats answer that no row of its section of docs/metrics.md names
    in backticks in its first column: `key` at the top level, `parent.key` in a nested
    object, and a commit entry's as `commit.<topic>:<partition>.key`."""
    text = METRICS_DOC.read_text()
    _, found, section = text.partition(f"\n{STATS_HEADING}\n")
    assert found, f"{METRICS_DOC} has no section {STATS_HEADING!r}"
    section = section.split("\n## ", 1)[0]  # up to the next section, if any
    documented = set()
    for line in section.splitlines():
        if line.startswith("| `"):  # a table row: | field | meaning |
            documented.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    names = list(stats)
    for parent, value in stats.items():
        if isinstance(value, dict) and parent not in BY_PARTITION:
            names += [f"{parent}.{key}" for key in value]
    assert stats["commit"], stats  # a partition's entry, to check its keys
    entry = next(iter(stats["commit"].values()))
    names += [f"commit.<topic>:<partition>.{key}" for key in entry]
    return [name for name in names if name not in documented]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_partway_equals_oracle(kafka, names, start_worker, traffic, tmp_path, sig) -> None:
    log, oracle = traffic
    data = tmp_path / "store"
    first = start_worker("--clock", "event", data_dir=data)
    replay(kafka, names, log, 0, 30_000, tmp_path)

    def accepted(w) -> float:
        return w.counter_sum("ticketpulse_events_accepted_total")

    wait_for(lambda: accepted(first) > 12_000, 120, "the first worker to be partway", first)
    first.stop(sig)
    replay(kafka, names, log, 30_000, None, tmp_path)
    second = start_worker("--clock", "event", data_dir=data)
    wait_equal(oracle, second)


def test_a_worker_with_an_empty_data_dir_restores_its_tables_in_bulk(
    kafka, names, start_worker, traffic, tmp_path
) -> None:
    """A new worker (a lost disk, a new pod) reads the changelogs in bulk into its stores
    before Faust's recovery (streams.runtime.restore), and its figures equal the oracle."""
    log, oracle = traffic
    first = start_worker("--clock", "event", data_dir=tmp_path / "first")
    replay(kafka, names, log)
    wait_equal(oracle, first)
    first.stop(signal.SIGTERM)
    second = start_worker("--clock", "event", data_dir=tmp_path / "empty", wait=False)
    every = list(range(PARTITIONS))
    built = {"tickets": every, "customers": every, "repeats": every}
    # no scrape yet: the worker builds its window totals itself once the tables are back
    wait_for(lambda: _window_totals(second) == built, 180, "the totals to be built", second)
    wait_equal(oracle, second)  # read from those totals, kept up to date since
    stats = f"http://127.0.0.1:{second.port}/stats"
    with urllib.request.urlopen(stats, timeout=10) as response:
        restored = orjson.loads(response.read())["restored_in_bulk"]
    assert restored > 1000, "the tables came from the bulk read, not Faust's record by record"


def _window_totals(worker) -> dict | None:
    """The partitions whose window totals the worker has built, from /stats."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/stats", timeout=5) as r:
            return orjson.loads(r.read())["window_totals"]
    except OSError:
        return None  # not listening yet


FAILING_WORKER = Path(__file__).with_name("failing_write_worker.py")


def test_a_failed_write_stops_the_worker_and_a_restart_equals_oracle(
    kafka, names, start_worker, traffic, tmp_path
) -> None:
    """Faust would restart the agent and go on with later records; when the failed ones came
    again, every key that had moved on would skip them. The worker must stop instead."""
    log, oracle = traffic
    data = tmp_path / "store"
    topics = ["topics", "--bootstrap-servers", kafka.bootstrap, "--topic", names["topic"]]
    assert main([*topics, "--dlq-topic", names["dlq"], "--partitions", "4"]) == 0
    replay(kafka, names, log)  # a backlog: the write fails in the middle of it
    first = start_worker(
        "--clock",
        "event",
        data_dir=data,
        wait=False,
        program=(str(FAILING_WORKER),),
        env={"FAIL_WRITE_AT": "12"},
    )
    try:
        code = first.process.wait(120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker went on after a failed write:\n{first.log()}")
    assert code != 0, first.log()
    assert "the broker refused a write (injected)" in first.log_path.read_text(errors="replace")
    second = start_worker("--clock", "event", data_dir=data)
    wait_equal(oracle, second)


def test_two_workers_sum_to_oracle_without_overlap(kafka, names, start_worker, traffic) -> None:
    log, oracle = traffic
    a = start_worker("--clock", "event")
    b = start_worker("--clock", "event", wait=False)

    def balanced() -> bool:
        try:
            counts = [
                w.metrics().get(("ticketpulse_partitions_assigned", (("role", "active"),)), 0)
                for w in (a, b)
            ]
        except OSError:
            return False
        return all(counts) and sum(counts) == PARTITIONS

    # Replay while the second worker joins: the group rebalances while the first works through
    # the backlog, with records fetched and batches in flight (records dropped then, on a
    # partition nothing had committed yet, were once never read again:
    # streams/runtime/faust_internals.py)
    replay(kafka, names, log)
    wait_for(balanced, 120, "both workers to own partitions")
    wait_equal(oracle, a, b)
    owned = [
        {
            dict(labels)["partition"]
            for (n, labels) in w.metrics()
            if n == "ticketpulse_event_time_watermark_timestamp_seconds"
        }
        for w in (a, b)
    ]
    assert owned[0] and owned[1]
    assert not owned[0] & owned[1], "no partition may be exported by both workers"


def assert_totals_equal_a_rebuild(worker) -> None:
    """``/selfcheck``: the window totals the worker keeps up to date equal the same built
    afresh from its tables."""
    check = orjson.loads(worker.page("/selfcheck", timeout=60))
    assert check["equal"] and check["window_samples"] > 0, check


def test_a_worker_handed_caught_up_partitions_exports_them_before_reading_a_record(
    kafka, names, start_worker, traffic
) -> None:
    """The second worker joins once the first has read and committed everything: it reads
    no record, its figures come from the recovered tables alone (``--clock event``: its
    windows end at the recovered watermarks), and each partition it now owns has its
    watermark (from its table) and its lag (from the committed offset) exported: no hole
    on a dashboard, nor a silent lag alert, after a handover on a quiet topic."""

    log, oracle = traffic
    a = start_worker("--clock", "event")
    replay(kafka, names, log)
    wait_equal(oracle, a)
    topics = [names["topic"], f"{names['app_id']}-contacts"]
    wait_committed_to_end(kafka.bootstrap, names["app_id"], topics, a)  # nothing to read again
    assert_totals_equal_a_rebuild(a)  # kept up to date by every batch of the replay
    b = start_worker("--clock", "event")
    active = ("ticketpulse_partitions_assigned", (("role", "active"),))
    watermark = "ticketpulse_event_time_watermark_timestamp_seconds"

    def exported() -> list[set[str]] | None:
        try:
            samples = [w.metrics() for w in (a, b)]
        except OSError:
            return None
        if not all(m.get(active) for m in samples):
            return None  # not both assigned yet
        return [{dict(labels)["partition"] for (n, labels) in m if n == watermark} for m in samples]

    wait_for(lambda: exported() is not None, 120, "both workers to own partitions")
    wait_equal(oracle, a, b)
    owned = exported()
    assert owned is not None and all(owned), owned
    assert not owned[0] & owned[1], "no partition may be exported by both workers"
    assert owned[0] | owned[1] == {str(p) for p in range(PARTITIONS)}
    assert b.counter_sum("ticketpulse_events_accepted_total") == 0, "b read no record"
    lag = "ticketpulse_consumer_lag_records"  # known once a fetch has told the high-water mark

    def lags() -> list[dict[str, float]] | None:
        try:
            samples = [w.metrics() for w in (a, b)]
        except OSError:
            return None
        return [
            {dict(labels)["partition"]: v for (n, labels), v in m.items() if n == lag}
            for m in samples
        ]

    def every_lag() -> bool:
        seen = lags()
        return seen is not None and [set(m) for m in seen] == owned

    wait_for(every_lag, 60, "the lag of every owned partition")
    seen = lags()
    assert seen is not None and all(v == 0 for m in seen for v in m.values()), seen
    for worker in (a, b):
        assert_totals_equal_a_rebuild(worker)


def test_now_gauges_move_with_the_wall_clock(kafka, names, start_worker) -> None:
    from datetime import UTC, datetime

    from kafka import KafkaProducer

    worker = start_worker("--clock", "wall")
    opened = datetime.fromtimestamp(time.time() - 30, UTC).isoformat()
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for i in range(3):
        doc = (
            f'{{"event_id":"now-{i}","type":"opened","ticket_id":"N-{i}","occurred_at":"{opened}",'
            f'"queue":"hotline","channel":"phone"}}'
        )
        producer.send(names["topic"], key=f"N-{i}".encode(), value=doc.encode())
    producer.flush()
    producer.close()
    labels = (("channel", "phone"), ("queue", "hotline"))
    age = ("ticketpulse_oldest_waiting_contact_age_seconds", labels)
    wait_for(
        lambda: worker.metrics().get(("ticketpulse_contacts_waiting", labels)) == 3,
        60,
        "three waiting contacts",
        worker,
    )
    m1 = worker.metrics()
    assert m1[("ticketpulse_first_response_breaches", labels)] == 3  # 30 s > phone target 20 s
    assert m1[("ticketpulse_contacts_open", labels)] == 3
    time.sleep(3)
    m2 = worker.metrics()
    assert m2[age] - m1[age] >= 2.5, "the oldest wait must grow while no event arrives"
    assert m2[("ticketpulse_contacts_waiting", labels)] == 3


def test_one_partition_customer_windows_end_where_the_input_watermark_is(
    kafka, names, start_worker, traffic, tmp_path
) -> None:
    """clock=event: the customer side's windows once ended at the newest contact time, which
    lags the input's watermark, so ACR figures differed by 1-2 in 17 series from the oracle
    and from ``report`` (issue 12). Every figure of the partition now ends at one watermark."""
    from streams.runtime.topics import ensure_topics

    log, _ = traffic
    settings = load_settings(
        bootstrap_servers=kafka.bootstrap,
        app_id=names["app_id"],
        topic=names["topic"],
        dlq_topic=names["dlq"],
        partitions=1,
    )
    ensure_topics(settings)
    replay(kafka, names, log)
    records = [(key_of(line), line) for line in read_jsonl(log)]
    oracle = expected(
        records,
        partitions=1,
        policy=load_settings().policy(),
        now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
        agent_allowlist=frozenset(load_settings().agent_allowlist or ()),
    )
    acr = {k: v for k, v in oracle.items() if "_acr_" in k[0] or "repeat" in k[0]}
    assert sum(1 for v in acr.values() if v) > 50, "the log must have recontacts"
    worker = start_worker("--clock", "event", "--partitions", "1")
    wait_equal(oracle, worker)
