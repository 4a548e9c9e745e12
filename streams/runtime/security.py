"""How every Kafka client of ticketpulse connects: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL.

One place turns the settings into client arguments, so the worker (Faust and aiokafka),
``topics``, ``replay`` and ``simulate`` (kafka-python) always connect alike:

- TLS uses one ``ssl.SSLContext``: the CA file given (else the system's), hostname
  verification on, and a client certificate and key for mutual TLS when given;
- the SASL password comes from ``$TICKETPULSE_SASL_PASSWORD`` or ``sasl_password_file``,
  never from a flag or the settings file, and is never logged or shown in a repr
  (``Secret``); a settings dump shows where it comes from, not what it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.config import ConfigError, Settings

log = logging.getLogger(__name__)

PASSWORD_ENV = "TICKETPULSE_SASL_PASSWORD"  # noqa: S105 (the variable's name, not a password)


@dataclass(frozen=True)
class Secret:
    """A password that never shows itself: repr and str are masked."""

    value: str

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def sasl_password(settings: Settings) -> Secret:
    """The SASL password: the environment variable, else the password file."""
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return Secret(from_env)
    path = settings.sasl_password_file
    if path is None:
        msg = (
            f"security_protocol {settings.security_protocol} needs a password: set "
            f"{PASSWORD_ENV}, or sasl_password_file to a file holding it"
        )
        raise ConfigError(msg)
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        msg = f"sasl_password_file {path}: cannot read it ({exc.strerror})"
        raise ConfigError(msg) from None
    if not text:
        msg = f"sasl_password_file {path} is empty"
        raise ConfigError(msg)
    return Secret(text)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (None otherwise); certificate and hostname
    checks always on: a wrong CA fails closed."""
    if not settings.security_protocol.endswith("SSL"):
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
        if settings.ssl_certfile is not None:
            keyfile = str(settings.ssl_keyfile) if settings.ssl_keyfile else None
            context.load_cert_chain(str(settings.ssl_certfile), keyfile)
    except (OSError, ssl.SSLError) as exc:
        msg = f"TLS settings: cannot load the CA file or client certificate ({exc})"
        raise ConfigError(msg) from None
    return context


