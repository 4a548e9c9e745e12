"""Settings precedence: flags > environment > TOML file > defaults; typos are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.config import ConfigError, Settings, load_settings
from streams.core.policy import Policy, QueueOverride


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "TICKETPULSE_BOOTSTRAP_SERVERS",
        "TICKETPULSE_PARTITIONS",
        "TICKETPULSE_CONFIG",
        "TICKETPULSE_METRICS_PORT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    s = load_settings()
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.partitions == 8
    assert s.topic == "ticket-events"
    assert s.dlq_topic == "ticket-events-dlq"
    assert s.metrics_host == "127.0.0.1"


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "tp.toml"
    cfg.write_text('partitions = 4\nmetrics_port = 9000\ntopic = "from-file"\n')
    monkeypatch.setenv("TICKETPULSE_METRICS_PORT", "9100")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    s = load_settings(cfg, topic="from-flag", partitions=None)
    assert s.topic == "from-flag"  # flag beats file
    assert s.metrics_port == 9100  # env beats file
    assert s.partitions == 4  # file beats default; a flag left unset does not override
    assert s.bootstrap_list == ["k1:9092", "k2:9092"]


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "tp.toml"
    cfg.write_text("partitions = 12\n")
    monkeypatch.setenv("TICKETPULSE_CONFIG", str(cfg))
    assert load_settings().partitions == 12


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "tp.toml"
    cfg.write_text("partitons = 4\n")
    with pytest.raises(ConfigError, match="partitons"):
        load_settings(cfg)


def test_a_setting_of_an_earlier_release_names_what_replaced_it(tmp_path: Path) -> None:
    cfg = tmp_path / "tp.toml"
    cfg.write_text("store_block_cache_mb = 16\n")
    with pytest.raises(
        ConfigError, match=r"store_block_cache_mb is no longer a setting.*store_memory_mb"
    ):
        load_settings(cfg)


def test_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="partitions"):
        load_settings(partitions=0)


@pytest.mark.parametrize(
    "table",
    [
        "[first_response_target_seconds]\nfax = 10\n",
        "[queues.sales.first_response_target_seconds]\nphnoe = 60\n",
        '[calendars.office]\n[queues.sales]\nchannel_calendars = { emial = "office" }\n',
    ],
)
def test_a_misspelt_channel_is_refused(tmp_path: Path, table: str) -> None:
    """A target under a channel no event has would be read by no event, and the channel
    meant would keep its default target: refused, with the channels named."""
    cfg = tmp_path / "tp.toml"
    cfg.write_text(table)
    with pytest.raises(ConfigError, match=r"unknown channel '(fax|phnoe|emial)'.*phone, chat"):
        load_settings(cfg)


def test_a_settings_file_keeps_the_today_window(tmp_path: Path) -> None:
    """TOML has no null: "today" is the span of the since-midnight window in a file."""
    cfg = tmp_path / "tp.toml"
    cfg.write_text('[windows]\n15m = 900\ntoday = "today"\n')
    assert load_settings(cfg).windows == {"15m": 900, "today": None}
    cfg.write_text("[windows]\ntoday = 0\n")
    with pytest.raises(ConfigError, match=r"spans 0.0 s: .*or \"today\""):
        load_settings(cfg)
    cfg.write_text('[windows]\nx = "midnight"\n')
    with pytest.raises(ConfigError, match=r"window 'x' spans 'midnight': .*or \"today\""):
        load_settings(cfg)
    # the name alone makes a window since midnight: a number for it would be ignored
    cfg.write_text("[windows]\ntoday = 3600\n")
    with pytest.raises(ConfigError, match=r"window 'today' is since local midnight"):
        load_settings(cfg)
    assert load_settings(windows={"1h": "3600"}).windows == {"1h": 3600}  # a number as text


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings("/nonexistent/tp.toml")


def test_sla_targets_per_queue_and_channel(tmp_path: Path) -> None:
    cfg = tmp_path / "tp.toml"
    cfg.write_text(
        "[first_response_target_seconds]\nchat = 45\n"
        "[queues.vip]\nshort_abandon_seconds = 10\n"
        'service_level = "answered_abandoned_minus_short"\n'
        "[queues.vip.first_response_target_seconds]\nphone = 15\n"
    )
    policy = load_settings(cfg).policy()
    assert policy.for_queue("sales", "chat").first_response_target_s == 45
    assert policy.for_queue("sales", "phone").first_response_target_s == 20  # default kept
    vip = policy.for_queue("vip", "phone")
    assert vip.first_response_target_s == 15
    assert vip.service_level == "answered_abandoned_minus_short"
    assert vip.short_abandon_s == 10
    assert policy.for_queue("vip", "email").first_response_target_s == 3600
    assert {15, 45}.issubset(policy.bounds()), "every target is a histogram bound"


def test_rules_memo_stays_bounded_under_a_flood_of_queue_names() -> None:
    """A producer sending a new queue name per ticket (chaos row 11) must not grow the
    rules memo: unconfigured queues share their channel's rules, configured ones keep theirs."""
    policy = Policy(queues={"vip": QueueOverride(first_response_target_s={"chat": 15})})
    for i in range(5_000):
        for channel in ("chat", "email"):
            assert policy.for_queue(f"q{i}", channel) == policy._rules(f"q{i}", channel)
    assert policy.for_queue("vip", "chat").first_response_target_s == 15
    assert policy.for_queue("q1", "chat").first_response_target_s == 60
    assert len(policy._resolved) == 3


