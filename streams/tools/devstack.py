"""``make run``: a local broker, the topics, one worker and live simulated traffic.

Each part is a child process; Ctrl-C (or SIGTERM) stops them in reverse order:
simulator, worker (which commits and leaves the group), then the broker. Each child's whole
output goes to ``.data/logs/<name>.log``; the console shows all of it but the worker's
routine INFO lines (some 250 at start-up, with Faust's tables), unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from streams.config import Settings
from streams.runtime.processes import stop
from streams.runtime.topics import ensure_topics
from streams.tools.broker import launcher

DATA = Path(".data")
LOGS = DATA / "logs"
# a log line at INFO or DEBUG in Faust's format (only the worker logs so), and the ASCII tables
# Faust logs with them
ROUTINE = re.compile(rb"^\[[^]]*\] \[\d+\] \[(INFO|DEBUG)\] |^[+|]")


@dataclass
class Child:
    """A child process, and the thread that pumps its output to its log (and the console)."""

    name: str
    proc: subprocess.Popen[bytes]
    pump: threading.Thread

    def drain(self, timeout: float = 5.0) -> None:
        """Once it has exited: wait until its last lines are in its log and on the console."""
        if self.proc.poll() is not None:
            self.pump.join(timeout)

    def tail(self, lines: int = 15) -> None:
        """The last lines of its log: why it stopped, without scrolling back."""
        self.drain()
        path = LOGS / f"{self.name}.log"
        if path.exists():
            last = path.read_bytes().decode(errors="replace").splitlines()[-lines:]
            print(f"--- last lines of {path} ---", *last, "---", sep="\n", file=sys.stderr)


def _spawn(name: str, cmd: list[str], env: dict[str, str], verbose: bool) -> Child:
    """Start a child with its output pumped to its log file (and the console)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None  # PIPE was asked for
    pump = threading.Thread(
        target=_pump, args=(name, proc.stdout, LOGS / f"{name}.log", verbose), daemon=True
    )
    pump.start()
    return Child(name, proc, pump)


def _pump(name: str, stream: IO[bytes], path: Path, verbose: bool) -> None:
    """Every line to the log file; to the console too unless it is routine. Reads to the
    end whatever fails: a child whose pipe is not read blocks once it is full (the worker's
    event loop with it), and one stopping would write into a closed pipe."""
    log: IO[bytes] | None = path.open("wb")
    for line in iter(stream.readline, b""):
        if log is not None:
            try:
                log.write(line)
                log.flush()
            except OSError as exc:  # a full disk: the console still has the lines
                _show("make run", f"cannot write {path} ({exc}); logging stops".encode())
                log = None
        if verbose or not ROUTINE.match(line):
            _show(name, line)
    if log is not None:
        log.close()


def _show(name: str, line: bytes) -> None:
    """One line on the console; one the console cannot take (a closed pipe, an encoding
    without its characters) is lost there, never in the log."""
    text = line.decode(errors="replace").rstrip("\n")
    with contextlib.suppress(OSError, UnicodeError, ValueError):
        print(f"{name:9} | {text}", flush=True)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    """True once ``url`` answers 200 (a 503 is an ``HTTPError``, an ``OSError``: waited on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we built
                return True
        except OSError:
            time.sleep(0.5)
    return False


def _stop(proc: subprocess.Popen[bytes], name: str, timeout: float = 30) -> None:
    if stop(proc, timeout) == -signal.SIGKILL:
        print(f"{name} did not stop in {timeout:.0f}s; it was killed", file=sys.stderr)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def hold_signals_while_stopping() -> None:
    """A second Ctrl-C (or one the terminal and ``timeout`` both pass on) must not cut the
    stop short: it used to end this process mid-stop, and the broker with it while the
    worker was still leaving the group (a 30 s wait, then a forced exit). Each stop is
    bounded (``_stop``), so the order is kept and the user is told once."""
    told = False

    def still_stopping(signum: int, frame: object) -> None:
        nonlocal told
        if not told:
            print("still stopping: the worker, then the broker (a few seconds)", flush=True)
            told = True

    signal.signal(signal.SIGINT, still_stopping)
    signal.signal(signal.SIGTERM, still_stopping)


def run_stack(args: argparse.Namespace, settings: Settings) -> int:
    # Install our own handlers: a shell may start us with SIGINT ignored (background jobs).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    broker = None
    env = dict(os.environ)
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and args.bootstrap_servers is None:
        print("Starting the local Kafka broker (data in .data/kafka) ...")
        first_run = not (DATA / "kafka" / "ports.json").exists()
        port = 9092 if first_run and launcher.port_is_free(9092) else None
        broker = launcher.start(DATA / "kafka", port=port)
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
        settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap})
    children: list[Child] = []
    try:
        for name, parts in ensure_topics(settings).items():
            print(f"topic {name}: {parts} partitions")
        if not _start_children(children, settings, env, args):
            return 1
        while all(child.proc.poll() is None for child in children):
            time.sleep(0.5)
        for child in children:
            if child.proc.poll() is not None:
                code = child.proc.returncode
                print(f"error: {child.name} exited with code {code}", file=sys.stderr)
                child.tail()
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        hold_signals_while_stopping()
        for child in reversed(children):
            _stop(child.proc, child.name)
            child.drain()
        if broker is not None:
            broker.stop()
            print("stopped broker")


def _start_children(
    children: list[Child], settings: Settings, env: dict[str, str], args: argparse.Namespace
) -> bool:
    """The worker, its wallboard and the simulator; False when one did not come up."""
    exe = [sys.executable, "-m", "streams.cli"]
    common = ["--bootstrap-servers", settings.bootstrap_servers, "--topic", settings.topic]
    common += ["--dlq-topic", settings.dlq_topic, "--partitions", str(settings.partitions)]
    metrics = f"http://{settings.metrics_host}:{settings.metrics_port}"
    worker = [*exe, "worker", *common, "--metrics-host", settings.metrics_host]
    worker += ["--metrics-port", str(settings.metrics_port), "--data-dir", str(settings.data_dir)]
    children.append(_spawn("worker", worker, env, args.verbose))
    # ready (partitions assigned, tables recovered), not merely serving: with --verbose the
    # banner below then follows Faust's start-up tables instead of drowning among them
    if not _wait_http(f"{metrics}/ready", 120, children[-1].proc):
        print("error: the worker did not become ready", file=sys.stderr)
        children[-1].tail()
        return False
    board = f"http://{settings.wallboard_host}:{settings.wallboard_port}/"
    wallboard = [*exe, "wallboard", "--workers", metrics]
    wallboard += ["--wallboard-host", settings.wallboard_host]
    wallboard += ["--wallboard-port", str(settings.wallboard_port)]
    children.append(_spawn("wallboard", wallboard, env, args.verbose))
    if not _wait_http(board, 30, children[-1].proc):
        print("error: the wallboard did not come up", file=sys.stderr)
        children[-1].tail()
        return False
    simulate = [*exe, "simulate", *common, "--rate", str(args.rate), "--start", "now"]
    children.append(_spawn("simulator", [*simulate, "--speed", "1"], env, args.verbose))
    print(
        "\nticketpulse is running:\n"
        f"  wallboard        {board}   <- open this\n"
        f"  Kafka bootstrap  {settings.bootstrap_servers}\n"
        f"  metrics          {metrics}/metrics\n"
        f"  readiness        {metrics}/ready\n"
        f"  topics           {settings.topic} -> {settings.dlq_topic} (dead letters)\n"
        f"  logs             {LOGS}/{{worker,wallboard,simulator}}.log (--verbose: all here)\n"
        "Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    return True
