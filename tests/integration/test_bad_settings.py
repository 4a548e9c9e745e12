"""Bad settings and unreachable parts, end to end: the real ``ticketpulse`` command, as a
user runs it, exits non-zero with one line saying what is wrong and what to do, never a
traceback (issue 15's table: malformed TOML, an unreachable bootstrap server for the
worker, ``topics`` and ``replay``, a second worker on a data dir in use, a metrics port in
use). The two "in use" cases meet a real worker running against the real broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.tools.broker.launcher import free_port

pytestmark = pytest.mark.integration


def ticketpulse(*args: str, timeout: float = 120) -> tuple[int, str]:
    """Run the command; (exit code, what it printed on stdout and stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def assert_one_clear_line(rc: int, output: str, says: str) -> None:
    assert rc != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if says in line]
    assert len(lines) == 1, output  # said once, on a line of its own


def test_a_malformed_settings_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "ticketpulse.toml"
    bad.write_text('partitions = 8\ntimezone = "UTC\n')
    rc, output = ticketpulse("worker", "--config", str(bad), "--data-dir", str(tmp_path / "d"))
    assert_one_clear_line(rc, output, f"{bad} is not valid TOML")


@pytest.mark.parametrize("command", ["worker", "topics", "replay"])
def test_an_unreachable_bootstrap_server_is_one_line_after_a_bounded_wait(
    command: str, tmp_path: Path
) -> None:
    server = f"127.0.0.1:{free_port()}"  # nothing listens there
    args = [command, "--bootstrap-servers", server, "--connect-timeout-seconds", "2"]
    if command == "worker":
        args += ["--data-dir", str(tmp_path / "d"), "--metrics-port", str(free_port())]
    if command == "replay":
        log = tmp_path / "events.jsonl"
        log.write_text('{"event_id": "e1"}\n')
        args.append(str(log))
    rc, output = ticketpulse(*args)
    assert_one_clear_line(rc, output, f"cannot reach Kafka at {server} within 2 s")


def test_a_second_worker_on_a_data_dir_in_use_is_refused_naming_the_holder(
    start_worker, tmp_path: Path
) -> None:
    first = start_worker()
    assert first.data_dir is not None
    rc, output = ticketpulse(
        "worker", "--data-dir", str(first.data_dir), "--metrics-port", str(free_port())
    )
    assert_one_clear_line(rc, output, f"in use by another worker (pid {first.process.pid})")
    assert first.process.poll() is None  # the holder runs on, untouched


def test_a_metrics_port_in_use_is_one_line(start_worker, tmp_path: Path) -> None:
    first = start_worker()
    rc, output = ticketpulse(
        "worker", "--data-dir", str(tmp_path / "other"), "--metrics-port", str(first.port)
    )
    assert_one_clear_line(rc, output, f"metrics port {first.port} on 127.0.0.1 is not free")
    assert first.process.poll() is None