def test_unknown_queue_key_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "tp.toml"
    cfg.write_text("[queues.vip]\nservice_levle = 'answered'\n")
    with pytest.raises(ConfigError, match="service_levle"):
        load_settings(cfg)


@pytest.mark.parametrize(
    "servers", ["SASL_SSL://broker:9093", "SSL://b:9093", "k1:9092,SASL_PLAINTEXT://k2:9092", " , "]
)
def test_a_bootstrap_scheme_that_would_be_dropped_is_an_error(servers: str) -> None:
    """Issue 11: the scheme was dropped and the client connected in plaintext, rc 0."""
    with pytest.raises(ConfigError, match="bootstrap_servers"):
        load_settings(bootstrap_servers=servers)


def test_an_explicit_plaintext_scheme_is_accepted() -> None:
    s = load_settings(bootstrap_servers="PLAINTEXT://k1:9092, k2:9092")
    assert s.bootstrap_list == ["k1:9092", "k2:9092"]


def test_an_unknown_time_zone_is_an_error_at_startup() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        load_settings(timezone="Mars/Olympus")


@pytest.mark.parametrize("span", [0, -60, float("nan"), float("inf")])
def test_a_window_must_span_a_positive_time(span: float) -> None:
    with pytest.raises(ConfigError, match="windows"):
        load_settings(windows={"15m": 900, "bad": span})


def test_the_contacts_topic_is_namespaced_by_app_id() -> None:
    """Two apps on one input topic must not share (and consume each other's) contacts."""
    a = load_settings(app_id="prod", topic="ticket-events")
    b = load_settings(app_id="staging", topic="ticket-events")
    assert a.contacts_topic_name == "prod-contacts"
    assert a.contacts_topic_name != b.contacts_topic_name
    assert load_settings(contacts_topic="legacy").contacts_topic_name == "legacy"


def test_a_malformed_file_is_one_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("timezone = \n")
    with pytest.raises(ConfigError, match=r"is not valid TOML: Invalid value \(at line 1"):
        load_settings(bad)


def test_the_readme_example_settings_file_loads(tmp_path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("Example `ticketpulse.toml`:\n```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "ticketpulse.toml"
    path.write_text(example)
    policy = load_settings(path).policy()
    assert policy.for_queue("billing", "email").calendar.name == "office"
    assert policy.for_queue("billing", "phone").calendar.name == "night-desk"
    assert policy.for_queue("sales", "email").calendar is None


def test_retention_follows_the_windows_and_today_keeps_the_longest_local_day() -> None:
    short = load_settings(
        windows={"5m": 300, "15m": 900},
        recontact_days=[0.01],
        fcr_days=0.01,
        closed_ticket_keep_seconds=600,
        lateness_seconds=60,
    ).kpi_settings()
    assert short.window_retention_s == 900  # no "today": no day-long floor
    assert short.ticket_retention_s == 900 + 60  # the longest of window, periods, keep
    with_today = load_settings(windows={"5m": 300, "today": None}).kpi_settings()
    assert with_today.window_retention_s == 25 * 3600  # the day the clocks go back
    defaults = load_settings().kpi_settings()
    assert defaults.ticket_retention_s == 3 * 86_400 + 600  # the recontact period leads


def test_the_read_ahead_per_partition_reaches_the_consumer() -> None:
    """``fetch_partition_bytes`` is what Faust gives aiokafka as max_partition_fetch_bytes."""
    from streams.runtime.worker import faust_app

    assert load_settings().fetch_partition_bytes == 256 * 1024
    app = faust_app(load_settings(fetch_partition_bytes=512 * 1024))
    assert app.conf.consumer_max_fetch_size == 512 * 1024
    with pytest.raises(ConfigError, match="fetch_partition_bytes"):
        load_settings(fetch_partition_bytes=1024)  # below 64 KiB: refused


def test_an_offline_load_that_fails_leaves_later_settings_checked() -> None:
    """``load_settings(offline=True)`` with a missing config file left the offline switch on:
    settings built afterwards accepted a CA file that does not exist."""
    with pytest.raises(ConfigError):
        load_settings("/no/such/ticketpulse.toml", offline=True)
    with pytest.raises(ValidationError, match=r"ssl_cafile /no/such/ca\.pem: no such file"):
        Settings(security_protocol="SSL", ssl_cafile="/no/such/ca.pem")


def test_an_agent_label_salt_file_must_exist_and_hold_a_key(tmp_path) -> None:
    """Per-agent labels hashed with an empty key would be a plain, reversible hash."""
    with pytest.raises(ConfigError, match=r"agent_label_salt_file .*: no such file"):
        load_settings(agent_label_salt_file=str(tmp_path / "missing"))
    empty = tmp_path / "salt"
    empty.write_bytes(b"\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_settings(agent_label_salt_file=str(empty))
    empty.write_bytes(b"s3cret\n")
    assert load_settings(agent_label_salt_file=str(empty)).agent_label_salt_file == empty
