"""The data dir is one worker's (a lock with the holder's pid) and keeps its consumer-group
identity across restarts; a port in use is one clear line (issue 15)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from streams.cli import main
from streams.runtime.datadir import (
    DataDirInUseError,
    PortInUseError,
    RememberedMember,
    check_port_free,
    claim,
)
from streams.runtime.faust_internals import rejoin_as_remembered_member
from streams.tools.broker.launcher import free_port


def test_a_second_process_on_the_same_data_dir_is_refused_with_the_holders_pid(
    tmp_path: Path,
) -> None:
    held = claim(tmp_path)
    try:
        other = subprocess.run(
            [sys.executable, "-c", "import sys; from streams.runtime.datadir import claim; "
             f"claim(__import__('pathlib').Path({str(tmp_path)!r}))"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert other.returncode != 0
        assert f"in use by another worker (pid {os.getpid()})" in other.stderr
    finally:
        held.close()
    claim(tmp_path).close()  # free again once the holder is gone


def test_the_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    script = (
        "import os, pathlib; from streams.runtime.datadir import claim; "
        f"claim(pathlib.Path({str(tmp_path)!r})); os.kill(os.getpid(), 9)"
    )
    subprocess.run([sys.executable, "-c", script], check=False)
    claim(tmp_path).close()


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"metrics port {port} on 127.0.0.1 is not free"):
            check_port_free("127.0.0.1", port, "metrics")


def test_the_worker_stops_at_once_on_a_held_data_dir(tmp_path: Path, capsys) -> None:
    held = claim(tmp_path)
    try:
        rc = main(["worker", "--data-dir", str(tmp_path), "--bootstrap-servers", "127.0.0.1:1"])
    finally:
        held.close()
    assert rc == 1
    assert "is in use by another worker" in capsys.readouterr().err
    again = claim(tmp_path)  # the failed worker left the dir free
    with pytest.raises(DataDirInUseError):
        claim(tmp_path)  # flock is per open file: a second claim in one process fails too
    again.close()


@pytest.mark.parametrize("command", ["topics", "worker"])
def test_an_unreachable_broker_is_one_line_after_a_bounded_wait(
    command: str, tmp_path: Path, capsys
) -> None:
    args = [command, "--bootstrap-servers", "127.0.0.1:1", "--connect-timeout-seconds", "1"]
    if command == "worker":
        args += ["--data-dir", str(tmp_path), "--metrics-port", str(free_port())]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "cannot reach Kafka at 127.0.0.1:1 within 1 s" in err
    assert "Traceback" not in err


def test_a_data_dir_remembers_the_member_id_its_worker_last_joined_with(tmp_path: Path) -> None:
    member = RememberedMember.of(tmp_path, "ticketpulse")
    assert member.recall() is None  # a new data dir joins as a new member
    member.keep("ticketpulse-1-abc")
    assert RememberedMember.of(tmp_path, "ticketpulse").recall() == "ticketpulse-1-abc"
    member.keep("ticketpulse-1-def")  # a later join's id replaces it
    assert member.recall() == "ticketpulse-1-def"
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    "written",
    [
        b"",
        b"{half",
        b"[1, 2]",
        b'{"group": "other", "host": "HOST", "member_id": "x"}',
        b'{"group": "ticketpulse", "host": "another-host", "member_id": "x"}',
        b'{"group": "ticketpulse", "host": "HOST", "member_id": ""}',
        b'{"group": "ticketpulse", "host": "HOST", "member_id": 7}',
    ],
)
def test_a_member_id_of_another_group_or_host_or_a_damaged_record_is_not_reused(
    tmp_path: Path, written: bytes
) -> None:
    (tmp_path / ".group-member").write_bytes(
        written.replace(b"HOST", socket.gethostname().encode())
    )
    assert RememberedMember.of(tmp_path, "ticketpulse").recall() is None


def _started_consumer(member_id: str = "", instance_id: str | None = None) -> SimpleNamespace:
    coordinator = SimpleNamespace(member_id=member_id, _group_instance_id=instance_id)
    return SimpleNamespace(
        _coordinator=coordinator, _subscription=SimpleNamespace(subscription=None)
    )


def test_a_restarted_worker_joins_as_the_member_its_data_dir_remembers(tmp_path: Path) -> None:
    member = RememberedMember.of(tmp_path, "ticketpulse")
    consumer = _started_consumer()
    assert not rejoin_as_remembered_member(consumer, member)  # nothing remembered yet
    assert consumer._coordinator.member_id == ""
    member.keep("ticketpulse-1-abc")
    assert rejoin_as_remembered_member(consumer, member)
    assert consumer._coordinator.member_id == "ticketpulse-1-abc"


def test_the_remembered_id_is_left_alone_under_static_membership_or_once_joining(
    tmp_path: Path,
) -> None:
    member = RememberedMember.of(tmp_path, "ticketpulse")
    member.keep("ticketpulse-1-abc")
    static = _started_consumer(instance_id="pod-0")
    assert not rejoin_as_remembered_member(static, member)
    joined = _started_consumer(member_id="ticketpulse-1-new")
    assert not rejoin_as_remembered_member(joined, member)
    assert joined._coordinator.member_id == "ticketpulse-1-new"
    subscribed = _started_consumer()
    subscribed._subscription.subscription = object()
    assert not rejoin_as_remembered_member(subscribed, member)
    assert subscribed._coordinator.member_id == ""
