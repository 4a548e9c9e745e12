"""The exporter-toolkit web config: TLS and basic auth, refused when it cannot be honoured."""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path

import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.config import ConfigError
from streams.metrics.web_config import QUEUED, load_web_config
from streams.tools.broker.tls import make_listener

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


async def test_no_file_means_plain_http_and_no_auth() -> None:
    config = load_web_config(None)
    assert config.ssl_context() is None and await config.allows(None)


async def test_basic_auth_checks_the_bcrypt_hash_and_remembers_a_header_that_passed(
    tmp_path,
) -> None:
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: {HASH}\n"))
    assert not await config.allows(None)
    assert not await config.allows(basic("prometheus", "wrong"))
    assert not await config.allows(basic("someone", "s3cret"))
    assert not await config.allows("Basic !!!not-base64")
    assert await config.allows(basic("prometheus", "s3cret"))
    assert len(config._passed) == 1  # the next scrape skips bcrypt
    assert await config.allows(basic("prometheus", "s3cret"))


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


async def test_password_checks_run_off_the_event_loop_one_at_a_time(tmp_path, monkeypatch) -> None:
    """bcrypt ran in the request middleware, on the loop the worker's agents share: 100 wrong
    passwords held it 5.4 s (the group drops a worker silent for 10 s). An unknown user
    costs a check too, so the answer's timing names no user."""
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: {HASH}\n"))
    threads: list[str] = []
    real = bcrypt.checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        threads.append(threading.current_thread().name)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", recording)
    tries = [basic("prometheus", f"guess{i}") for i in range(5)] + [basic("nobody", "x")]
    assert not any(await asyncio.gather(*(config.allows(t) for t in tries)))
    assert len(threads) == 6
    assert threading.main_thread().name not in threads


async def test_past_the_queue_a_request_is_refused_at_once(tmp_path) -> None:
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: {HASH}\n"))
    app = web.Application(middlewares=[config.middleware()])
    app.router.add_get("/metrics", ok)
    async with TestClient(TestServer(app)) as client:
        config._queued = QUEUED  # as if that many were waiting for a check
        busy = await client.get("/metrics", headers={"Authorization": basic("prometheus", "x")})
        assert (busy.status, busy.headers["Retry-After"]) == (429, "1")
        config._queued = 0
        assert (
            await client.get("/metrics", headers={"Authorization": basic("prometheus", "x")})
        ).status == 401