def kafka_python_args(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of kafka-python's clients (KafkaProducer, KafkaAdminClient)."""
    protocol = settings.security_protocol
    args: dict[str, Any] = {"security_protocol": protocol}
    context = ssl_context(settings)
    if context is not None:
        args["ssl_context"] = context
    if protocol.startswith("SASL"):
        warn_if_exposed(settings)
        args["sasl_mechanism"] = settings.sasl_mechanism
        args["sasl_plain_username"] = settings.sasl_username
        args["sasl_plain_password"] = sasl_password(settings).value
    return args


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` (None for PLAINTEXT)."""
    import faust  # the worker's dependency; kafka-python tools never import it

    protocol = settings.security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL"):
        warn_if_exposed(settings)
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=sasl_password(settings).value,
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


_warned: set[str] = set()  # once a process


def warn_if_exposed(settings: Settings) -> None:
    """SASL without TLS sends PLAIN passwords in the clear: allowed, never silently. Called
    wherever a client's credentials are made (it was called nowhere, though documented)."""
    if settings.security_protocol == "SASL_PLAINTEXT" and "sasl" not in _warned:
        _warned.add("sasl")
        log.warning(
            "security_protocol SASL_PLAINTEXT: SASL credentials and all data travel "
            "unencrypted; use SASL_SSL outside a trusted network"
        )


SASL_PROBE_TIMEOUT_S = 10.0


def diagnose(settings: Settings) -> str | None:
    """Why a Kafka client could not bootstrap, when it is a security setting: a CA that
    does not trust the broker, a TLS client at a plaintext port or the reverse, refused
    SASL credentials, or a server that accepts connections but sets up no session in time.
    None when the first server does not even accept TCP."""
    host, _, port = settings.bootstrap_list[0].rpartition(":")
    where = f"{host}:{port}"
    try:
        raw = socket.create_connection((host, int(port)), timeout=5)
    except (OSError, ValueError):
        return None
    tls = ssl_context(settings)
    with raw:
        problem = _tls_problem(settings, raw, tls, host, where)
    sasl = settings.security_protocol.startswith("SASL")
    if problem is not None or not (tls or sasl):
        return problem
    refusal = _sasl_refusal(settings, (host, int(port)), tls) if sasl else None
    if refusal is not None:
        return f"SASL: {where} {refusal}"
    return (
        f"{where} accepts connections{' and TLS' if tls else ''}, but no client session was"
        f" set up within {settings.connect_timeout_seconds:g} s and no refusal was seen; the"
        " broker (or this machine) may be overloaded or still starting: try again, or raise"
        " connect_timeout_seconds"
    )


def _tls_problem(
    settings: Settings, raw: socket.socket, tls: ssl.SSLContext | None, host: str, where: str
) -> str | None:
    """A TLS mismatch between the client's settings and the listener, if any."""
    if tls is None:
        return _plaintext_at_tls_port(raw, host, where)
    try:
        with tls.wrap_socket(raw, server_hostname=host):
            pass
    except ssl.SSLCertVerificationError as exc:
        return (
            f"TLS: the certificate of {where} is not trusted ({exc.verify_message}); is "
            f"ssl_cafile ({settings.ssl_cafile or 'the system CAs'}) the CA that signed it?"
        )
    except (ssl.SSLError, OSError) as exc:
        return (
            f"TLS: {where} did not complete a TLS handshake ({exc}); is it a PLAINTEXT "
            f"listener? security_protocol is {settings.security_protocol}"
        )
    return None


def _sasl_refusal(
    settings: Settings, address: tuple[str, int], tls: ssl.SSLContext | None
) -> str | None:
    """Run the SASL exchange once, on a connection of its own: what the broker refused,
    or None when it accepted or did not answer in time.

    kafka-python only logs a refusal, and loses it when the broker's reply and its closing
    of the connection arrive in one read (its transport drops the bytes read with the
    end of the stream), which a loaded machine makes the rule: the bootstrap then only
    times out. Reading the replies here, in order, sees the refusal every time."""
    from kafka.net.sasl import get_sasl_mechanism  # kafka-python's SASL client steps
    from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

    try:
        with _connection(address, tls) as exchange:
            offer = exchange(SaslHandshakeRequest(mechanism=settings.sasl_mechanism))
            if offer.error_code:
                offered = ", ".join(offer.mechanisms) or "none"
                return f"does not offer {settings.sasl_mechanism} (it offers {offered})"
            args = kafka_python_args(settings)
            mechanism = get_sasl_mechanism(settings.sasl_mechanism)(host=address[0], **args)
            while not mechanism.is_done():
                reply = exchange(SaslAuthenticateRequest(auth_bytes=mechanism.auth_bytes()))
                if reply.error_code:
                    return (
                        f"refused user {settings.sasl_username!r} with "
                        f"{settings.sasl_mechanism}; check sasl_username and the password "
                        f"(${PASSWORD_ENV} or sasl_password_file) and sasl_mechanism"
                    )
                mechanism.receive(reply.auth_bytes)
    except Exception as exc:
        log.debug("SASL probe of %s:%s gave no answer: %r", *address, exc)
    return None


@contextlib.contextmanager
def _connection(address: tuple[str, int], tls: ssl.SSLContext | None) -> Iterator[Any]:
    """A blocking connection that sends one request (version 1) and returns its reply."""
    from kafka.protocol.parser import KafkaProtocol  # sans-IO framing of kafka-python

    raw = socket.create_connection(address, timeout=SASL_PROBE_TIMEOUT_S)
    sock = tls.wrap_socket(raw, server_hostname=address[0]) if tls else raw
    protocol = KafkaProtocol(client_id="ticketpulse-diagnosis")

    def exchange(request: Any) -> Any:
        request.API_VERSION = 1
        protocol.send_request(request)
        sock.sendall(protocol.send_bytes())
        while True:
            data = sock.recv(65536)
            if not data:
                msg = "closed by the broker"
                raise ConnectionError(msg)
            replies = protocol.receive_bytes(data)
            if replies:
                return replies[0][1]

    with sock:
        yield exchange


def _plaintext_at_tls_port(raw: socket.socket, host: str, where: str) -> str | None:
    """A plaintext client at a TLS listener sees a closed connection: say so when a TLS
    handshake (unverified, only to recognise the protocol) does succeed there."""
    probe = ssl.create_default_context()
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        with probe.wrap_socket(raw, server_hostname=host):
            pass
    except (ssl.SSLError, OSError):
        return None
    return (
        f"{where} speaks TLS but security_protocol is PLAINTEXT: set security_protocol "
        'to SSL or SASL_SSL, with ssl_cafile (README "Connecting to a secured Kafka")'
    )
