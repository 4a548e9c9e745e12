"""``make run``: a local broker, the topics, one worker and live simulated traffic.

Each part is a child process; Ctrl-C (or SIGTERM) stops them in reverse order:
simulator, worker (which commits and leaves the group), then the broker.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streams.config import Settings
from streams.runtime.processes import stop
from streams.runtime.topics import ensure_topics
from streams.tools.broker import launcher

DATA = Path(".data")


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
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for name, parts in ensure_topics(settings).items():
            print(f"topic {name}: {parts} partitions")
        if not _start_children(children, settings, env, args.rate):
            return 1
        while all(proc.poll() is None for _, proc in children):
            time.sleep(0.5)
        for name, proc in children:
            if proc.poll() is not None:
                print(f"error: {name} exited with code {proc.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        hold_signals_while_stopping()
        for name, proc in reversed(children):
            _stop(proc, name)
        if broker is not None:
            broker.stop()
            print("stopped broker")


def _start_children(
    children: list[tuple[str, subprocess.Popen[bytes]]],
    settings: Settings,
    env: dict[str, str],
    rate: float,
) -> bool:
    """The worker, its wallboard and the simulator; False when one did not come up."""
    exe = [sys.executable, "-m", "streams.cli"]
    common = ["--bootstrap-servers", settings.bootstrap_servers, "--topic", settings.topic]
    common += ["--dlq-topic", settings.dlq_topic, "--partitions", str(settings.partitions)]
    metrics = f"http://{settings.metrics_host}:{settings.metrics_port}"
    worker = [*exe, "worker", *common, "--metrics-host", settings.metrics_host]
    worker += ["--metrics-port", str(settings.metrics_port), "--data-dir", str(settings.data_dir)]
    children.append(("worker", subprocess.Popen(worker, env=env)))
    # ready (partitions assigned, tables recovered), not merely serving: the banner below
    # then follows Faust's start-up tables instead of drowning among them
    if not _wait_http(f"{metrics}/ready", 120, children[-1][1]):
        print("error: the worker did not become ready; see its log above", file=sys.stderr)
        return False
    board = f"http://{settings.wallboard_host}:{settings.wallboard_port}/"
    wallboard = [*exe, "wallboard", "--workers", metrics]
    wallboard += ["--wallboard-host", settings.wallboard_host]
    wallboard += ["--wallboard-port", str(settings.wallboard_port)]
    children.append(("wallboard", subprocess.Popen(wallboard, env=env)))
    if not _wait_http(board, 30, children[-1][1]):
        print("error: the wallboard did not come up; see its log above", file=sys.stderr)
        return False
    simulate = [*exe, "simulate", *common, "--rate", str(rate), "--start", "now", "--speed", "1"]
    children.append(("simulator", subprocess.Popen(simulate, env=env)))
    print(
        "\nticketpulse is running:\n"
        f"  wallboard        {board}   <- open this\n"
        f"  Kafka bootstrap  {settings.bootstrap_servers}\n"
        f"  metrics          {metrics}/metrics\n"
        f"  readiness        {metrics}/ready\n"
        f"  topics           {settings.topic} -> {settings.dlq_topic} (dead letters)\n"
        "Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    return True
