"""The SASL-failure spy sees the client's refusal even when the worker's repeat filter
holds the line back as a repeat of the same message template."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time

from streams.config import load_settings
from streams.runtime import quiet_logs
from streams.runtime.security import AuthFailures, diagnose
from streams.tools.broker.tls import make_listener


def test_the_spy_sees_a_refusal_the_repeat_filter_holds_back() -> None:
    logger = logging.getLogger("kafka.net.transport")
    repeat = quiet_logs.RepeatFilter()
    logger.addFilter(repeat)
    try:
        logger.error("%s: Abort (%s)", "conn", "KafkaConnectionError: socket disconnected")
        with AuthFailures() as failures:
            logger.error("%s: Abort (%s)", "conn", "[Error 58] SaslAuthenticationFailedError")
        assert failures.seen
        assert failures not in logger.filters  # removed again
    finally:
        logger.removeFilter(repeat)


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
        reason = diagnose(settings, auth_failed=False)
    finally:
        listener.close()
    assert reason is not None and "accepts connections and TLS" in reason
    assert "within 7 s" in reason and "raise connect_timeout_seconds" in reason
