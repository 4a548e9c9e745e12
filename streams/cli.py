"""``ticketpulse``: the command line. Each subcommand's --help explains it with examples."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from streams.config import DEFAULT_METRICS_PORT, ConfigError, Settings, load_settings
from streams.tools.broker.launcher import DEFAULT_KAFKA_VERSION

EXAMPLES = {
    "worker": """examples:
  ticketpulse worker                          # broker 127.0.0.1:9092, /metrics on :8790
  ticketpulse worker --bootstrap-servers k1:9092,k2:9092 --metrics-port 8792 \\
      --data-dir /var/lib/tp/w2 --instance-id w2
  TICKETPULSE_PARTITIONS=16 ticketpulse worker --config ticketpulse.toml

Run several workers with the same --app-id to share the partitions of the input topic;
each needs its own --metrics-port and --data-dir. Stop with Ctrl-C or SIGTERM: the worker
commits what it processed and leaves the consumer group cleanly.""",
    "broker": """examples:
  ticketpulse broker                        # .data/kafka, port 9092 (or a free one if taken)
  ticketpulse broker --port 19092 --data-dir /tmp/kafka
  ticketpulse broker --fetch-only           # download the jars (needs Java 17+ and Maven)
  ticketpulse broker --secure               # also a SASL_SSL listener (SCRAM, private CA)

Jars are cached in ~/.cache/ticketpulse (override with TICKETPULSE_CACHE). The data
directory is formatted once and reused, so topics and offsets survive a restart.""",
    "simulate": """examples:
  ticketpulse simulate                                  # live traffic into Kafka, ~20 events/s
  ticketpulse simulate --seed 7 --events 50000 --output day.jsonl --duplicates 0.03 \\
      --out-of-order 0.05 --late 0.01 --malformed 0.01
  ticketpulse simulate --rate 200 --speed 0 --events 100000   # as fast as Kafka takes it

--rate is the mean event rate in simulated time over a day (arrivals follow a
time-of-day curve, so mornings are busier). --speed maps simulated to wall time:
1 = live, 10 = ten times faster, 0 = no pacing. Output is identical for the same
--seed and --start.""",
    "replay": """examples:
  ticketpulse replay day.jsonl
  ticketpulse replay day.jsonl --topic ticket-events --rate 5000

Each line is produced as one record, keyed by its ticket_id so a ticket's events
keep their order on one partition. Lines that are not JSON objects with a ticket_id
are produced without a key (the worker will dead-letter them).""",
    "report": """examples:
  ticketpulse report day.jsonl > figures.json
  ticketpulse report day.jsonl --config ticketpulse.toml --timezone Europe/Paris
  ticketpulse report day.jsonl --interval 30m --format csv > intervals.csv
  ticketpulse report week.jsonl --interval 15m --from 2026-01-05 --to 2026-01-06T00:00Z

Computes the window and Now figures of a JSONL event log offline, with the same core
the workers use: one partition in file order, windows ending at the log's newest
event (the event clock). Prints JSON: per window and queue/channel, the additive
components and the figures they make (service level, abandonment rate, AHT, NPS ...).
Left out (the exporter has them): the first-response histogram and its percentiles,
the longest first response, and the repeat-customer counts.

With --interval, prints one row per interval x queue x channel instead (JSON, or CSV
for a spreadsheet): the same components and figures, intervals starting at local
midnight in --timezone; "complete" is false for an interval the log (or --from/--to)
begins or ends inside. --from and --to (ISO dates or times; a time without a zone is
UTC) cut the log by event time: events outside [from, to) are left out.

Lines the workers would dead-letter are counted by reason (records.rejected_<reason>,
and on stderr with what --from/--to left out); no record accepted exits 1.""",
    "topics": """examples:
  ticketpulse topics --partitions 8

