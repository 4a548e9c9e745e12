"""Run a real single-node Apache Kafka (KRaft) broker from Maven Central jars.

Used by ``make run``, by the pytest session fixture and by ``ticketpulse broker``.
Jars are cached outside git; storage is formatted once and survives restarts;
readiness is a TCP connect while the process is alive; shutdown is SIGTERM, then
SIGKILL; the JVM is tied to its parent with PR_SET_PDEATHSIG so no stray Java
process outlives a crashed test run.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from streams.runtime.processes import die_with_parent, stop
from streams.tools.broker.tls import SecureListener, make_listener

DEFAULT_KAFKA_VERSION = "4.1.0"
POM = Path(__file__).with_name("pom.xml")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.ready.name = kafka.server.KafkaRaftServer
logger.ready.level = INFO
"""

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
{listeners}controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={logs}
num.partitions=1
auto.create.topics.enable=true
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
log.cleaner.dedupe.buffer.size=33554432
"""


class BrokerError(RuntimeError):
    """The local broker could not be fetched or started; the message says why."""


def cache_dir() -> Path:
    """Where jars are cached: ``$TICKETPULSE_CACHE`` or ``~/.cache/ticketpulse``."""
    base = os.environ.get("TICKETPULSE_CACHE") or Path.home() / ".cache" / "ticketpulse"
    return Path(base)


def fetch_jars(version: str = DEFAULT_KAFKA_VERSION, *, quiet: bool = False) -> Path:
    """Download Kafka and its runtime dependencies once; return the folder of jars."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    done = libs / ".complete"
    if done.exists():
        return libs
    mvn = shutil.which("mvn")
    java = shutil.which("java")
    if mvn is None or java is None:
        msg = "the local Kafka broker needs Java 17+ and Maven on PATH (apt-get install maven)"
        raise BrokerError(msg)
    libs.mkdir(parents=True, exist_ok=True)
    build_dir = libs.parent / "build"
    cmd = [
        mvn,
        "-B",
        "-f",
        str(POM),
        "package",
        f"-Dkafka.version={version}",
        f"-Dkafka.libs.dir={libs}",
        f"-Dproject.build.directory={build_dir}",
    ]
    if quiet:
        cmd.insert(2, "-q")
    if not quiet:
        print(f"Fetching Apache Kafka {version} jars from Maven Central into {libs} ...")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        msg = f"fetching Kafka {version} jars failed (mvn exit {result.returncode}):\n{tail}"
        raise BrokerError(msg)
    done.write_text(version)
    return libs


def new_cluster_id() -> str:
    """A Kafka-style base64url UUID that never starts with '-' (the storage tool would read
    it as an option; Kafka's own Uuid.randomUuid avoids that prefix for the same reason)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """As the broker would bind it: the JVM's server sockets set SO_REUSEADDR, so a port
    with connections of a stopped broker in TIME_WAIT is free (without the option it read
    taken, and ``make run`` moved its broker off 9092 for good)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Broker:
    """A running broker process; ``bootstrap`` is what clients connect to."""

    port: int
    controller_port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    secure: SecureListener | None = None  # the SASL_SSL listener, when started with one

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secure_bootstrap(self) -> str:
        if self.secure is None:
            msg = "this broker was started without a SASL_SSL listener (secure=True)"
            raise BrokerError(msg)
        return f"127.0.0.1:{self.secure.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Controlled shutdown (SIGTERM), then SIGKILL after ``timeout`` seconds."""
        return stop(self.process, timeout)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no broker log)"


def _choose_ports(data_dir: Path, port: int | None) -> tuple[int, int, int]:
    """Reuse the ports of an earlier run of this data dir when they are free: (client,
    controller, SASL_SSL)."""
    state = data_dir / "ports.json"
    names = ("port", "controller_port", "secure_port")
    if state.exists():
        saved = json.loads(state.read_text())
        if (
            (port is None or port == saved["port"])
            and all(name in saved for name in names)
            and all(port_is_free(saved[name]) for name in names)
        ):
            return int(saved["port"]), int(saved["controller_port"]), int(saved["secure_port"])
    chosen = (port or free_port(), free_port(), free_port())
    state.write_text(json.dumps(dict(zip(names, chosen, strict=True))))
    return chosen


