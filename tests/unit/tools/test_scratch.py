"""The long tools' work dirs: gone after a clean run, kept (and named) after a failed one;
the soak stops at once when its broker or worker has gone."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streams.tools.broker.launcher import Broker
from streams.tools.scratch import scratch_dir
from streams.tools.soak import still_running


def _fill(path: Path) -> None:
    (path / "kafka").mkdir()
    (path / "kafka" / "broker.log").write_text("a line\n")


def test_a_clean_run_removes_its_work_dir(capsys) -> None:
    with scratch_dir("ticketpulse-test-") as scratch:
        _fill(scratch.path)
    assert not scratch.path.exists()
    assert capsys.readouterr().err == ""


def test_a_run_that_raises_keeps_its_work_dir_and_says_where(capsys) -> None:
    with pytest.raises(RuntimeError, match="boom"), scratch_dir("ticketpulse-test-") as scratch:
        _fill(scratch.path)
        raise RuntimeError("boom")
    assert (scratch.path / "kafka" / "broker.log").read_text() == "a line\n"
    assert str(scratch.path) in capsys.readouterr().err
    shutil.rmtree(scratch.path)


@pytest.mark.parametrize("keep_from", ["flag", "verdict"])
def test_keep_or_a_failed_verdict_keeps_the_work_dir(keep_from, capsys) -> None:
    with scratch_dir("ticketpulse-test-", keep=keep_from == "flag") as scratch:
        _fill(scratch.path)
        if keep_from == "verdict":
            scratch.keep = True
    assert scratch.path.is_dir()
    assert str(scratch.path) in capsys.readouterr().err
    shutil.rmtree(scratch.path)


def _exited(code: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    proc.wait()
    return proc


def _running() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_the_soak_stops_when_its_broker_has_gone(tmp_path) -> None:
    (tmp_path / "broker.log").write_text("ERROR No space left on device\n")
    worker = _running()
    try:
        broker = Broker(1, 2, tmp_path, _exited(1))
        with pytest.raises(RuntimeError, match=r"(?s)the broker exited.*No space left"):
            still_running(worker, broker, tmp_path)
        still_running(worker, Broker(1, 2, tmp_path, worker), tmp_path)  # both alive: fine
        with pytest.raises(RuntimeError, match="the worker exited with 3"):
            still_running(_exited(3), Broker(1, 2, tmp_path, worker), tmp_path)
    finally:
        worker.kill()
        worker.wait()