Creates the input topic, the dead-letter topic and the contacts topic (internal: contacts
keyed by customer, for ACR) if they are missing, and prints each with its partitions.""",
    "wallboard": """examples:
  ticketpulse wallboard --workers http://127.0.0.1:8790          # one local worker
  ticketpulse wallboard --workers http://w1:8790,http://w2:8790 --wallboard-port 8080
  ticketpulse wallboard --prometheus http://prometheus:9090      # production
  TICKETPULSE_SOURCE_PASSWORD=... ticketpulse wallboard --workers https://w1:8790 \
      --source-cafile ca.pem --source-username wallboard           # workers behind a web config
  then open http://127.0.0.1:8791/?queues=sales,billing&window=1h on the TV

Serves a TV wallboard (/), the figures as JSON (/api/v1/figures) and as Server-Sent
Events (/api/v1/stream), read every --wallboard-refresh-seconds from the workers'
/metrics (summed exactly, as the PromQL of docs/metrics.md sums them) or from Prometheus.
URL parameters: queues, channels (comma separated), window (the short window, 15m).
docs/wallboard.md documents the JSON.""",
    "run": """examples:
  ticketpulse run                                       # what `make run` does
  KAFKA_BOOTSTRAP_SERVERS=kafka:9092 ticketpulse run    # use an existing cluster

Starts a local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set), creates the
topics, then one worker, its wallboard and the live traffic simulator; Ctrl-C stops all
of them. Open the wallboard URL it prints. Each one's output is kept whole in
.data/logs/<name>.log; here, every line but the worker's INFO ones (--verbose: all).""",
}


