"""The diagnosis of a failed bootstrap: a SASL refusal is seen even when the broker's reply
and its closing of the connection arrive together, and a server that completes TLS but
sets up no session is not called unreachable."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time

import pytest
from kafka.protocol.sasl import SaslAuthenticateResponse, SaslHandshakeResponse

from streams.config import ConfigError, Settings, load_settings
from streams.runtime import security
from streams.runtime.security import diagnose
from streams.tools.broker.tls import make_listener


def read_request(conn: socket.socket) -> int:
    """One request frame off the wire; its correlation id."""
    size = struct.unpack(">i", conn.recv(4, socket.MSG_WAITALL))[0]
    payload = conn.recv(size, socket.MSG_WAITALL)
    return int(struct.unpack(">i", payload[4:8])[0])


def reply(correlation_id: int, response: object) -> bytes:
    body = bytes(response.encode(version=1))  # type: ignore[attr-defined]
    return struct.pack(">ii", len(body) + 4, correlation_id) + body


def refusing_broker(listener: socket.socket, mechanisms: list[str]) -> None:
    """Accept the handshake, refuse the first authentication message, and send the
    refusal and the end of the connection at once (as a loaded broker's reach a client).
    The first connection is the diagnosis's TLS probe: a plaintext listener drops it."""
    listener.accept()[0].close()
    conn, _ = listener.accept()
    with conn:
        offered = SaslHandshakeResponse(error_code=0, mechanisms=mechanisms)
        conn.sendall(reply(read_request(conn), offered))
        refused = SaslAuthenticateResponse(
            error_code=58, error_message="invalid credentials", auth_bytes=b"",
            session_lifetime_ms=0,
        )  # fmt: skip
        conn.sendall(reply(read_request(conn), refused))
        conn.shutdown(socket.SHUT_WR)


def test_a_refusal_sent_with_the_close_is_named(tmp_path, monkeypatch) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(
        target=refusing_broker, args=(listener, ["SCRAM-SHA-512"]), daemon=True
    ).start()
    monkeypatch.setenv("TICKETPULSE_SASL_PASSWORD", "not-the-password")
    settings = load_settings(
        bootstrap_servers=f"127.0.0.1:{listener.getsockname()[1]}",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="agent",
        allow_sasl_without_tls=True,
    )
    try:
        reason = diagnose(settings)
    finally:
        listener.close()
    assert reason is not None
    assert "refused user 'agent' with SCRAM-SHA-512" in reason
    assert "not-the-password" not in reason


def test_a_server_that_completes_tls_but_sets_up_no_session_is_not_called_unreachable(
    tmp_path,
) -> None:
    """A loaded broker can accept TCP and TLS and still not finish a client's session in
    time: the line says so and what to do, instead of asking whether the broker runs."""
    tls = make_listener(tmp_path / "tls", 0)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(
        str(tmp_path / "tls" / "broker.pem"), str(tmp_path / "tls" / "broker.key")
    )
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept_one() -> None:  # handshake, then say nothing (a broker too busy to answer)
        raw, _ = listener.accept()
        with contextlib.suppress(OSError), server.wrap_socket(raw, server_side=True):
            time.sleep(1)

    threading.Thread(target=accept_one, daemon=True).start()
    settings = load_settings(
        bootstrap_servers=f"127.0.0.1:{port}",
        security_protocol="SSL",
        ssl_cafile=tls.ca_file,
        connect_timeout_seconds=7,
    )
    try:
        reason = diagnose(settings)
    finally:
        listener.close()
    assert reason is not None and "accepts connections and TLS" in reason
    assert "within 7 s" in reason and "raise connect_timeout_seconds" in reason


def test_sasl_without_tls_needs_its_own_switch_and_then_warns_once(monkeypatch, caplog) -> None:
    """SCRAM (and PLAIN) only over TLS unless allowed in so many words; allowed, every
    client's credentials warn once a process (documented, it was called nowhere)."""
    monkeypatch.setattr(security, "_warned", set())
    monkeypatch.setenv("TICKETPULSE_SASL_PASSWORD", "hunter2")
    plain = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}
    with pytest.raises(ConfigError, match="allow_sasl_without_tls = true"):
        load_settings(**plain, sasl_username="tp")
    settings = Settings(**plain, sasl_username="tp", allow_sasl_without_tls=True)
    with caplog.at_level(logging.WARNING):
        security.kafka_python_args(settings)
        security.faust_credentials(settings)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "SASL_PLAINTEXT" in warnings[0]
    assert "hunter2" not in caplog.text
