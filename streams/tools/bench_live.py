"""The bench's measurements of a live worker: freshness, recovery, a scrape storm.

- **Freshness**: records produced at a steady rate (70 % of the worker's measured maximum),
  each one's produce time against the moment the worker's ``/offsets`` first shows its
  partition past it: ``applied_offsets`` (the batch's step 1: its figures are on /metrics
  for any scrape from then on) and ``next_offsets`` (step 6: its writes acknowledged, the
  batch done), polled every 20 ms over one kept-alive connection (``OffsetsPoller``: each
  poll costs the worker's core about 0.17 ms). The load is made before the clock starts and
  sent in batches per partition every 5 ms (``produce_paced``).
- **Recovery**: a new worker of the same app with an empty data dir, every table rebuilt
  from the changelogs: seconds from its start to ``/ready`` answering 200.
- **Scrape storm**: ``clients`` threads scraping /metrics back to back.
"""

from __future__ import annotations

import asyncio
import bisect
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from streams.ingest.schema import parse_time
from streams.tools import pinning
from streams.tools.broker import launcher
from streams.tools.simulator import SimParams, generate

# freshness polls this often: an answer of /offsets costs the idle worker's core ~0.17 ms
# kept alive, /stats' 0.23-0.28 ms (its counters gathered, its commit state sorted: more with
# the acks a live worker holds), /healthz's 0.16-0.18 (aiohttp's own share; scratch,
# 2,000 polls each, 2026-12-07); on 2026-12-06, on a slower machine, /stats' cost 0.65 ms
# kept alive and 0.95 ms with a connection each, so the 10 ms and new connections used until
# then took ~8 % of the core of the worker measured
POLL_S = 0.02
TICK_S = 0.005  # the load's batches go out this often
Sent = dict[tuple[int, int], float]  # (partition, offset) -> produce time (monotonic)
Samples = list[tuple[float, dict[int, int]]]  # (poll time, the mark of each partition)


def start_worker(
    bootstrap: str, topic: str, app_id: str, data_dir: Path, store: str, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """A ``ticketpulse worker`` process (clock event, warnings only) and its base URL."""
    port = launcher.free_port()
    args = ["--bootstrap-servers", bootstrap, "--topic", topic, "--app-id", app_id]
    args += ["--metrics-port", str(port), "--data-dir", str(data_dir), "--store", store]
    args += ["--clock", "event", "--log-level", "warning"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=pinning.measured_preexec,
        )
    return proc, f"http://127.0.0.1:{port}"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return json.load(response)


class OffsetsPoller:
    """The worker's ``next_offsets`` and ``applied_offsets`` (``/offsets``), read over one
    connection kept alive: a new connection per poll cost the worker's core 0.3 ms more each
    time (its accept, transport and close), a load on the very process whose freshness is
    measured."""

    def __init__(self, base: str) -> None:
        url = urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)

    def read(self) -> tuple[dict[int, int], dict[int, int]]:
        """Per partition, one past the last record done and one past the last applied (once
        more, on a new connection, when the worker closed the old one)."""
        try:
            return self._read()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()  # the next request opens a new one
            return self._read()

    def _read(self) -> tuple[dict[int, int], dict[int, int]]:
        self.conn.request("GET", "/offsets")
        body = json.loads(self.conn.getresponse().read())
        return _by_partition(body["next_offsets"]), _by_partition(body["applied_offsets"])

    def __enter__(self) -> OffsetsPoller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _by_partition(marks: dict[str, int]) -> dict[int, int]:
    """An /offsets map keyed by partition (JSON keys are text) with int keys."""
    return {int(p): n for p, n in marks.items()}