class _Parser(argparse.ArgumentParser):
    """A bad flag value is one line and a pointer to --help: argparse's own error printed
    the command's whole usage first (some 30 lines for ``worker``) above the line that
    matters."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nRun `{self.prog} --help` for its options.\n")


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=36)


def _settings_flags(parser: argparse.ArgumentParser, *, kafka: bool = True) -> None:
    """``--config``, and the Kafka ones unless the command never connects to Kafka (the
    wallboard, ``report``), whose help would list flags it ignores."""
    g = parser.add_argument_group("settings (flags > TICKETPULSE_* env > --config file > defaults)")
    g.add_argument("--config", type=Path, help="TOML settings file (env: TICKETPULSE_CONFIG)")
    if not kafka:
        return
    g.add_argument(
        "--bootstrap-servers",
        help="Kafka servers, comma separated (env KAFKA_BOOTSTRAP_SERVERS; default 127.0.0.1:9092)",
    )
    g.add_argument("--app-id", help="consumer group / Faust app id (default ticketpulse)")
    g.add_argument("--topic", help="input topic (default ticket-events)")
    g.add_argument("--dlq-topic", help="dead-letter topic (default ticket-events-dlq)")
    g.add_argument("--partitions", type=int, help="partitions of the input topic (default 8)")
    g.add_argument(
        "--connect-timeout-seconds",
        type=float,
        help="give up when no Kafka server answers within this (default 15)",
    )


def _metrics_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("/metrics")
    g.add_argument("--metrics-host", help="address of /metrics (default 127.0.0.1)")
    g.add_argument(
        "--metrics-port", type=int, help=f"port of /metrics (default {DEFAULT_METRICS_PORT})"
    )
    _web_config_flag(g)
    g.add_argument(
        "--metrics-cache-seconds",
        type=float,
        help="begin /metrics renderings at most this often; scrapes share them (default 1)",
    )
    g.add_argument(
        "--metrics-render-share",
        type=float,
        help="most of the event loop /metrics renderings may take, so a scrape storm cannot "
        "starve ingestion: a rendering that took c s is served for c / share s (default 0.05)",
    )
    g.add_argument(
        "--metrics-max-spacing-seconds",
        type=float,
        help="but never serve one rendering longer than this, so a scrape waits at most this "
        "plus one rendering; keep it well under Prometheus' scrape_timeout (default 2)",
    )


def _worker_flags(parser: argparse.ArgumentParser) -> None:
    _metrics_flags(parser)
    g = parser.add_argument_group("worker")
    g.add_argument("--data-dir", type=Path, help="table store directory (default .data/worker)")
    g.add_argument("--store", choices=["rocksdb", "memory"], help="table store (default rocksdb)")
    g.add_argument("--instance-id", help="static group member id (stable across restarts)")
    g.add_argument(
        "--session-timeout-seconds",
        type=float,
        help="a worker silent this long leaves the group and its partitions move (default 10)",
    )
    g.add_argument(
        "--future-tolerance-seconds",
        type=float,
        help="dead-letter events this far ahead of the clock (default 300)",
    )
    g.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="the worker's log level (default info)",
    )
    _tuning_flags(parser)
    _figure_flags(parser)


def _tuning_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("worker tuning (batches, fetches, memory)")
    g.add_argument(
        "--batch-records",
        type=int,
        help="records of one partition an agent processes as one batch, at most (default 5000): "
        "a batch is what one fetch brought, and each changed table key is written once per batch",
    )
    g.add_argument(
        "--fetch-min-bytes",
        type=int,
        help="the broker holds a fetch until this many bytes are there (default 65536): larger "
        "batches under live load, at up to --fetch-wait-seconds of added latency (Faust's: 1)",
    )
    g.add_argument(
        "--fetch-wait-seconds",
        type=float,
        help="the longest the broker holds a fetch for --fetch-min-bytes (default 0.1; Faust's: "
        "1.5)",
    )
    g.add_argument(
        "--fetch-partition-bytes",
        type=int,
        help="the most one fetch brings of one partition (default 262144; Faust's: 1048576): "
        "what a catching-up worker reads ahead and holds decoded, per partition of both topics",
    )
    g.add_argument(
        "--gc-freeze-seconds",
        type=float,
        help="every this long, freeze the objects that survived into the garbage collector's "
        "permanent generation, so its full collections skip them (default 0: never; the "
        "tables' rows are untracked, and a cycle frozen alive is never reclaimed)",
    )
    g.add_argument(
        "--malloc-mmap-threshold-kib",
        type=int,
        help="allocations this large (a big table's dict, a fetch) get their own mapping, "
        "returned to the system when freed (default 1024; 0: glibc's moving threshold, which "
        "left old dict tables resident in the heap: a ~14 MiB step in the soak)",
    )
    g.add_argument(
        "--stall-report-seconds",
        type=float,
        help="log a traceback of where the event loop was held once it is held this long "
        "(Faust's blocking detector; off by default)",
    )
    g.add_argument(
        "--store-memory-mb",
        type=int,
        help="RocksDB memory of the whole worker (default 24): one block cache shared by "
        "every table partition, with the write buffers charged to it",
    )
    g.add_argument(
        "--store-write-buffer-mb",
        type=int,
        help="RocksDB write buffer of each table partition, two at most (default 8): its "
        "flush size; together they stay within half of --store-memory-mb",
    )


def _figure_flags(parser: argparse.ArgumentParser) -> None:
    k = parser.add_argument_group("figures")
    k.add_argument(
        "--clock",
        choices=["wall", "event"],
        help="windows end now (wall, default) or at each partition's event-time watermark (event: "
        "replays, backfills, tests)",
    )
    k.add_argument(
        "--lateness-seconds", type=float, help="allowed out-of-order lateness (default 600)"
    )
    k.add_argument("--timezone", help='time zone of the "today" window (default UTC)')


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _settings(args: argparse.Namespace) -> Settings:
    names = [
        "bootstrap_servers",
        "app_id",
        "topic",
        "dlq_topic",
        "partitions",
        "metrics_host",
        "metrics_port",
        "metrics_cache_seconds",
        "metrics_render_share",
        "metrics_max_spacing_seconds",
        "web_config_file",
        "data_dir",
        "store",
        "instance_id",
        "session_timeout_seconds",
        "future_tolerance_seconds",
        "log_level",
        "batch_records",
        "fetch_min_bytes",
        "fetch_wait_seconds",
        "fetch_partition_bytes",
        "gc_freeze_seconds",
        "malloc_mmap_threshold_kib",
        "stall_report_seconds",
        "store_write_buffer_mb",
        "store_memory_mb",
        "clock",
        "lateness_seconds",
        "timezone",
        "connect_timeout_seconds",
        "wallboard_host",
        "wallboard_port",
        "wallboard_refresh_seconds",
    ]
    # a command without Kafka flags (``_settings_flags(kafka=False)``) never connects to Kafka
    offline = not hasattr(args, "bootstrap_servers") or getattr(args, "output", None) is not None
    return load_settings(args.config, offline=offline, **{n: getattr(args, n, None) for n in names})


class _Version(argparse.Action):
    """``--version``: the package's, Faust's and Python's, read when asked (the exporter's
    ``build_info``), not at every start of the CLI."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from streams.metrics.pipeline_exporter import build_info

        info = build_info()
        print(
            f"ticketpulse {info['version']} (faust-streaming {info['faust_version']},"
            f" Python {info['python_version']})"
        )
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ticketpulse",
        formatter_class=_formatter,
        description="Real-time customer-service KPIs from ticket events in Kafka, for Prometheus.",
        epilog="Run `ticketpulse COMMAND --help` for each command's options and examples.",
    )
    parser.add_argument(
        "--version", action=_Version, help="print the versions that /metrics' build_info shows"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=EXAMPLES[name],
            formatter_class=_formatter,
        )

    worker = command("worker", "Consume ticket events, dead-letter bad records, serve /metrics.")
    _settings_flags(worker)
    _worker_flags(worker)

    _broker_commands(command)
    _wallboard_command(command)
    _simulate_command(command)
    _log_commands(command)
    return parser


