"""--help teaches: every command explains itself with examples and exits 0."""

from __future__ import annotations

import argparse
import json
import re
import socket
import time

import orjson
import pytest

from streams.cli import EXAMPLES, build_parser, main

COMMANDS = ["worker", "broker", "topics", "simulate", "replay", "report", "wallboard", "run"]


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


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_every_flag_in_a_help_example_is_a_flag_of_that_command(command: str) -> None:
    """A help text's example is copied as it stands: a flag it names must parse."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = set(sub.choices[command]._option_string_actions)
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", EXAMPLES[command]))
    assert named - flags == set(), f"`{command} --help` names flags it does not have"


@pytest.mark.parametrize(
    ("flag", "url"), [("--workers", "127.0.0.1:8798"), ("--prometheus", "prometheus:9090")]
)
def test_a_wallboard_source_without_its_scheme_is_refused(
    flag: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without http:// the board would only ever say that no source answered."""
    assert main(["wallboard", flag, url]) == 2
    assert f"is not an http(s) URL (write http://{url})" in capsys.readouterr().err
    assert main(["wallboard", flag, "http://"]) == 2
    assert "'http://' is not an http(s) URL\n" in capsys.readouterr().err


def test_a_wallboard_needs_a_worker_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wallboard", "--workers", ","]) == 2
    assert "--workers: no URL given" in capsys.readouterr().err


def test_simulate_refuses_what_it_cannot_do_in_one_line(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir" / "day.jsonl"
    assert main(["simulate", "--events", "3", "--output", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: cannot write {missing}: No such file or directory\n"
    out = str(tmp_path / "day.jsonl")
    assert main(["simulate", "--events", "3", "--output", out, "--start", "tomorrow"]) == 2
    assert "--start: 'tomorrow' is not 'now' or an ISO date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--events", "3", "--output", out, "--duplicates", "2"])
    assert "--duplicates: '2' is not a fraction between 0 and 1" in capsys.readouterr().err


def test_a_wallboard_on_a_taken_port_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["wallboard", "--workers", "http://127.0.0.1:1", "--wallboard-port", port]
        assert main(args) == 1
    assert f"wallboard port {port} on 127.0.0.1 is not free" in capsys.readouterr().err


def test_a_report_says_what_it_left_out_and_fails_when_nothing_is_left(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file of another format, or --from/--to around no event, gave an empty report
    and exit 0; rejected lines are now counted by reason, on stderr and in the JSON."""
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b'not json\n{"event_id": "x"}\n')
    assert main(["report", str(junk), "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["records"]["rejected_schema"] == 1
    assert "left out: 2 rejected (not_json 1, schema 1" in err
    assert "error: none of the 2 records was accepted" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert main(["report", str(empty), "--no-progress"]) == 1
    assert "error: no record was accepted: the report is empty" in capsys.readouterr().err
    day = tmp_path / "day.jsonl"
    assert main(["simulate", "--events", "300", "--output", str(day)]) == 0
    assert main(["report", str(day), "--no-progress", "--from", "2030-01-01"]) == 1
    assert "left out: 300 outside --from/--to" in capsys.readouterr().err
    args = ["report", str(day), "--no-progress", "--from", "2026-01-06", "--to", "2026-01-05"]
    assert main(args) == 2
    assert "--from 2026-01-06 is not before --to 2026-01-05" in capsys.readouterr().err


def test_simulate_says_what_it_wrote_and_when_late_records_could_not_come(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Late records come 1.5-3x --lateness after their event: a short log has none, which
    the user asked for and would otherwise only find in the report's "late": 0."""
    day = tmp_path / "day.jsonl"
    assert main(["simulate", "--events", "300", "--output", str(day), "--late", "0.5"]) == 0
    err = capsys.readouterr().err
    assert f"wrote 300 records to {day} (event " in err
    assert "note: --late 0.5 gave no late record: a late one comes 1.5-3x --lateness" in err


def test_version_names_the_package_faust_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert re.fullmatch(
        r"ticketpulse \S+ \(faust-streaming \S+, Python 3\.\d+\.\d+\)\n",
        capsys.readouterr().out,
    )


def test_a_bad_flag_value_is_one_line_and_a_pointer_to_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """argparse printed the command's whole usage (some 30 lines for worker) above it."""
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--metrics-port", "abc"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "ticketpulse worker: error: argument --metrics-port: invalid int value: 'abc'\n"
        "Run `ticketpulse worker --help` for its options.\n"
    )


@pytest.mark.parametrize("command", ["report", "wallboard"])
def test_commands_that_never_connect_to_kafka_list_no_kafka_flag(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    out = capsys.readouterr().out
    for flag in ("--bootstrap-servers", "--topic", "--partitions", "--app-id"):
        assert flag not in out, f"`{command} --help` lists {flag}, which it ignores"
    assert "--config" in out


def test_a_time_without_a_zone_is_utc_for_simulate_and_report_alike(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``simulate --start`` read a zone-less time as the machine's local time and ``report
    --from`` as UTC: on a machine east of UTC, a day simulated from 08:00 and reported from
    08:00 left out its first hours."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        day = tmp_path / "day.jsonl"
        start = ["--start", "2026-01-05T08:00:00", "--duration", "3600"]
        assert main(["simulate", "--events", "50", "--output", str(day), *start]) == 0
        first = min(orjson.loads(line)["occurred_at"] for line in day.read_bytes().splitlines())
        assert first.startswith("2026-01-05T08:00"), first
        assert main(["report", str(day), "--no-progress", "--from", "2026-01-05T08:00"]) == 0
        assert "outside --from/--to" not in capsys.readouterr().err
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_report_reuses_a_secured_settings_file_whose_kafka_files_are_elsewhere(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An analyst runs ``report`` with the production settings file, on a machine without
    its TLS and SASL files: ``report`` never connects, so only commands that do check them."""
    config = tmp_path / "prod.toml"
    config.write_text(
        'bootstrap_servers = "kafka-1:9093"\nsecurity_protocol = "SASL_SSL"\n'
        'sasl_username = "ticketpulse"\n'
        'sasl_password_file = "/run/secrets/kafka-password"\n'
        'ssl_cafile = "/etc/ticketpulse/kafka-ca.pem"\n'
    )
    day = tmp_path / "day.jsonl"
    assert main(["simulate", "--events", "50", "--output", str(day), "--config", str(config)]) == 0
    assert main(["report", str(day), "--no-progress", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["topics", "--config", str(config)]) == 2
    assert "ssl_cafile /etc/ticketpulse/kafka-ca.pem: no such file" in capsys.readouterr().err


def test_the_wallboard_keeps_source_credentials_out_of_urls_and_off_plain_http(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL's user:password showed on the board's status line, in its log and in ``ps``;
    a --source-username went in the clear to an http:// source on another machine."""
    assert main(["wallboard", "--workers", "http://scraper:s3cret@10.0.0.5:8790"]) == 2
    err = capsys.readouterr().err
    assert "a URL with credentials" in err and "s3cret" not in err
    monkeypatch.setenv("TICKETPULSE_SOURCE_PASSWORD", "s3cret")
    args = ["wallboard", "--workers", "http://10.0.0.5:8790", "--source-username", "wallboard"]
    assert main(args) == 2
    assert "in the clear to 10.0.0.5" in capsys.readouterr().err
