"""TLS and basic auth for /metrics and the wallboard, from an exporter-toolkit web config.

The file is the one every Prometheus exporter reads (``--web.config.file``, see
https://prometheus.io/docs/prometheus/latest/configuration/https/), so ops teams reuse
what they have::

    tls_server_config:
      cert_file: server.crt        # relative paths: to the web config file's folder
      key_file: server.key
      # client_ca_file, client_auth_type (RequireAndVerifyClientCert ...), min_version
    basic_auth_users:
      prometheus: $2y$10$...       # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':')

Keys this server does not implement are an error, never ignored. Every path is
protected except ``/healthz`` and ``/ready``, so orchestrator probes need no secret.
A bcrypt check costs ~50 ms on purpose; a header that passed is remembered (by its
SHA-256) so a scrape every 15 s does not pay it again. The others run one at a time in a
thread (bcrypt releases the GIL), never on the event loop that the worker's agents share:
100 wrong passwords used to hold it 5.4 s. Past ``QUEUED`` waiting, a request is refused at
once (429). An unknown user costs a check too, so timing tells no one which names exist.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web

from streams.config import ConfigError

OPEN_PATHS = frozenset({"/healthz", "/ready"})
TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
REMEMBERED = 256  # headers that passed, kept (bounded)
QUEUED = 8  # requests waiting for a password check, at most; more get a 429


@functools.cache
def _unknown_user(rounds: int) -> bytes:
    """A hash for a user that does not exist, at the configured users' cost, so refusing it
    takes as long as refusing a wrong password; made on first need, not at every start."""
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds))


class TooManyChecksError(Exception):
    """More requests wait for a password check than ``QUEUED``."""


@dataclass
class WebConfig:
    tls: dict[str, Any] = field(default_factory=dict)
    users: dict[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash
    _passed: set[bytes] = field(default_factory=set)
    _checking: asyncio.Lock = field(default_factory=asyncio.Lock)
    _queued: int = 0

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls["cert_file"], self.tls["key_file"])
            if "client_ca_file" in self.tls:
                context.load_verify_locations(self.tls["client_ca_file"])
        except (OSError, ssl.SSLError) as exc:
            msg = f"web config: cannot load the TLS certificate or key ({exc})"
            raise ConfigError(msg) from None
        context.verify_mode = CLIENT_AUTH[self.tls.get("client_auth_type", "NoClientCert")]
        context.minimum_version = VERSIONS[self.tls.get("min_version", "TLS12")]
        return context

    async def allows(self, authorization: str | None) -> bool:
        """Basic auth: no users configured, or a user whose bcrypt hash the password meets."""
        if not self.users:
            return True
        if not authorization or not authorization.startswith("Basic "):
            return False
        digest = hashlib.sha256(authorization.encode()).digest()
        if digest in self._passed:
            return True
        try:
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if not await self._check(password.encode(), hashed) or not hashed:
            return False
        if len(self._passed) >= REMEMBERED:
            self._passed.clear()
        self._passed.add(digest)
        return True

    async def _check(self, password: bytes, hashed: bytes | None) -> bool:
        """One bcrypt check in a thread, one at a time; TooManyChecksError past ``QUEUED``.
        An unknown user (``hashed`` None) is checked against a hash at the users' cost."""
        if self._queued >= QUEUED:
            raise TooManyChecksError
        self._queued += 1
        try:
            async with self._checking:
                rounds = _rounds(next(iter(self.users.values())))
                return await asyncio.to_thread(_verify, password, hashed, rounds)
        finally:
            self._queued -= 1

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def basic_auth(request: web.Request, handler: Any) -> web.StreamResponse:
            try:
                allowed = request.path in OPEN_PATHS or await self.allows(
                    request.headers.get("Authorization")
                )
            except TooManyChecksError:
                return web.Response(
                    status=429, text="429 Too Many Requests\n", headers={"Retry-After": "1"}
                )
            if allowed:
                response: web.StreamResponse = await handler(request)
                return response
            return web.Response(
                status=401,
                text="401 Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="ticketpulse"'},
            )

        return basic_auth


def _verify(password: bytes, hashed: bytes | None, rounds: int) -> bool:
    """In a thread: the hash for an unknown user is made there too, the first time."""
    return bcrypt.checkpw(password, hashed or _unknown_user(rounds))


def _rounds(hashed: bytes) -> int:
    """The cost of a bcrypt hash: ``$2y$10$...`` is 10."""
    return int(hashed.split(b"$")[2])


def load_web_config(path: Path | None) -> WebConfig:
    """The web config at ``path`` (None: plain HTTP, no auth); ConfigError when unusable."""
    if path is None:
        return WebConfig()
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        msg = f"web config {path}: cannot read it ({exc})"
        raise ConfigError(msg) from None
    if not isinstance(doc, dict) or set(doc) - {"tls_server_config", "basic_auth_users"}:
        extra = sorted(set(doc) - {"tls_server_config", "basic_auth_users"}) if doc else []
        msg = f"web config {path}: only tls_server_config and basic_auth_users are read {extra}"
        raise ConfigError(msg)
    return WebConfig(_tls(doc.get("tls_server_config"), Path(path)), _users(doc, Path(path)))


def _tls(section: Any, path: Path) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict) or set(section) - TLS_KEYS:
        msg = f"web config {path}: tls_server_config takes {', '.join(sorted(TLS_KEYS))}"
        raise ConfigError(msg)
    tls = dict(section)
    for key in ("cert_file", "key_file", "client_ca_file"):
        if key in tls:
            tls[key] = str(path.parent / tls[key])
    if "cert_file" not in tls or "key_file" not in tls:
        msg = f"web config {path}: tls_server_config needs cert_file and key_file"
        raise ConfigError(msg)
    if tls.get("client_auth_type", "NoClientCert") not in CLIENT_AUTH:
        msg = f"web config {path}: client_auth_type is one of {', '.join(CLIENT_AUTH)}"
        raise ConfigError(msg)
    if tls.get("min_version", "TLS12") not in VERSIONS:
        msg = f"web config {path}: min_version is TLS12 or TLS13"
        raise ConfigError(msg)
    return tls


def _users(doc: dict[str, Any], path: Path) -> dict[str, bytes]:
    users = doc.get("basic_auth_users") or {}
    out: dict[str, bytes] = {}
    for name, hashed in users.items():
        value = str(hashed).encode()
        if not value.startswith((b"$2a$", b"$2b$", b"$2y$")):
            msg = f"web config {path}: the password of {name!r} must be a bcrypt hash"
            raise ConfigError(msg)
        out[str(name)] = value
    return out