def _web_config_flag(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--web-config-file",
        type=Path,
        help="TLS and basic auth of /metrics and the wallboard: a Prometheus exporter-toolkit "
        "web config (tls_server_config, basic_auth_users with bcrypt hashes)",
    )


def _wallboard_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("wallboard")
    g.add_argument("--wallboard-host", help="address of the wallboard (default 127.0.0.1)")
    g.add_argument("--wallboard-port", type=int, help="port of the wallboard (default 8791)")
    g.add_argument(
        "--wallboard-refresh-seconds", type=float, help="read the source every N s (default 5)"
    )


def _wallboard_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    board = command("wallboard", "Serve a TV wallboard and a live JSON/SSE feed of the figures.")
    _settings_flags(board, kafka=False)
    _wallboard_flags(board)
    _web_config_flag(board)
    source = board.add_mutually_exclusive_group(required=True)
    source.add_argument("--workers", help="the workers' base URLs, comma separated")
    source.add_argument("--prometheus", help="Prometheus base URL (instant queries)")
    access = board.add_argument_group(
        "reaching a secured source (workers or Prometheus served with a web config)"
    )
    access.add_argument("--source-cafile", type=Path, help="CA file to verify https sources with")
    access.add_argument("--source-username", help="basic-auth user of the sources")
    access.add_argument(
        "--source-password-file",
        type=Path,
        help="file holding that user's password (or set $TICKETPULSE_SOURCE_PASSWORD; "
        "never a flag)",
    )


