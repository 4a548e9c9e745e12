"""/metrics over TLS with basic auth (an exporter-toolkit web config), scraped by Debian's
real Prometheus with the matching scrape config; every window figure Prometheus stores
equals the oracle. Plain HTTP, no credentials and a wrong password are refused."""

from __future__ import annotations

import base64
import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from streams.tools.broker.tls import make_listener
from tests.conftest import fetch, wait_for
from tests.integration.test_kpis import replay_into_new_topics, simulated, wait_equal
from tests.integration.test_prometheus import Prometheus

pytestmark = pytest.mark.integration


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def web_config(tmp_path: Path, password: str) -> tuple[Path, Path]:
    """The web config file and the CA that signed the worker's certificate."""
    tls = make_listener(tmp_path / "web-tls", 0)  # a private CA and a localhost certificate
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()
    path = tmp_path / "web.yml"
    path.write_text(
        "tls_server_config:\n"
        "  cert_file: web-tls/broker.pem\n"
        "  key_file: web-tls/broker.key\n"
        "basic_auth_users:\n"
        f"  prometheus: {hashed}\n"
    )
    return path, tls.ca_file


def refused(url: str, context: ssl.SSLContext | None, auth: str | None) -> int | str:
    try:
        fetch(url, context, auth)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__
    return "served"


def test_prometheus_scrapes_over_tls_with_basic_auth(
    kafka,
    names,
    start_worker,
    tmp_path: Path,
) -> None:
    password = secrets.token_urlsafe(12)
    config, ca_file = web_config(tmp_path, password)
    log = tmp_path / "day.jsonl"
    _, oracle = simulated(log, seed=8, rate=2, events=2000)
    replay_into_new_topics(kafka, names, log)
    context = ssl.create_default_context(cafile=str(ca_file))
    worker = start_worker(
        "--clock", "event", "--web-config-file", str(config),
        tls=context, auth=basic("prometheus", password),
    )  # fmt: skip
    wait_equal(oracle, worker)

    url = f"https://127.0.0.1:{worker.port}/metrics"
    assert refused(url, context, None) == 401
    assert refused(url, context, basic("prometheus", "wrong")) == 401
    for page in ("/stats", "/offsets", "/selfcheck"):  # the other pages: the same auth
        assert refused(url.replace("/metrics", page), context, None) == 401
    assert refused(url.replace("https", "http"), None, None) != "served"
    assert refused(url, ssl.create_default_context(), None) == "URLError"  # untrusted cert
    assert '"ok"' in fetch(url.replace("/metrics", "/healthz"), context)  # probes: no auth

    prom = Prometheus(
        tmp_path,
        f"127.0.0.1:{worker.port}",
        scheme="https",
        basic_auth={"username": "prometheus", "password": password},
        tls_config={"ca_file": str(ca_file)},
    )
    try:
        wait_for(prom.ready, 60, "prometheus to be ready")
        check_prometheus_stores_the_oracle(prom, oracle)
    finally:
        prom.stop()
    assert password not in worker.log_path.read_text(errors="replace")


def check_prometheus_stores_the_oracle(prom: Prometheus, oracle: dict) -> None:
    window = {k: v for k, v in oracle.items() if dict(k[1]).get("window") == "24h"}
    assert sum(1 for v in window.values() if v) > 50, "the comparison must cover real figures"
    names_24h = {name for name, _ in window}

    def stored() -> dict:
        out = {}
        for name in names_24h:
            for series in prom.query(f'{name}{{window="24h"}}'):
                labels = {k: v for k, v in series["metric"].items() if k not in ("job", "instance")}
                labels.pop("__name__", None)
                out[(name, tuple(sorted(labels.items())))] = float(series["value"][1])
        return out

    def agrees() -> bool:
        up = prom.query('up{job="ticketpulse"}')
        got = stored() if up and up[0]["value"][1] == "1" else {}
        return bool(got) and all(abs(got.get(k, 0.0) - v) <= 1e-6 for k, v in window.items())

    wait_for(agrees, 60, "Prometheus (https, basic auth) to store the oracle's figures")
