"""Launcher details that need no broker."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import sys
from pathlib import Path

from streams.tools import devstack
from streams.tools.broker import launcher


def test_cluster_ids_never_look_like_options() -> None:
    ids = [launcher.new_cluster_id() for _ in range(5000)]  # P(no '-' start in 5000) ~ 1e-34
    assert not any(i.startswith("-") for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)


def test_free_ports_are_bindable() -> None:
    port = launcher.free_port()
    assert launcher.port_is_free(port)


def test_a_port_left_in_time_wait_by_a_stopped_server_is_free() -> None:
    """The server side closes first (as a killed broker's connections do): its port holds a
    TIME_WAIT socket, which the JVM's SO_REUSEADDR binds over, so it counts as free."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's end closes first: TIME_WAIT on the server's port
        client.recv(1)
        client.close()
    assert launcher.port_is_free(port)


def test_a_second_interrupt_while_stopping_does_not_cut_the_stop_short(capsys) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        devstack.hold_signals_while_stopping()
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the stop goes on
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
    assert (
        capsys.readouterr().out == "still stopping: the worker, then the broker (a few seconds)\n"
    )


WORKER_OUTPUT = b"""\
[2026-12-06 12:02:55,197] [28421] [INFO] [^BoundedStopWorker]: Starting...
[2026-12-06 12:02:56,281] [28421] [INFO] Updating subscribed topics to:
+Requested Subscription-----------+
| ticket-events                   |
+---------------------------------+
[2026-12-06 12:02:57,000] [28421] [WARNING] Kafka is unreachable
[2026-12-06 12:02:58,000] [28421] [DEBUG] a detail
Traceback (most recent call last):
  File "x.py", line 1, in <module>
ValueError: boom
error: metrics port 8790 on 127.0.0.1 is not free
"""


def test_make_run_logs_a_childs_whole_output_and_shows_all_but_routine_lines(
    tmp_path, capsys
) -> None:
    """Faust's INFO lines and their tables (some 250 at start-up) went to the console before
    ``make run``'s banner; they go to the log only, and warnings, tracebacks and errors to
    both, named by child. ``--verbose`` shows every line."""
    log = tmp_path / "worker.log"
    devstack._pump("worker", io.BytesIO(WORKER_OUTPUT), log, verbose=False)
    assert log.read_bytes() == WORKER_OUTPUT
    shown = capsys.readouterr().out.splitlines()
    assert shown == [
        "worker    | [2026-12-06 12:02:57,000] [28421] [WARNING] Kafka is unreachable",
        "worker    | Traceback (most recent call last):",
        'worker    |   File "x.py", line 1, in <module>',
        "worker    | ValueError: boom",
        "worker    | error: metrics port 8790 on 127.0.0.1 is not free",
    ]
    devstack._pump("worker", io.BytesIO(WORKER_OUTPUT), log, verbose=True)
    assert len(capsys.readouterr().out.splitlines()) == len(WORKER_OUTPUT.splitlines())


class _Latin1Console(io.TextIOWrapper):
    """A console that cannot show every character (PYTHONIOENCODING=latin-1)."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="latin-1")


def test_a_console_that_cannot_take_a_line_does_not_stop_the_pump(tmp_path, monkeypatch) -> None:
    """The pump died on the first line the console could not encode; the child then blocked
    on its full pipe (the worker's event loop with it). Every line still reaches the log."""
    monkeypatch.setattr(sys, "stdout", _Latin1Console())
    output = "┌ a box-drawing line\n".encode() + b"more\n" * 20_000
    log = tmp_path / "worker.log"
    devstack._pump("worker", io.BytesIO(output), log, verbose=False)
    assert log.read_bytes() == output


def test_a_stopped_childs_tail_holds_its_last_line(tmp_path, monkeypatch, capsys) -> None:
    """The pump threads were never waited for: a child's last lines could miss its log,
    and the tail printed after it stopped could miss the reason it stopped."""
    monkeypatch.setattr(devstack, "LOGS", tmp_path)
    script = "import sys\nfor i in range(20000): print(i)\nprint('the last line')"
    child = devstack._spawn("worker", [sys.executable, "-c", script], dict(os.environ), False)
    child.proc.wait()
    child.tail(lines=1)
    assert "the last line" in capsys.readouterr().err
    assert (tmp_path / "worker.log").read_text().splitlines()[-1] == "the last line"


def test_no_secret_of_the_secure_listener_is_on_a_command_line(tmp_path, monkeypatch) -> None:
    """``ps`` shows every process's arguments to every user: openssl reads the keystore's
    password from its file, and the storage tool its SCRAM users from an argument file that
    only its owner can read, removed after."""
    import subprocess

    from streams.tools.broker import tls

    real_run, commands, argfiles = subprocess.run, [], []

    def recording_run(cmd, *args, **kwargs):
        commands.append(list(map(str, cmd)))
        for arg in map(str, cmd):
            if arg.startswith("@"):
                path = Path(arg[1:])
                argfiles.append((path.read_text(), path.stat().st_mode & 0o777, path))
                return subprocess.CompletedProcess(cmd, 0, "", "")
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    listener = tls.make_listener(tmp_path / "tls", 0)
    props = tmp_path / "server.properties"
    props.write_text("")
    launcher._format(tmp_path, "libs/*", [], props, listener)
    secrets = {listener.keystore_password, listener.password_file.read_text().strip()}
    assert len(commands) == 5 and (tmp_path / "tls" / "broker.p12").exists()
    assert not [c for c in commands for s in secrets if any(s in arg for arg in c)]
    ((text, mode, path),) = argfiles
    assert listener.password_file.read_text().strip() in text and mode == 0o600
    assert not path.exists()


def test_java_reads_back_every_argument_the_argfile_holds(tmp_path) -> None:
    """The real ``java`` parses the argument file: spaces, quotes, backslashes and line
    breaks inside an argument come back as they were (a data dir may hold any of them)."""
    import subprocess

    echo = tmp_path / "Echo.java"
    echo.write_text(
        "public class Echo { public static void main(String[] a) {"
        " for (String s : a) System.out.print(s + '\\0'); } }"
    )
    args = ["a b", 'q"uote', "back\\slash", "line\nbreak", "cr\rx", "tab\tx", "#hash", ""]
    argfile = tmp_path / "args"
    argfile.write_text("\n".join(launcher._java_quoted(a) for a in [str(echo), *args]) + "\n")
    done = subprocess.run(["java", f"@{argfile}"], capture_output=True, check=True, timeout=120)
    assert done.stdout.decode().split("\0")[:-1] == args
