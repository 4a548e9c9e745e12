"""Launcher details that need no broker."""

from __future__ import annotations

import base64
import os
import signal
import socket

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
