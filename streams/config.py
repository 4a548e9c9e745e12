"""One settings object, read from flags, environment and an optional TOML file.

Precedence, highest first: command-line flags, ``TICKETPULSE_*`` environment
variables (``KAFKA_BOOTSTRAP_SERVERS`` is honoured too), the TOML file given by
``--config`` or ``TICKETPULSE_CONFIG``, then the defaults below. Unknown keys in
the file are an error, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from streams.core.calendar import WEEKDAYS, Calendar, parse_holidays, parse_ranges
from streams.core.events import CHANNELS
from streams.core.facts import DAY
from streams.core.policy import (
    DEFAULT_FIRST_RESPONSE_TARGETS,
    Policy,
    QueueOverride,
    ServiceLevelPreset,
)
from streams.core.windows import TODAY
from streams.processing.settings import KpiSettings

LONGEST_LOCAL_DAY = DAY + 3600.0  # "today" on the day the clocks go back
DEFAULT_METRICS_PORT = 8790
DEFAULT_WALLBOARD_PORT = 8791
DEFAULT_WINDOWS: dict[str, float | None] = {"15m": 900, "1h": 3600, "24h": 86400, TODAY: None}
_config_file: Path | None = None
_offline = False  # the command never connects to Kafka: its credential files are not read


# TODAY names the since-midnight window (streams.core.windows), and is its span in a file
SPANS = f'a span is positive seconds, or "{TODAY}" (since local midnight)'


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class ConfigError(ValueError):
    """Settings could not be loaded; the message names the offending key."""


class QueueTargets(BaseModel):
    """Per-queue overrides of the SLA targets (a ``[queues.NAME]`` table in the file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    first_response_target_seconds: dict[str, float] = Field(default_factory=dict)
    resolution_target_seconds: float | None = None
    short_abandon_seconds: float | None = None
    service_level: ServiceLevelPreset | None = None
    service_level_objective: float | None = Field(None, gt=0, lt=1)
    calendar: str | None = None  # a [calendars.NAME]: its targets run on business hours
    channel_calendars: dict[str, str] = Field(default_factory=dict)  # by channel

    @field_validator("first_response_target_seconds", "channel_calendars")
    @classmethod
    def _known_channels(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _channels(value)


def _channels(value: dict[str, Any]) -> dict[str, Any]:
    """Keys of a by-channel table are channels of the event schema: a misspelt one would
    be a target no event ever reads, while the channel meant keeps the default."""
    unknown = sorted(set(value) - set(CHANNELS))
    if unknown:
        msg = f"unknown channel {unknown[0]!r}: the channels are {', '.join(CHANNELS)}"
        raise ValueError(msg)
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"unknown time zone {value!r} (an IANA name such as 'Europe/Paris' or 'UTC')"
        raise ValueError(msg) from exc
    return value


class CalendarSettings(BaseModel):
    """Business hours (a ``[calendars.NAME]`` table): a zone, weekly opening ranges and
    holidays. ``hours = {mon = "09:00-12:30, 13:30-18:00", sat = ""}``; a day that is
    missing or empty is closed; ``"22:00-06:00"`` runs past midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    timezone: str
    hours: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], str]
    holidays: list[str] = Field(default_factory=list)  # "2026-12-25" or "2026-12-24..2026-12-26"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    @field_validator("hours")
    @classmethod
    def _ranges(cls, value: dict[str, str]) -> dict[str, str]:
        for day, text in value.items():
            try:
                parse_ranges(text)
            except ValueError as exc:
                msg = f"{day}: {exc}"
                raise ValueError(msg) from exc
        return value

    @field_validator("holidays")
    @classmethod
    def _dates(cls, value: list[str]) -> list[str]:
        parse_holidays(value)  # a ValueError names the bad date
        return value

    def calendar(self, name: str) -> Calendar:
        weekly = {WEEKDAYS.index(day): parse_ranges(text) for day, text in self.hours.items()}
        return Calendar(name, self.timezone, weekly, parse_holidays(self.holidays))


RENAMED = {
    "store_block_cache_mb": "RocksDB's memory is one budget for the whole worker now,"
    " store_memory_mb (default 24), its block cache shared by every table partition",
}


class Settings(BaseSettings):
    """Everything a worker, the simulator and the tools can be told."""

    model_config = SettingsConfigDict(
        env_prefix="TICKETPULSE_", extra="forbid", frozen=True, populate_by_name=True
    )

    bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices(
            "bootstrap_servers", "TICKETPULSE_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Kafka bootstrap servers, comma separated.",
    )
    app_id: str = Field("ticketpulse", description="Faust app id = Kafka consumer group.")
    topic: str = Field("ticket-events", description="Input topic of ticket events.")
    dlq_topic: str = Field("ticket-events-dlq", description="Dead-letter topic.")
    dlq_retention_hours: float = Field(
        72.0,
        gt=0,
        le=8760,
        description="Retention of the dead-letter topic when ticketpulse creates it: it holds "
        "the original records, customer data included, so keep it short.",
    )
    contacts_topic: str | None = Field(
        None,
        description="Internal topic of contacts keyed by customer (default: APP_ID-contacts).",
    )
    partitions: int = Field(8, ge=1, le=1024, description="Partitions of the input topic.")
    replication_factor: int = Field(1, ge=1, description="Replication of created topics.")
    metrics_host: str = Field("127.0.0.1", description="Address /metrics listens on.")
    metrics_port: int = Field(DEFAULT_METRICS_PORT, ge=1, le=65535)
    web_config_file: Path | None = Field(
        None,
        description="exporter-toolkit web config: TLS and basic auth of /metrics, wallboard.",
    )
    metrics_cache_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="/metrics renderings begin at most this often; scrapes share them.",
    )
    metrics_render_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Most of the event loop /metrics renderings may take: a rendering that "
        "took c seconds is served for at least c / share seconds (0.05: 80 ms -> 1.6 s).",
    )
    metrics_max_spacing_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="The share limit never spaces /metrics renderings further apart than "
        "this, so a scrape waits at most this plus one rendering (Prometheus' default scrape "
        "timeout is 10 s).",
    )
    wallboard_host: str = Field("127.0.0.1", description="Address the wallboard listens on.")
    wallboard_port: int = Field(DEFAULT_WALLBOARD_PORT, ge=1, le=65535)
    wallboard_refresh_seconds: float = Field(
        5.0, gt=0, le=300, description="How often the wallboard reads its source and pushes."
    )
    data_dir: Path = Field(Path(".data/worker"), description="Local table store (RocksDB).")
    store: Literal["rocksdb", "memory"] = Field("rocksdb", description="Faust table store.")
    instance_id: str | None = Field(None, description="Static consumer-group member id.")
    session_timeout_seconds: float = Field(
        10.0,
        ge=6,
        le=300,
        description="A worker silent this long is out of the group: its partitions move on.",
    )
    connect_timeout_seconds: float = Field(
        15.0, gt=0, le=600, description="How long to wait for Kafka at startup before giving up."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects (worker, topics, replay)."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (SASL_SSL, SASL_PLAINTEXT)."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    allow_sasl_without_tls: bool = Field(
        False,
        description="Let SASL_PLAINTEXT send the SASL exchange (PLAIN: the password) and every "
        "record unencrypted: only on a network you trust.",
    )
    sasl_password_file: Path | None = Field(
        None,
        description="File holding the SASL password; or $TICKETPULSE_SASL_PASSWORD. Never a flag.",
    )
    ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certs.")
    ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS).")
    future_tolerance_seconds: float = Field(
        300.0, ge=0, description="Events further than this ahead of the clock go to the DLQ."
    )
    max_record_bytes: int = Field(64 * 1024, ge=1024, description="Larger records go to the DLQ.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    batch_records: int = Field(
        5000, ge=1, le=100_000, description="Records of one partition per batch (most)."
    )
    fetch_min_bytes: int = Field(
        65536, ge=1, le=50 * 1024 * 1024,
        description="The broker holds a fetch until this much is there (or fetch_wait_seconds):"
        " Faust's 1 byte made live batches of ~1.7 records (docs/reliability.md).",
    )  # fmt: skip
    fetch_wait_seconds: float = Field(
        0.1, ge=0.001, le=60, description="Longest the broker holds a fetch for fetch_min_bytes."
    )
    fetch_partition_bytes: int = Field(
        256 * 1024, ge=64 * 1024, le=64 * 1024 * 1024,
        description="The most one fetch brings of one partition (aiokafka's"
        " max_partition_fetch_bytes; Faust's consumer_max_fetch_size, 1 MiB by default): what a"
        " catching-up worker reads ahead, per partition of both topics, and holds decoded.",
    )  # fmt: skip
    gc_freeze_seconds: float = Field(
        0.0, ge=0, le=86_400,
        description="Every this long, move the objects that survived into the garbage"
        " collector's permanent generation, so full collections skip them"
        " (streams.runtime.stalls); 0 (the default): never, as the rows are untracked.",
    )  # fmt: skip
    malloc_mmap_threshold_kib: int = Field(
        1024, ge=0, le=32 * 1024,
        description="Allocations this large get their own mapping, returned to the system"
        " when freed (glibc's M_MMAP_THRESHOLD, fixed: streams.runtime.processes); 0: glibc's"
        " default, which raises it to each large block freed, so later ones stay in the heap.",
    )  # fmt: skip
    stall_report_seconds: float | None = Field(
        None, gt=0, le=600,
        description="Log where the event loop was held once it is held this long (Faust's"
        " blocking detector, a SIGALRM timer): off by default, for chasing stalls.",
    )  # fmt: skip
    store_memory_mb: int = Field(
        24, ge=16, le=65536,
        description="RocksDB memory of the whole worker: the capacity of one block cache"
        " shared by every table partition, the write buffers charged to it (flushed once they"
        " pass half of it). RocksDB keeps to it loosely (no hard limit; table readers apart).",
    )  # fmt: skip
    store_write_buffer_mb: int = Field(
        8, ge=1, le=1024,
        description="RocksDB write buffer (memtable) of each table partition, two at most:"
        " a partition's largest flush; the shared budget flushes them sooner when they add up"
        " to half of store_memory_mb.",
    )  # fmt: skip
    clock: Literal["wall", "event"] = Field(
        "wall", description="Windows end now (wall) or at each partition's watermark (event)."
    )
    lateness_seconds: float = Field(600.0, ge=0, description="Allowed out-of-order lateness.")
    bucket_seconds: int = Field(60, ge=1, description="Width of the tumbling buckets.")
    windows: dict[str, float | None] = Field(
        default_factory=lambda: dict(DEFAULT_WINDOWS),
        description='Window name -> span in seconds, or "today" (null in JSON): since local'
        " midnight.",
    )
    timezone: str = Field("UTC", description='Time zone of the "today" window.')
    first_response_target_seconds: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_FIRST_RESPONSE_TARGETS),
        description="First-response target by channel.",
    )
    resolution_target_seconds: float = 48 * 3600.0
    short_abandon_seconds: float = 5.0
    service_level: ServiceLevelPreset = "answered_abandoned"
    service_level_objective: float = Field(
        0.8, gt=0, lt=1, description="Share of first responses within target a queue aims for."
    )
    queues: dict[str, QueueTargets] = Field(default_factory=dict)
    calendars: dict[str, CalendarSettings] = Field(
        default_factory=dict, description="Business-hours calendars queues may name."
    )
    recontact_days: list[PositiveFloat] = Field(
        default_factory=lambda: [1.0, 2.0, 3.0],
        min_length=1,
        description="ACR recontact periods in days (fractions allowed, e.g. 0.5).",
    )
    fcr_days: float = Field(3, ge=0, description="A reopen within this many days undoes FCR.")
    closed_ticket_keep_seconds: float = Field(
        86_400.0,
        ge=0,
        description="A closed ticket is kept this long after its last event (at least the "
        "longest window and the recontact and FCR periods) for late surveys and reopens.",
    )
    closed_ticket_pack_seconds: float = Field(
        600.0,
        ge=0,
        description="A closed ticket with no event for this long (event time) is left to the"
        " store (RocksDB) and only its partition and last event time kept in memory; it is"
        " read back and decoded if an event comes for it.",
    )
    complaint_tag: str = "complaint"
    queue_allowlist: list[str] | None = Field(
        None, description="Queues exported by name; every other queue is exported as 'other'."
    )
    max_queues: int = Field(50, ge=1, description="Without an allow-list, queues past this fold.")
    per_agent: bool = Field(False, description="Also export FRT, AHT and ACR per agent.")
    agent_allowlist: list[str] | None = Field(
        None, description="Agents exported by name (exact across workers); others as 'other'."
    )
    max_agents: int = Field(
        50, ge=1, description="Without an agent allow-list, agents past this fold into 'other'."
    )
    agent_label_salt_file: Path | None = Field(
        None,
        description="A file of secret bytes: per-agent figures are then labelled by a keyed "
        "hash of the agent id (the same on every worker with the same file), never the id.",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """A setting an earlier release had: one line saying what replaced it."""
        for old, new in RENAMED.items():
            if isinstance(data, dict) and old in data:
                msg = f"{old} is no longer a setting: {new}"
                raise ValueError(msg)
        return data

    @field_validator("bootstrap_servers")
    @classmethod
    def _some_server(cls, value: str) -> str:
        if not any(s.strip() for s in value.split(",")):
            msg = "no bootstrap server given"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _security_is_what_it_says(self) -> Settings:
        """A ``SASL_SSL://`` scheme that disagrees with ``security_protocol`` is an error,
        never dropped: a user who thinks security is on must not be wrong about it."""
        for server in (s.strip() for s in self.bootstrap_servers.split(",")):
            scheme, sep, _ = server.partition("://")
            if sep and scheme.upper() != self.security_protocol:
                msg = (
                    f"bootstrap_servers entry {server!r} says {scheme.upper()} but "
                    f"security_protocol is {self.security_protocol}: set security_protocol (and "
                    'its TLS/SASL settings: README "Connecting to a secured Kafka"), or give '
                    "host:port"
                )
                raise ValueError(msg)
        if self.security_protocol.startswith("SASL") and not self.sasl_username:
            msg = f"security_protocol {self.security_protocol} needs sasl_username"
            raise ValueError(msg)
        if self.security_protocol == "SASL_PLAINTEXT" and not self.allow_sasl_without_tls:
            msg = (
                "security_protocol SASL_PLAINTEXT sends the SASL exchange (with PLAIN, the "
                "password itself) and every record unencrypted: use SASL_SSL, or set "
                "allow_sasl_without_tls = true on a network you trust"
            )
            raise ValueError(msg)
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            msg = "ssl_keyfile is given without ssl_certfile (mutual TLS needs both)"
            raise ValueError(msg)
        secret_files = ("sasl_password_file", "agent_label_salt_file")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", *secret_files):
            path = getattr(self, name)
            if path is not None and not _offline and not Path(path).is_file():
                msg = f"{name} {path}: no such file"
                raise ValueError(msg)
        salt = self.agent_label_salt_file
        if salt is not None and not _offline and not Path(salt).read_bytes().strip():
            msg = f"agent_label_salt_file {salt} is empty: the agents' labels need a secret key"
            raise ValueError(msg)
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    @model_validator(mode="after")
    def _calendars_exist(self) -> Settings:
        for queue, q in self.queues.items():
            for name in [q.calendar, *q.channel_calendars.values()]:
                if name is not None and name not in self.calendars:
                    known = ", ".join(sorted(self.calendars)) or "none defined"
                    msg = (
                        f"queue {queue!r} names calendar {name!r}: no [calendars.{name}] ({known})"
                    )
                    raise ValueError(msg)
        return self

    @field_validator("first_response_target_seconds")
    @classmethod
    def _known_channels(cls, value: dict[str, float]) -> dict[str, float]:
        return _channels(value)

    @field_validator("windows", mode="before")
    @classmethod
    def _today_spans(cls, value: Any) -> Any:
        """``"today"`` is a span too: TOML has no null, so a file could not keep the window.
        Any other text that is no number is refused naming both forms."""
        if not isinstance(value, dict):
            return value
        spans = {name: None if span == TODAY else span for name, span in value.items()}
        for name, span in spans.items():
            if isinstance(span, str) and not _is_number(span):
                msg = f"window {name!r} spans {span!r}: {SPANS}"
                raise ValueError(msg)
        return spans

    @field_validator("windows")
    @classmethod
    def _positive_spans(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        if not value:
            msg = "at least one window is needed"
            raise ValueError(msg)
        for name, span in value.items():
            if span is not None and not (0 < span < float("inf")):
                msg = f"window {name!r} spans {span} s: {SPANS}"
                raise ValueError(msg)
            if name == TODAY and span is not None:  # the name alone makes it since midnight
                msg = f'window {TODAY!r} is since local midnight: its span must be "{TODAY}"'
                raise ValueError(msg)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_config_file))
        return tuple(sources)

    def policy(self) -> Policy:
        return Policy(
            first_response_targets={
                **DEFAULT_FIRST_RESPONSE_TARGETS,
                **self.first_response_target_seconds,
            },
            resolution_target_s=self.resolution_target_seconds,
            short_abandon_s=self.short_abandon_seconds,
            service_level=self.service_level,
            service_level_objective=self.service_level_objective,
            queues={
                name: QueueOverride(
                    first_response_target_s=dict(q.first_response_target_seconds),
                    resolution_target_s=q.resolution_target_seconds,
                    short_abandon_s=q.short_abandon_seconds,
                    service_level=q.service_level,
                    service_level_objective=q.service_level_objective,
                    calendar=q.calendar,
                    channel_calendars=dict(q.channel_calendars),
                )
                for name, q in self.queues.items()
            },
            calendars={name: c.calendar(name) for name, c in self.calendars.items()},
            recontact_days=tuple(self.recontact_days),
            fcr_days=self.fcr_days,
            complaint_tag=self.complaint_tag,
            per_agent=self.per_agent,
        )

    def kpi_settings(self) -> KpiSettings:
        """What the processors need; buckets are kept for the longest configured window
        ("today" needs the longest local day: 25 hours when the clocks go back)."""
        spans = self.windows.values()
        longest = max((span for span in spans if span is not None), default=0.0)
        if any(span is None for span in spans):
            longest = max(longest, LONGEST_LOCAL_DAY)
        return KpiSettings(
            policy=self.policy(),
            bucket_s=self.bucket_seconds,
            lateness_s=self.lateness_seconds,
            window_retention_s=longest,
            closed_keep_s=self.closed_ticket_keep_seconds,
            pack_closed_s=self.closed_ticket_pack_seconds,
        )

    @property
    def contacts_topic_name(self) -> str:
        """Namespaced by ``app_id`` (as Kafka Streams names its internal topics): two apps
        reading one input topic must never consume each other's contacts."""
        return self.contacts_topic or f"{self.app_id}-contacts"

    @property
    def bootstrap_list(self) -> list[str]:
        """``host:port`` of each server (an explicit ``PLAINTEXT://`` is dropped)."""
        servers = (s.strip() for s in self.bootstrap_servers.split(","))
        return [s.split("://", 1)[-1] for s in servers if s]


def load_settings(
    config_file: Path | str | None = None, *, offline: bool = False, **flags: Any
) -> Settings:
    """Build Settings; flags that are ``None`` (not given) do not override anything.
    ``offline``: for a command that never connects to Kafka (``report`` reusing the
    production settings file), whose TLS and SASL files need not be on this machine."""
    global _config_file, _offline
    path = config_file or os.environ.get("TICKETPULSE_CONFIG")
    if path is not None and not Path(path).is_file():
        msg = f"config file not found: {path}"
        raise ConfigError(msg)
    _config_file, _offline = (Path(path) if path else None), offline
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except tomllib.TOMLDecodeError as exc:
        msg = f"config file {path} is not valid TOML: {exc}"
        raise ConfigError(msg) from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        msg = f"invalid settings: {problems}"
        raise ConfigError(msg) from exc
    finally:
        _config_file, _offline = None, False
