"""Kafka over SASL_SSL (SCRAM-SHA-512, a private CA) with the broker's own listener: a
worker and the tools connect with the right settings, equal the oracle, and never log the
password; a wrong CA, a wrong password and a plaintext client each fail closed with one
line that names the setting at fault."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from streams.cli import main
from streams.config import DEFAULT_WINDOWS, load_settings
from streams.tools.broker import launcher
from streams.tools.broker.tls import make_listener
from streams.tools.produce import key_of, read_jsonl
from tests.integration.test_kpis import wait_equal
from tests.oracle import expected

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory):
    broker = launcher.start(tmp_path_factory.mktemp("secure-kafka"), secure=True)
    yield broker
    broker.stop()


def settings_file(path: Path, broker: launcher.Broker, **changes: str) -> Path:
    secure = broker.secure
    assert secure is not None
    values = {
        "bootstrap_servers": broker.secure_bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": secure.user,
        "sasl_password_file": str(secure.password_file),
        "ssl_cafile": str(secure.ca_file),
        "connect_timeout_seconds": "20",  # room for a SASL attempt on a loaded machine
        **changes,
    }
    lines = [
        f"{key} = {value}" if key == "connect_timeout_seconds" else f'{key} = "{value}"'
        for key, value in values.items()
        if value != "-"  # "-": leave the key out
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def password(broker: launcher.Broker) -> str:
    assert broker.secure is not None
    return broker.secure.password_file.read_text().strip()


def test_a_worker_over_sasl_ssl_equals_the_oracle(secure_kafka, names, start_worker, tmp_path):
    config = settings_file(tmp_path / "secure.toml", secure_kafka)
    log = tmp_path / "day.jsonl"
    simulate = ["simulate", "--seed", "4", "--rate", "2", "--events", "3000"]
    assert main([*simulate, "--duplicates", "0.03", "--output", str(log)]) == 0
    records = [(key_of(line), line) for line in read_jsonl(log)]
    oracle = expected(
        records, partitions=4, policy=load_settings().policy(), now=time.time(),
        windows=dict(DEFAULT_WINDOWS),
    )  # fmt: skip
    where = ["--config", str(config), "--app-id", names["app_id"], "--topic", names["topic"]]
    where += ["--dlq-topic", names["dlq"], "--partitions", "4"]
    assert main(["topics", *where]) == 0
    assert main(["replay", str(log), "--no-progress", *where]) == 0
    worker = start_worker(
        "--clock", "event", "--config", str(config), bootstrap=secure_kafka.secure_bootstrap
    )
    wait_equal(oracle, worker)
    assert password(secure_kafka) not in worker.log_path.read_text(errors="replace")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


CASES = {
    "wrong CA": ({}, "is not trusted"),
    "wrong password": ({"TICKETPULSE_SASL_PASSWORD": "not-the-password"}, "refused user"),
    "plaintext client at the TLS port": ({}, "speaks TLS but security_protocol is PLAINTEXT"),
    "TLS client at the plaintext port": ({}, "did not complete a TLS handshake"),
}


def failure_of(broker: launcher.Broker, folder: Path, case: str, command: str) -> str | None:
    """Run one command with one wrong setting; what is wrong with its failure (or None)."""
    folder.mkdir()
    env, expected_text = CASES[case]
    changes: dict[str, str] = {}
    if case == "wrong CA":
        other = make_listener(folder / "other-ca", 0)  # a CA that never signed the broker
        changes["ssl_cafile"] = str(other.ca_file)
    if case.startswith("plaintext"):
        dropped = ("security_protocol", "sasl_username", "sasl_password_file", "ssl_cafile")
        changes = dict.fromkeys(dropped, "-")
    if case.startswith("TLS client"):  # the same broker's PLAINTEXT listener
        changes["bootstrap_servers"] = broker.bootstrap
    config = settings_file(folder / "settings.toml", broker, **changes)
    extra = ["--data-dir", str(folder / "data")] if command == "worker" else []
    done = run_cli(command, "--config", str(config), *extra, env=env)
    lines = done.stderr.strip().splitlines()
    output = done.stdout + done.stderr
    problems = [
        f"rc {done.returncode}" if done.returncode != 1 else "",
        "not one line" if len(lines) != 1 else "",
        "no 'cannot connect to Kafka'" if "error: cannot connect to Kafka" not in output else "",
        f"no {expected_text!r}" if expected_text not in output else "",
        "a traceback" if "Traceback" in output else "",
        "the password" if password(broker) in output else "",
    ]
    found = [p for p in problems if p]
    return f"{command}, {case}: {', '.join(found)}: {output[-600:]}" if found else None


def test_wrong_security_settings_fail_closed_with_one_line(secure_kafka, tmp_path) -> None:
    """Each command with each wrong setting, run side by side (each waits its connect
    timeout): rc 1, one line naming the cause, no traceback, no password."""
    runs = [(case, command) for case in CASES for command in ("topics", "worker")]
    with ThreadPoolExecutor(len(runs)) as pool:
        failures = list(
            pool.map(
                lambda run: failure_of(secure_kafka, tmp_path / f"{run[0]}-{run[1]}", *run), runs
            )
        )
    assert not [f for f in failures if f], failures
