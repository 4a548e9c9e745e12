"""Shared fixtures: one real Kafka broker per test session, workers as real processes."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.runtime import processes
from streams.tools.broker import launcher


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.Broker]:
    """A real single-node KRaft broker from the project's launcher (never skipped, never mocked)."""
    broker = launcher.start(tmp_path_factory.mktemp("kafka"))
    print(
        f"\n[kafka] real Apache Kafka {launcher.DEFAULT_KAFKA_VERSION} broker on {broker.bootstrap}"
    )
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def names() -> dict[str, str]:
    """Unique topic and group names, so tests sharing the broker never see each other's data."""
    tag = uuid.uuid4().hex[:8]
    return {"topic": f"events-{tag}", "dlq": f"dlq-{tag}", "app_id": f"tp-{tag}"}


def fetch(
    url: str, context: ssl.SSLContext | None = None, auth: str | None = None, timeout: float = 5
) -> str:
    """A page's text; ``context`` and ``auth`` (an Authorization header) for a worker
    serving TLS and basic auth (``--web-config-file``)."""
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return str(response.read().decode())


def scrape(
    url: str, context: ssl.SSLContext | None = None, auth: str | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    text = fetch(url, context, auth)
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    tls: ssl.SSLContext | None = None  # set for a worker serving https
    auth: str | None = None  # its Authorization header, when it asks for basic auth
    data_dir: Path | None = None  # its --data-dir (the RocksDB databases are under it)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/metrics"

    def raw_metrics(self) -> str:
        return fetch(self.url, self.tls, self.auth)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return scrape(self.url, self.tls, self.auth)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def page(self, path: str, timeout: float = 5) -> str:
        """Another page of the worker (``/stats``, ``/selfcheck``) as text."""
        return fetch(self.url.removesuffix("/metrics") + path, self.tls, self.auth, timeout)

    def diagnosis(self) -> str:
        """/stats and /selfcheck (do the live totals equal a rebuild from the tables?), or
        why they could not be read: for a failing test's message."""
        found = []
        for path in ("/stats", "/selfcheck"):
            try:
                found.append(f"{path} {self.page(path, timeout=15)}")
            except OSError as exc:
                found.append(f"{path} unreadable: {exc!r}")
        return "\n".join(found)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        return processes.stop(self.process, timeout, sig)

    def counter_sum(self, *names: str) -> float:
        """The sum of every sample of these metrics (e.g. all accepted + rejected records)."""
        return sum(v for (name, _), v in self.metrics().items() if name in names)


@pytest.fixture
def start_worker(tmp_path: Path, kafka: launcher.Broker, names: dict[str, str]) -> Iterator:
    """Start `ticketpulse worker` processes against the session broker; all stopped at teardown."""
    started: list[WorkerProcess] = []

    def _start(
        *extra: str,
        data_dir: Path | None = None,
        wait: bool = True,
        program: tuple[str, ...] = ("-m", "streams.cli"),
        env: dict[str, str] | None = None,
        port: int | None = None,
        bootstrap: str | None = None,
        tls: ssl.SSLContext | None = None,
        auth: str | None = None,
    ) -> WorkerProcess:
        port = port or launcher.free_port()
        data = data_dir or tmp_path / f"worker-{len(started)}"
        log_path = tmp_path / f"worker-{len(started)}-{port}.log"
        cmd = [
            sys.executable,
            *program,
            "worker",
            "--bootstrap-servers",
            bootstrap or kafka.bootstrap,
            "--app-id",
            names["app_id"],
            "--topic",
            names["topic"],
            "--dlq-topic",
            names["dlq"],
            "--partitions",
            "4",
            "--metrics-port",
            str(port),
            "--data-dir",
            str(data),
            *extra,
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                preexec_fn=processes.die_with_parent,  # never outlive a killed test run
            )
        worker = WorkerProcess(proc, port, log_path, tls, auth, data)
        started.append(worker)
        if wait:
            wait_for(
                lambda: _active(worker) > 0, 120, f"worker on :{port} owns no partition", worker
            )
        return worker

    yield _start
    for worker in started:
        worker.stop()


def _active(worker: WorkerProcess) -> float:
    try:
        return worker.metrics().get(("ticketpulse_partitions_assigned", (("role", "active"),)), 0.0)
    except OSError:
        return 0.0


def wait_for(condition, timeout: float, what: str, worker: WorkerProcess | None = None) -> None:
    """Poll ``condition`` until it holds. A page that does not answer in time (a scrape
    queued behind a large batch on a loaded machine) is "not yet", not a failure: the wait
    fails at its own deadline, with the last such error."""
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while time.monotonic() < deadline:
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(f"worker exited with {worker.process.returncode}:\n{worker.log()}")
        try:
            if condition():
                return
        except TimeoutError as exc:
            last_error = exc
        time.sleep(0.5)
    detail = f"\n{worker.log()}" if worker is not None else ""
    error = f" (last: {last_error!r})" if last_error is not None else ""
    pytest.fail(f"timed out after {timeout:.0f}s: {what}{error}{detail}")


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, (
        "promtool missing: `make test` installs Debian's prometheus package (make system-deps)"
    )
    return path


_INTEGRATION: dict[str, str] = {}  # node id -> its outcome ("failed" at any phase wins)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "integration" not in report.keywords:
        return
    if report.failed:  # at any phase: a setup or teardown error counts as failed
        _INTEGRATION[report.nodeid] = "failed"
    elif report.skipped or report.when == "call":
        _INTEGRATION.setdefault(report.nodeid, report.outcome)


def pytest_terminal_summary(terminalreporter) -> None:
    """One line on what ran against the broker; none in a run without integration tests
    (the unit run), where "0 passed" would read as if they had been left out."""
    if not _INTEGRATION:
        return
    done = Counter(_INTEGRATION.values())
    where = (
        f"real Apache Kafka {launcher.DEFAULT_KAFKA_VERSION} (KRaft) broker started by the tests"
    )
    terminalreporter.write_line(
        f"integration tests against a {where}: {done['passed']} passed, {done['failed']} failed, "
        f"{done['skipped']} skipped"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """CI never skips the integration tests: a skipped one fails the run."""
    if "skipped" in _INTEGRATION.values():
        session.exitstatus = 1