def _simulate_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """`simulate`: traffic shape and fault injection."""
    simulate = command(
        "simulate", "Generate realistic contact-centre traffic into Kafka or a JSONL file."
    )
    _settings_flags(simulate)
    g = simulate.add_argument_group("traffic")
    g.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    g.add_argument(
        "--rate", type=float, default=20.0, help="mean events per simulated second (default 20)"
    )
    g.add_argument(
        "--start",
        default=None,
        help="simulated start, an ISO date or time (UTC without a zone) or 'now' (default: "
        "now for Kafka, 2026-01-05T08:00:00Z for a file)",
    )
    g.add_argument(
        "--duration", type=float, default=None, help="stop after this many simulated seconds"
    )
    g.add_argument("--events", type=int, default=None, help="stop after this many records")
    g.add_argument(
        "--output", type=Path, default=None, help="write JSONL here instead of Kafka ('-' = stdout)"
    )
    g.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall second for Kafka; 0 = unpaced",
    )
    g.add_argument(
        "--pace",
        type=float,
        default=1.0,
        help="every duration of a contact (handling, customer replies, patience, survey "
        "delay) times this (default 1; 0.25: a centre four times as quick, whose backlog of "
        "open tickets settles within minutes, as `make soak` uses)",
    )
    g.add_argument(
        "--recontact-mean",
        type=float,
        default=129_600.0,
        help="mean seconds before a customer comes back with a new ticket (default 1.5 days)",
    )
    g.add_argument(
        "--reopen-mean",
        type=float,
        default=86_400.0,
        help="mean seconds before a resolved ticket is reopened (default 1 day)",
    )
    f = simulate.add_argument_group("fault injection (fractions of records, 0-1)")
    f.add_argument(
        "--duplicates",
        type=_fraction,
        default=0.0,
        help="exact re-sends of an event (same event_id)",
    )
    f.add_argument(
        "--out-of-order", type=_fraction, default=0.0, help="delivered late but within --lateness"
    )
    f.add_argument(
        "--late", type=_fraction, default=0.0, help="delivered after more than --lateness"
    )
    f.add_argument(
        "--malformed", type=_fraction, default=0.0, help="extra invalid records (dead-lettered)"
    )
    f.add_argument(
        "--lateness", type=float, default=600.0, help="the worker's allowed lateness in seconds"
    )


