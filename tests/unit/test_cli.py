"""--help teaches: every command explains itself with examples and exits 0."""

from __future__ import annotations

import pytest

from streams.cli import build_parser, main

COMMANDS = ["worker", "broker", "topics", "simulate", "replay", "run"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"ticketpulse {command}" in out


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_bad_config_is_a_clear_error(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("nope = 1\n")
    assert main(["topics", "--config", str(cfg)]) == 2
    assert "nope" in capsys.readouterr().err


def test_simulate_to_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "log.jsonl"
    assert main(["simulate", "--seed", "3", "--events", "500", "--output", str(out)]) == 0
    assert len(out.read_bytes().splitlines()) == 500


def test_simulate_to_file_needs_a_limit(tmp_path) -> None:
    assert main(["simulate", "--output", str(tmp_path / "x.jsonl")]) == 2


def test_replay_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "/nonexistent.jsonl"]) == 2
    assert "no such file" in capsys.readouterr().err
