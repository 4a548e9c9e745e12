"""The bench's freshness poller reads ``next_offsets`` and ``applied_offsets`` (``/offsets``)
over one kept-alive connection (a new connection per poll cost the measured worker 0.3 ms of
its core more each time), and carries on over a new one when the worker closes it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streams.tools.bench_live import OffsetsPoller


class OffsetsServer(ThreadingHTTPServer):
    """A stand-in for the worker's /offsets (any other path: 404, as the worker's pages):
    counts connections and answers; with
    ``drop_after`` set, closes each connection after that many answers without saying so."""

    daemon_threads = True
    drop_after: int | None = None
    connections = 0
    answers = 0


class OffsetsPage(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp answers
    server: OffsetsServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1
        self.answered = 0

    def do_GET(self) -> None:  # http.server's name for a GET
        if self.path != "/offsets":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.answers += 1
        n = self.server.answers
        body = json.dumps({"next_offsets": {"0": 7, "3": n}, "applied_offsets": {"3": n + 1}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())
        self.answered += 1
        if self.server.drop_after is not None and self.answered >= self.server.drop_after:
            self.close_connection = True  # no "Connection: close": the client learns on reuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[OffsetsServer]:
    srv = OffsetsServer(("127.0.0.1", 0), OffsetsPage)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _base(srv: OffsetsServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_polls_share_one_connection(server: OffsetsServer) -> None:
    with OffsetsPoller(_base(server)) as poller:
        reads = [poller.read() for _ in range(20)]
    assert reads[0] == ({0: 7, 3: 1}, {3: 2})
    assert reads[-1] == ({0: 7, 3: 20}, {3: 21}), "partitions as ints, every answer read"
    assert server.connections == 1


def test_a_connection_the_worker_closed_is_opened_again(server: OffsetsServer) -> None:
    server.drop_after = 3
    with OffsetsPoller(_base(server)) as poller:
        reads = [poller.read()[0][3] for _ in range(10)]
    assert reads == list(range(1, 11)), "no poll lost, none answered twice"
    assert server.connections == 4  # 3 answers a connection


def test_a_worker_gone_is_an_error() -> None:
    srv = OffsetsServer(("127.0.0.1", 0), OffsetsPage)
    base = _base(srv)
    srv.server_close()
    with OffsetsPoller(base) as poller, pytest.raises(ConnectionError):
        poller.read()
