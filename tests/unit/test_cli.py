"""--help teaches: every command explains itself with examples and exits 0."""

from __future__ import annotations

import pytest

from streams.cli import build_parser, main

COMMANDS = ["worker", "broker", "topics", "simulate", "replay", "report", "run"]


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


def test_report_prints_figures_as_json(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    import orjson

    log = tmp_path / "log.jsonl"
    assert main(["simulate", "--seed", "4", "--events", "3000", "--output", str(log)]) == 0
    capsys.readouterr()
    assert main(["report", str(log)]) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["records"]["accepted"] == 3000
    day = result["windows"]["24h"]
    offered = sum(v["components"]["contacts_offered"] for v in day.values())
    opened = sum(1 for line in log.read_bytes().splitlines() if b'"type":"opened"' in line)
    assert offered == opened
    rates = [v["figures"]["abandonment_rate"] for v in day.values()]
    assert any(r is not None and 0 <= r <= 1 for r in rates)
