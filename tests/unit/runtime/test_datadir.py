"""The data dir is one worker's (a lock with the holder's pid) and keeps its consumer-group
identity across restarts; a port in use is one clear line (issue 15)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main
from streams.runtime.datadir import (
    DataDirInUseError,
    PortInUseError,
    check_port_free,
    claim,
)
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
