"""The exporter-toolkit web config: TLS and basic auth, refused when it cannot be honoured."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.config import ConfigError
from streams.metrics.web_config import load_web_config
from streams.tools.broker.tls import make_listener

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def test_no_file_means_plain_http_and_no_auth() -> None:
    config = load_web_config(None)
    assert config.ssl_context() is None and config.allows(None)


def test_basic_auth_checks_the_bcrypt_hash_and_remembers_a_header_that_passed(tmp_path) -> None:
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: {HASH}\n"))
    assert not config.allows(None)
    assert not config.allows(basic("prometheus", "wrong"))
    assert not config.allows(basic("someone", "s3cret"))
    assert not config.allows("Basic !!!not-base64")
    assert config.allows(basic("prometheus", "s3cret"))
    assert len(config._passed) == 1  # the next scrape skips bcrypt
    assert config.allows(basic("prometheus", "s3cret"))


def test_tls_paths_are_relative_to_the_file_and_load(tmp_path) -> None:
    make_listener(tmp_path / "tls", 0)
    text = "tls_server_config:\n  cert_file: tls/broker.pem\n  key_file: tls/broker.key\n"
    context = load_web_config(write(tmp_path, text)).ssl_context()
    assert context is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http_server_config:\n  http2: false\n", "only tls_server_config and basic_auth_users"),
        ("tls_server_config:\n  cert_file: a.pem\n", "needs cert_file and key_file"),
        ("tls_server_config:\n  cipher_suites: [x]\n", "tls_server_config takes"),
        ("basic_auth_users:\n  p: plain-text\n", "must be a bcrypt hash"),
        ("tls_server_config: [\n", "cannot read it"),
    ],
)
def test_what_cannot_be_honoured_is_an_error(tmp_path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_web_config(write(tmp_path, text))


def test_missing_certificate_files_are_an_error_at_startup(tmp_path) -> None:
    text = "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n"
    with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
        load_web_config(write(tmp_path, text)).ssl_context()


async def test_every_page_but_the_probes_asks_for_credentials(tmp_path) -> None:
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: {HASH}\n"))
    app = web.Application(middlewares=[config.middleware()])
    for path in ("/metrics", "/healthz", "/ready", "/table/x"):
        app.router.add_get(path, ok)
    async with TestClient(TestServer(app)) as client:
        for path in ("/metrics", "/table/x"):
            refused = await client.get(path)
            assert refused.status == 401
            assert refused.headers["WWW-Authenticate"].startswith("Basic")
            allowed = await client.get(
                path, headers={"Authorization": basic("prometheus", "s3cret")}
            )
            assert allowed.status == 200
        for path in ("/healthz", "/ready"):
            assert (await client.get(path)).status == 200


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")