def _listeners(port: int, cport: int, secure: SecureListener | None) -> str:
    """The listener lines of server.properties: PLAINTEXT, CONTROLLER and maybe SASL_SSL."""
    listeners = [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{cport}"]
    advertised = [f"PLAINTEXT://127.0.0.1:{port}"]
    protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    if secure is not None:
        listeners.append(f"SASL_SSL://127.0.0.1:{secure.port}")
        advertised.append(f"SASL_SSL://127.0.0.1:{secure.port}")
        protocols.append("SASL_SSL:SASL_SSL")
    return (
        f"listeners={','.join(listeners)}\n"
        f"advertised.listeners={','.join(advertised)}\n"
        f"listener.security.protocol.map={','.join(protocols)}\n"
    )


def _format(
    data_dir: Path,
    classpath: str,
    jvm_log: list[str],
    props: Path,
    listener: SecureListener | None,
) -> None:
    """Format the storage (a no-op once formatted: ``-g``), with the SCRAM users if any.
    The tool's arguments go in a Java argument file readable by its owner alone, removed
    after: the SCRAM password never appears on a command line."""
    cluster_file = data_dir / "cluster.id"
    if not cluster_file.exists():
        cluster_file.write_text(new_cluster_id())
    storage = ["kafka.tools.StorageTool", "format", "-g", "-t", cluster_file.read_text().strip()]
    storage += ["-c", str(props), *(listener.format_args() if listener else [])]
    argfile = data_dir / "format.args"
    try:
        _write_owner_only(argfile, "\n".join(_java_quoted(arg) for arg in storage) + "\n")
        fmt = subprocess.run(
            ["java", "-Xmx256m", *jvm_log, "-cp", classpath, f"@{argfile}"],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        argfile.unlink(missing_ok=True)
    if fmt.returncode != 0:
        msg = f"formatting Kafka storage in {data_dir} failed:\n{fmt.stdout}{fmt.stderr}"
        raise BrokerError(msg)


def _write_owner_only(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read, made so before it holds a byte."""
    path.touch(mode=0o600)
    path.chmod(0o600)  # an existing file keeps its mode on touch
    path.write_text(text)


def _java_quoted(arg: str) -> str:
    """One argument of a Java ``@argfile``: quoted, its backslashes, quotes and line breaks
    escaped (a line break ends an argument even inside quotes)."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def start(
    data_dir: Path,
    *,
    port: int | None = None,
    version: str = DEFAULT_KAFKA_VERSION,
    heap: str = "512m",
    timeout: float = READY_TIMEOUT_S,
    secure: bool = False,
) -> Broker:
    """Format ``data_dir`` once if needed, start the broker and wait until it accepts clients.

    ``secure``: also a SASL_SSL listener (SCRAM users, a private CA: ``broker.tls``)."""
    libs = fetch_jars(version)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port, cport, sport = _choose_ports(data_dir, port)
    listener = make_listener(data_dir / "tls", sport) if secure else None
    props = data_dir / "server.properties"
    text = SERVER_PROPERTIES.format(
        listeners=_listeners(port, cport, listener), cport=cport, logs=data_dir / "logs"
    )
    # it holds the keystore's password when the listener is secure
    _write_owner_only(props, text + (listener.properties() if listener else ""))
    log4j = data_dir / "log4j2.properties"
    log4j.write_text(LOG4J2)
    classpath = f"{libs}/*"
    jvm_log = [f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={data_dir}"]
    _format(data_dir, classpath, jvm_log, props, listener)
    log_path = data_dir / "broker.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                "java",
                f"-Xms{heap}",
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true",
                *jvm_log,
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # its own session: a terminal's Ctrl-C reaches the worker first, and whoever started
            # the broker stops it last (it still dies with its parent, see die_with_parent)
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    broker = Broker(port, cport, data_dir, process, listener)
    try:
        wait_ready(broker, timeout)
    except BaseException:
        broker.stop(timeout=5)
        raise
    return broker


def wait_ready(broker: Broker, timeout: float = READY_TIMEOUT_S) -> None:
    """Ready = the PLAINTEXT socket accepts a connection while the JVM is alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not broker.alive():
            msg = (
                f"Kafka exited with code {broker.process.returncode} during startup; "
                f"last lines of {broker.log_path}:\n{log_tail(broker.log_path)}"
            )
            raise BrokerError(msg)
        try:
            socket.create_connection(("127.0.0.1", broker.port), timeout=1).close()
        except OSError:
            time.sleep(0.2)
        else:
            return
    msg = (
        f"Kafka did not accept connections on port {broker.port} within {timeout:.0f}s; "
        f"last lines of {broker.log_path}:\n{log_tail(broker.log_path)}"
    )
    raise BrokerError(msg)
