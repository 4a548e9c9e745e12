"""The wallboard reads workers served with a web config: https verified with a CA, basic auth.
A worker it cannot reach that way is missing, never guessed; a bad setting is one clear line."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from streams.config import ConfigError
from streams.metrics.web_config import load_web_config
from streams.tools.broker.tls import make_listener
from streams.wallboard.sources import SourceAccess, WorkersSource

EXPOSITION = (
    "# TYPE ticketpulse_contacts_waiting gauge\n"
    'ticketpulse_contacts_waiting{channel="chat",queue="sales"} 3.0\n'
)
HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


async def secured_worker(tmp_path: Path) -> tuple[TestServer, Path]:
    """A /metrics page behind TLS and basic auth, as a worker with ``web_config_file``."""
    tls = make_listener(tmp_path / "tls", 0)
    config = tmp_path / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: tls/broker.pem\n  key_file: tls/broker.key\n"
        f"basic_auth_users:\n  wallboard: {HASH}\n"
    )
    web_config = load_web_config(config)
    app = web.Application(middlewares=[web_config.middleware()])

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=EXPOSITION)

    app.router.add_get("/metrics", metrics)
    server = TestServer(app, host="127.0.0.1", scheme="https")
    await server.start_server(ssl=web_config.ssl_context())
    return server, tls.ca_file


async def read(server: TestServer, access: SourceAccess):
    source = WorkersSource([f"https://127.0.0.1:{server.port}/metrics"], access=access)
    async with aiohttp.ClientSession() as session:
        return await source.read(session)


async def test_the_ca_and_the_credentials_read_a_secured_worker(tmp_path, monkeypatch) -> None:
    server, ca = await secured_worker(tmp_path)
    try:
        monkeypatch.setenv("TICKETPULSE_SOURCE_PASSWORD", "s3cret")
        reading = await read(server, SourceAccess.load(ca, "wallboard", None))
        key = ("ticketpulse_contacts_waiting", (("channel", "chat"), ("queue", "sales")))
        assert reading.metrics[key] == 3.0 and reading.missing == []
        for wrong in (
            SourceAccess(ca, "wallboard", "wrong"),  # refused: 401
            SourceAccess(None, "wallboard", "s3cret"),  # the system CAs do not know this one
            SourceAccess(ca),  # no credentials
        ):
            with pytest.raises(ConnectionError, match="no worker answered"):
                await read(server, wrong)
    finally:
        await server.close()


def test_a_password_comes_from_the_environment_or_a_file_never_a_flag(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("TICKETPULSE_SOURCE_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"needs a password: set \$TICKETPULSE_SOURCE_PASSWORD"):
        SourceAccess.load(None, "wallboard", None)
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    access = SourceAccess.load(None, "wallboard", secret)
    assert access.password == "s3cret" and "s3cret" not in repr(access)
    with pytest.raises(ConfigError, match="cannot read the source password file"):
        SourceAccess.load(None, "wallboard", tmp_path / "absent")
    with pytest.raises(ConfigError, match="is not a file"):
        SourceAccess.load(tmp_path / "absent.pem", None, None)