def _fraction(text: str) -> float:
    """A share of records, 0 to 1 (argparse prints the message beside the flag)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        msg = f"{text!r} is not a fraction between 0 and 1"
        raise argparse.ArgumentTypeError(msg)
    return value


def _broker_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """`broker` and `topics`."""
    broker = command(
        "broker", "Run a local single-node Apache Kafka broker (KRaft) in the foreground."
    )
    broker.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".data/kafka"),
        help="broker storage, kept across starts (default .data/kafka)",
    )
    broker.add_argument("--port", type=int, default=None, help="client port (default 9092 if free)")
    broker.add_argument(
        "--kafka-version",
        default=None,
        help=f"Apache Kafka version from Maven Central (default {DEFAULT_KAFKA_VERSION})",
    )
    broker.add_argument(
        "--fetch-only", action="store_true", help="only download the jars, then exit"
    )
    broker.add_argument(
        "--secure",
        action="store_true",
        help="also a SASL_SSL listener: a private CA and a SCRAM user made at first start "
        "(DATA_DIR/tls); prints the settings that connect to it",
    )

    topics = command("topics", "Create the input, dead-letter and contacts topics.")
    _settings_flags(topics)


def _log_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """`replay`, `report` and `run`."""
    replay = command(
        "replay", "Produce a JSONL event log into the input topic, keyed by ticket_id."
    )
    replay.add_argument("file", type=Path, help="JSONL file, one event per line")
    _settings_flags(replay)
    replay.add_argument(
        "--rate", type=float, default=0.0, help="records per second (default: as fast as possible)"
    )
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")

    rep = command("report", "Print the figures of a JSONL event log as JSON, computed offline.")
    rep.add_argument("file", type=Path, help="JSONL file, one event per line")
    _settings_flags(rep, kafka=False)
    rep.add_argument("--lateness-seconds", type=float, help="allowed lateness (default 600)")
    rep.add_argument(
        "--timezone", help='time zone of the "today" window and the intervals (default UTC)'
    )
    rep.add_argument(
        "--interval", help="one row per interval (15m, 30m, 1h ...) instead of the windows"
    )
    rep.add_argument(
        "--format", choices=["json", "csv"], default="json", help="output (csv needs --interval)"
    )
    rep.add_argument(
        "--from",
        dest="since",
        help="leave out events before this instant (ISO; UTC without a zone)",
    )
    rep.add_argument(
        "--to", dest="until", help="leave out events from this instant on (ISO; UTC without a zone)"
    )
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")

    run = command("run", "Local demo: broker, topics, one worker and live simulated traffic.")
    _settings_flags(run)
    _worker_flags(run)
    _wallboard_flags(run)
    run.add_argument(
        "--rate", type=float, default=20.0, help="simulated events per second (default 20)"
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="show every line of the children's output here, the worker's INFO lines too "
        "(always in .data/logs/<name>.log)",
    )


def _start_time(text: str | None, to_file: bool) -> float:
    if text is None:
        text = "2026-01-05T08:00:00Z" if to_file else "now"
    if text == "now":
        return time.time()
    try:
        return _epoch(text)
    except ValueError:
        msg = f"--start: {text!r} is not 'now' or an ISO date or time (e.g. 2026-01-05T08:00Z)"
        raise ConfigError(msg) from None


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.tools.produce import make_producer, paced, produce
    from streams.tools.simulator import SimParams, generate

    to_file = args.output is not None
    params = SimParams(
        seed=args.seed,
        start=_start_time(args.start, to_file),
        rate=args.rate,
        duration=args.duration,
        max_events=args.events,
        duplicates=args.duplicates,
        out_of_order=args.out_of_order,
        late=args.late,
        malformed=args.malformed,
        lateness_s=args.lateness,
        key_mismatch=not to_file,
        recontact_mean_s=args.recontact_mean,
        reopen_mean_s=args.reopen_mean,
        pace=args.pace,
    )
    if params.duration is None and params.max_events is None and to_file:
        print("error: writing a file needs --events or --duration", file=sys.stderr)
        return 2
    if to_file:
        return _simulate_to_file(generate(params), params, args.output)
    settings = _settings(args)
    producer = make_producer(settings)
    records = paced(generate(params), params.start, args.speed)
    summary = produce(
        producer, settings.topic, records, total=params.max_events, description="simulate"
    )
    producer.close()
    print(summary.line("simulate"), file=sys.stderr)
    return 1 if summary.failed else 0


def _simulate_to_file(records: Iterator[Any], params: Any, output: Path) -> int:
    """Write the records as JSONL (``-``: stdout), then say what was written by kind; a
    file that cannot be written is one line, exit 2 (a missing directory, a full disk)."""
    from tqdm import tqdm

    to_stdout = str(output) == "-"
    kinds: Counter[str] = Counter()
    try:
        out = sys.stdout.buffer if to_stdout else output.open("wb")
        with tqdm(total=params.max_events, desc="simulate", unit="rec", disable=to_stdout) as bar:
            for record in records:
                out.write(record.value + b"\n")
                kinds[record.kind] += 1
                bar.update(1)
        if not to_stdout:
            out.close()
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 2
    if not to_stdout:
        shares = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        print(f"wrote {kinds.total()} records to {output} ({shares})", file=sys.stderr)
    if params.late and not kinds["late"]:
        print(
            f"note: --late {params.late} gave no late record: a late one comes 1.5-3x"
            f" --lateness ({params.lateness_s * 1.5:.0f}-{params.lateness_s * 3:.0f} s)"
            " after its event, past the end of this log; raise --events or --duration",
            file=sys.stderr,
        )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.tools.produce import key_of, make_producer, produce, read_jsonl

    if not args.file.is_file():
        print(f"error: no such file: {args.file}", file=sys.stderr)
        return 2
    settings = _settings(args)
    with args.file.open("rb") as handle:
        total = sum(1 for line in handle if line.strip())
    producer = make_producer(settings)
    records = ((key_of(line), line) for line in read_jsonl(args.file))
    summary = produce(
        producer,
        settings.topic,
        records,
        total=total,
        description=f"replay {args.file.name}",
        rate=args.rate,
        progress=not args.no_progress,
    )
    producer.close()
    print(summary.line(f"replayed {args.file} into {settings.topic}"), file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    import orjson

    from streams.tools.intervals import interval_columns, interval_report, parse_interval, to_csv
    from streams.tools.report import report

    if not args.file.is_file():
        print(f"error: no such file: {args.file}", file=sys.stderr)
        return 2
    try:
        between = (_instant(args.since), _instant(args.until))
        interval = parse_interval(args.interval) if args.interval else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "csv" and interval is None:
        print("error: --format csv needs --interval (e.g. --interval 30m)", file=sys.stderr)
        return 2
    since, until = between
    if since is not None and until is not None and since >= until:
        print(f"error: --from {args.since} is not before --to {args.until}", file=sys.stderr)
        return 2
    settings, lines = _settings(args), _progress_lines(args.file, not args.no_progress)
    if interval is None:
        result = report(lines, settings, now=time.time(), between=between)
        sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
        return _said_what_was_left_out(result["records"])
    try:
        counts, rows = interval_report(lines, settings, time.time(), interval, between)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "csv":
        sys.stdout.writelines(to_csv(rows, interval_columns(settings)))
    else:
        doc = {"records": counts, "interval_seconds": interval, "rows": rows}
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"{len(rows)} interval rows from {counts['records']} records", file=sys.stderr)
    return _said_what_was_left_out(counts)


def _said_what_was_left_out(counts: dict[str, int]) -> int:
    """Say on stderr which records no figure holds, by reason; 1 when none was accepted
    (a file of another format, or --from/--to around no event): an empty report is no
    answer."""
    reasons = [
        f"{key.removeprefix('rejected_')} {n}"
        for key, n in counts.items()
        if key.startswith("rejected_")
    ]
    left_out = []
    if reasons:
        why = ", ".join(reasons)
        left_out.append(f"{counts['rejected']} rejected ({why}: docs/events.md, Dead letters)")
    if counts.get("outside_range"):
        left_out.append(f"{counts['outside_range']} outside --from/--to")
    if left_out:
        print(f"left out: {'; '.join(left_out)}", file=sys.stderr)
    if not counts["accepted"]:
        none = f"none of the {counts['records']} records" if counts["records"] else "no record"
        print(f"error: {none} was accepted: the report is empty", file=sys.stderr)
        return 1
    return 0


def _instant(text: str | None) -> float | None:
    """``--from``/``--to``: an ISO date or time as epoch seconds, or None when not given."""
    if text is None:
        return None
    try:
        return _epoch(text)
    except ValueError:
        msg = f"{text!r} is not an ISO date or time (e.g. 2026-01-05 or 2026-01-05T08:00Z)"
        raise ValueError(msg) from None


def _epoch(text: str) -> float:
    """An ISO date or time as epoch seconds; one without a zone is UTC, for every command
    (``simulate --start`` read it as the machine's local time until 2026-12-06)."""
    parsed = datetime.fromisoformat(text.upper())
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _progress_lines(path: Path, progress: bool) -> Iterator[bytes]:
    """The file's lines, with a progress bar in bytes on a terminal (big files take a while)."""
    from tqdm import tqdm

    from streams.tools.produce import read_jsonl

    with tqdm(
        total=path.stat().st_size,
        desc=f"reading {path.name}",
        unit="B",
        unit_scale=True,
        disable=None if progress else True,
    ) as bar:
        for line in read_jsonl(path):
            bar.update(len(line) + 1)
            yield line


def cmd_broker(args: argparse.Namespace) -> int:
    from streams.tools.broker import launcher

    version = args.kafka_version or launcher.DEFAULT_KAFKA_VERSION
    if args.fetch_only:
        print(launcher.fetch_jars(version))
        return 0
    port = args.port
    if port is None and not (args.data_dir / "ports.json").exists():
        port = 9092 if launcher.port_is_free(9092) else None
    broker = launcher.start(args.data_dir, port=port, version=version, secure=args.secure)
    print(
        f"Kafka {version} ready on {broker.bootstrap} (data: {broker.data_dir}); Ctrl-C stops it."
    )
    if broker.secure is not None:
        tls = broker.secure
        print(
            f"SASL_SSL listener on {broker.secure_bootstrap}; settings that connect to it:\n"
            f'  bootstrap_servers = "{broker.secure_bootstrap}"\n'
            f'  security_protocol = "SASL_SSL"\n  sasl_mechanism = "SCRAM-SHA-512"\n'
            f'  sasl_username = "{tls.user}"\n  sasl_password_file = "{tls.password_file}"\n'
            f'  ssl_cafile = "{tls.ca_file}"'
        )
    _wait_for_signal(broker.alive)
    code = broker.stop()
    print(f"broker stopped (exit {code})")
    return 0


def _wait_for_signal(alive: Callable[[], bool]) -> None:
    stop = {"now": False}

    def handler(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop["now"] and alive():
        time.sleep(0.5)


def _base_url(text: str, flag: str, username: str | None) -> str:
    """An http(s) URL, refused at once otherwise: without its scheme the board would only
    ever report that no source answered. No credentials in it (they would show on the board,
    in its log and in ``ps``), and basic auth (``username``) over https or to this machine
    only: over plain http anyone on the path reads the password."""
    url = text.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or "://" not in url.rstrip(":/"):
        rest = text.strip().split("://")[-1].strip("/")
        hint = f" (write http://{rest})" if rest and rest != "http:" else ""
        msg = f"{flag}: {text.strip()!r} is not an http(s) URL{hint}"
        raise ConfigError(msg)
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        msg = (
            f"{flag}: a URL with credentials would show them on the board, in its log and in "
            "the process list: give --source-username and $TICKETPULSE_SOURCE_PASSWORD instead"
        )
        raise ConfigError(msg)
    if username and parts.scheme == "http" and parts.hostname not in LOOPBACK:
        msg = (
            f"--source-username over plain http would send the password in the clear to "
            f"{parts.hostname}: use an https:// source (and --source-cafile)"
        )
        raise ConfigError(msg)
    return url


def cmd_wallboard(args: argparse.Namespace) -> int:
    from streams.metrics.web_config import load_web_config
    from streams.runtime.datadir import check_port_free
    from streams.wallboard.app import Board, serve
    from streams.wallboard.sources import PrometheusSource, Source, SourceAccess, WorkersSource

    settings = _settings(args)
    access = SourceAccess.load(args.source_cafile, args.source_username, args.source_password_file)
    source: Source
    if args.workers:
        user = args.source_username
        urls = [_base_url(u, "--workers", user) for u in args.workers.split(",") if u.strip()]
        if not urls:
            msg = "--workers: no URL given (e.g. http://127.0.0.1:8790)"
            raise ConfigError(msg)
        metrics = [u if u.endswith("/metrics") else f"{u}/metrics" for u in urls]
        source = WorkersSource(metrics, access=access)
    else:
        url = _base_url(args.prometheus, "--prometheus", args.source_username)
        source = PrometheusSource(url, access=access)
    check_port_free(settings.wallboard_host, settings.wallboard_port, "wallboard")
    board = Board(source, settings.wallboard_refresh_seconds, list(settings.windows))
    serve(
        board,
        settings.wallboard_host,
        settings.wallboard_port,
        load_web_config(settings.web_config_file),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "worker":
            from streams.runtime.launch import run_worker

            run_worker(_settings(args))
            return 0
        if args.command == "topics":
            from streams.runtime.topics import ensure_topics

            for name, parts in ensure_topics(_settings(args)).items():
                print(f"{name}: {parts} partitions")
            return 0
        if args.command == "wallboard":
            return cmd_wallboard(args)
        if args.command == "run":
            from streams.tools.devstack import run_stack

            return run_stack(args, _settings(args))
        handlers = {
            "simulate": cmd_simulate,
            "replay": cmd_replay,
            "broker": cmd_broker,
            "report": cmd_report,
        }
        return handlers[args.command](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from streams.runtime.datadir import DataDirInUseError, PortInUseError
        from streams.runtime.launch import TopicMismatchError
        from streams.runtime.topics import BrokerUnreachableError
        from streams.tools.broker.launcher import BrokerError

        known = (BrokerError, TopicMismatchError, BrokerUnreachableError)
        if isinstance(exc, (*known, DataDirInUseError, PortInUseError)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