class ScrapeStorm:
    """``clients`` threads scraping /metrics back to back (issue 15's 20-client storm)."""

    def __init__(self, base: str, clients: int) -> None:
        self.base, self.answers = base, 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _client(self) -> None:
        while not self.stopping.is_set():
            try:
                with urllib.request.urlopen(f"{self.base}/metrics", timeout=60) as response:  # noqa: S310
                    response.read()
                self.answers += 1
            except OSError:
                time.sleep(0.1)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used, from ``/proc`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def freshness(
    bootstrap: str, topic: str, base: str, rate: float, seconds: float, start: float, pid: int
) -> dict[str, float]:
    """p50 and p99 of produce -> on /metrics (applied), and of produce -> done, at ``rate``
    records/s for ``seconds``; the simulated events begin at ``start`` (just after the log
    already consumed). With the share of its core the worker (``pid``) was busy meanwhile
    (live batches are smaller than a catch-up's, so 70 % of the caught-up rate is more than
    70 % of the core), its CPU and its batches per input record, and the simulated time its
    events end at (where a later load's may begin)."""
    sent: Sent = {}
    applied: Samples = []
    finished: Samples = []  # done
    stop = threading.Event()

    def poll() -> None:
        with OffsetsPoller(base) as offsets:
            while not stop.is_set():
                when = time.monotonic()  # as the request goes out
                done_marks, applied_marks = offsets.read()
                applied.append((when, applied_marks))
                finished.append((when, done_marks))
                time.sleep(POLL_S)

    params = SimParams(seed=99, rate=20, max_events=int(rate * seconds), start=start)
    records = [(r.key, r.value) for r in generate(params)]  # made before the clock starts
    # in emission order, which is event time here (no faults asked): where a later load begins
    ends_at = parse_time(orjson.loads(records[-1][1])["occurred_at"])
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    counts_from = _work_counts(base)
    busy_from, began = cpu_seconds(pid), time.monotonic()
    sent.update(asyncio.run(produce_paced(bootstrap, topic, records, rate)))
    _wait_until_seen(sent, finished)
    cpu = cpu_seconds(pid) - busy_from
    busy = cpu / (time.monotonic() - began)
    stop.set()
    poller.join()
    done, batches, writes = (b - a for a, b in zip(counts_from, _work_counts(base), strict=True))
    return {
        **latency_figures(sent, applied, finished, rate),
        "fresh_busy": busy,
        "fresh_batch_records": done / max(batches, 1),
        "fresh_writes_per_record": writes / max(done, 1),
        # per input record, its contacts' work included (``bench.fit_batch_cost`` fits these)
        "fresh_cpu_us": cpu / max(len(records), 1) * 1e6,
        "fresh_batches_per_record": batches / max(len(records), 1),
        "fresh_ends_at": ends_at,
    }


def _work_counts(base: str) -> tuple[int, int, int]:
    """(records processed by both agents, batches, table writes) so far, from ``/stats``:
    what the bench's catch-up figures count, for the live load to compare with."""
    stats = get_json(f"{base}/stats")
    done = stats["accepted"] + stats["rejected"] + stats["contacts_received"]
    return done, stats["batches"], stats["table_writes"]


async def produce_paced(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]], rate: float
) -> Sent:
    """Produce ``records`` at ``rate`` per second: every ``TICK_S``, the records due go out
    as one batch per partition (aiokafka's batch API, as the worker's table writer sends).
    The load shares the machine with the worker: kafka-python's send, a future and a
    callback per record took most of a core at 8,600 records/s, which the worker lacked."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, max_batch_size=2**20)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        choose = DefaultPartitioner()  # murmur2 of the key, as replay's producer picks
        placed = [(choose(key, partitions, partitions), key, value) for key, value in records]
        batches: list[tuple[asyncio.Future[Any], int, int, float]] = []
        t0, done = time.monotonic(), 0
        while done < len(placed):
            due = min(len(placed), int((time.monotonic() - t0) * rate) + 1)
            at = time.monotonic()
            for partition, builder in _builders(producer, placed[done:due]).items():
                future = await producer.send_batch(builder, topic, partition=partition)
                batches.append((future, partition, builder.record_count(), at))
            done = due
            await asyncio.sleep(TICK_S)
        sent: Sent = {}
        for future, partition, count, at in batches:
            base = (await future).offset
            sent.update({(partition, base + k): at for k in range(count)})
        return sent
    finally:
        await producer.stop()


def _builders(
    producer: AIOKafkaProducer, due: list[tuple[int, bytes | None, bytes]]
) -> dict[int, Any]:
    builders: dict[int, Any] = {}
    for partition, key, value in due:
        builder = builders.get(partition) or builders.setdefault(partition, producer.create_batch())
        if builder.append(key=key, value=value, timestamp=None) is None:
            msg = "a tick's records overflow one batch: raise max_batch_size"
            raise RuntimeError(msg)
    return builders


def _wait_until_seen(sent: Sent, samples: Samples, timeout: float = 120) -> None:
    newest: dict[int, int] = {}
    for p, offset in sent:
        newest[p] = max(newest.get(p, -1), offset)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if samples and all(samples[-1][1].get(p, 0) > o for p, o in newest.items()):
            return
        time.sleep(0.1)


def seen_after(sent: Sent, samples: Samples) -> list[float]:
    """Each record's time from its produce to the first poll at or after it that shows its
    partition past it, sorted. Per partition the records go in offset order, which is their
    produce order, so the poll that shows a record is never before the one that showed the
    record before it: one pass over the polls per partition, not one per record."""
    times = [when for when, _ in samples]
    latencies: list[float] = []
    by_partition: dict[int, list[tuple[int, float]]] = {}
    for (partition, offset), at in sent.items():
        by_partition.setdefault(partition, []).append((offset, at))
    for partition, records in by_partition.items():
        shown = [offsets.get(partition, 0) for _, offsets in samples]
        j = 0
        for offset, at in sorted(records):
            j = max(j, bisect.bisect_left(times, at))
            while j < len(shown) and shown[j] <= offset:
                j += 1
            if j == len(shown):
                break  # never seen, nor any later record of the partition
            latencies.append(times[j] - at)
    latencies.sort()
    return latencies


def latency_figures(sent: Sent, applied: Samples, done: Samples, rate: float) -> dict[str, float]:
    """p50 and p99 to on /metrics (``fresh_``) and to done (``fresh_done_``), in seconds."""
    figures: dict[str, float] = {"fresh_rate": rate}
    for prefix, samples in (("fresh", applied), ("fresh_done", done)):
        latencies = seen_after(sent, samples)
        figures[f"{prefix}_p50"] = _nearest_rank(latencies, 0.5)
        figures[f"{prefix}_p99"] = _nearest_rank(latencies, 0.99)
        figures[f"{prefix}_records"] = len(latencies)
    return figures


def _nearest_rank(ordered: list[float], q: float) -> float:
    """The value at rank ``q`` of sorted values (nan for none)."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def recovery(bootstrap: str, topic: str, app_id: str, work: Path, store: str) -> float:
    """Seconds from a new worker's start (empty data dir) to /ready answering 200."""
    data = work / f"recovered-{time.time_ns()}"
    proc, base = start_worker(bootstrap, topic, app_id, data, store, work / "recovery.log")
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 600:
            if proc.poll() is not None:
                msg = f"the recovering worker exited with {proc.returncode}"
                raise RuntimeError(msg)
            try:
                with urllib.request.urlopen(f"{base}/ready", timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return time.monotonic() - t0
            except (urllib.error.HTTPError, OSError):
                pass
            time.sleep(0.1)
        msg = "the recovering worker was not ready in 10 minutes"
        raise RuntimeError(msg)
    finally:
        proc.terminate()
        proc.wait(60)
