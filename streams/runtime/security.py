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

import logging
import os
import socket
import ssl
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
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=sasl_password(settings).value,
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def warn_if_exposed(settings: Settings) -> None:
    """SASL without TLS sends PLAIN passwords in the clear: allowed, never silently."""
    if settings.security_protocol == "SASL_PLAINTEXT":
        log.warning(
            "security_protocol SASL_PLAINTEXT: SASL credentials and all data travel "
            "unencrypted; use SASL_SSL outside a trusted network"
        )


class AuthFailures(logging.Filter):
    """Notes kafka-python's SASL authentication failures while a client bootstraps (it
    retries them until its timeout, then reports only that it could not bootstrap).

    It sits first among the filters of every ``kafka.*`` logger, so it sees each record
    before the worker's repeat filter (``quiet_logs``) can hold a repeat back."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False
        self._loggers: list[logging.Logger] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "SaslAuthenticationFailed" in record.getMessage():
            self.seen = True
        return True

    def __enter__(self) -> AuthFailures:
        manager = logging.Logger.manager
        names = ["kafka", *(n for n in list(manager.loggerDict) if n.startswith("kafka."))]
        for name in names:
            logger = logging.getLogger(name)
            logger.filters.insert(0, self)
            self._loggers.append(logger)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers.clear()


def diagnose(settings: Settings, auth_failed: bool = False) -> str | None:
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
    with raw:
        tls = ssl_context(settings)
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
    if auth_failed:
        return (
            f"SASL: {where} refused user {settings.sasl_username!r} with "
            f"{settings.sasl_mechanism}; check sasl_username and the password "
            f"(${PASSWORD_ENV} or sasl_password_file) and sasl_mechanism"
        )
    return (
        f"{where} accepts connections{' and TLS' if tls else ''}, but no client session was"
        f" set up within {settings.connect_timeout_seconds:g} s and no refusal was seen; the"
        " broker (or this machine) may be overloaded or still starting: try again, or raise"
        " connect_timeout_seconds"
    )


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
