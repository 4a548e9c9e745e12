"""The wallboard's web service: one reading serves every page, API call and stream; a source
that stops answering keeps the last figures, marked stale, never a blank board."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from aiohttp.test_utils import TestClient, TestServer

from streams.wallboard.app import Board, make_app
from streams.wallboard.sources import Reading

SAMPLE = {
    (
        "ticketpulse_window_contacts_offered",
        (("channel", "chat"), ("queue", "sales"), ("window", "15m")),
    ): 7.0,
    ("ticketpulse_contacts_waiting", (("channel", "chat"), ("queue", "sales"))): 2.0,
}


@dataclass
class FakeSource:
    name: str = "fake"
    answering: bool = True
    reads: int = 0

    async def read(self, session) -> Reading:
        self.reads += 1
        if not self.answering:
            raise ConnectionError("no worker answered (http://w1:8790/metrics)")
        return Reading(dict(SAMPLE), missing=["http://w2:8790/metrics"])


async def client_for(board: Board) -> TestClient:
    client = TestClient(TestServer(make_app(board)))
    await client.start_server()
    return client


async def test_figures_come_from_one_reading_and_go_stale_when_the_source_stops() -> None:
    source = FakeSource()
    board = Board(source, refresh_s=0.2, windows=["15m", "today"])
    client = await client_for(board)
    try:
        await asyncio.sleep(0.1)
        doc = await (await client.get("/api/v1/figures")).json()
        assert (doc["version"], doc["source"], doc["stale"]) == (1, "fake", False)
        assert doc["missing"] == ["http://w2:8790/metrics"]
        assert doc["queues"][0]["windows"]["15m"]["components"]["offered"] == 7
        assert doc["total"]["now"]["waiting"] == 2
        filtered = await (await client.get("/api/v1/figures?queues=billing")).json()
        assert filtered["queues"] == []
        source.answering = False
        await asyncio.sleep(0.3)
        stale = await (await client.get("/api/v1/figures")).json()
        assert stale["stale"] is True
        assert "no worker answered" in stale["error"]
        assert stale["queues"][0]["now"]["waiting"] == 2  # the last figures are kept
    finally:
        await client.close()


async def test_the_stream_pushes_the_same_document() -> None:
    board = Board(FakeSource(), refresh_s=0.2, windows=["15m"])
    client = await client_for(board)
    try:
        await asyncio.sleep(0.1)
        response = await client.get("/api/v1/stream?queues=sales")
        assert response.headers["Content-Type"] == "text/event-stream"
        events = []
        while len(events) < 2:
            line = (await response.content.readline()).strip()
            if line.startswith(b"data: "):
                events.append(orjson.loads(line[6:]))
        assert all(e["queues"][0]["queue"] == "sales" for e in events)
        assert events[1]["at"] >= events[0]["at"]
        response.close()
    finally:
        await client.close()


def test_a_stream_client_going_away_is_not_an_error(tmp_path) -> None:
    """A closed tab or a reloading TV ends its stream: the board's next write finds the
    connection gone, which is routine, not a traceback in the log. The real command, as
    aiohttp's test server did not log it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "streams.cli", "wallboard", "--workers", "http://127.0.0.1:1"]
    cmd += ["--wallboard-port", str(port), "--wallboard-refresh-seconds", "0.2"]
    log = tmp_path / "wallboard.log"
    with log.open("w") as out:
        board = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):  # until it listens
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.1)
            with socket.create_connection(("127.0.0.1", port)) as tv:
                tv.sendall(b"GET /api/v1/stream HTTP/1.1\r\nHost: tv\r\n\r\n")
                tv.settimeout(10)
                seen = b""
                while b"data: " not in seen:  # headers, then the stream's first event
                    chunk = tv.recv(65536)
                    assert chunk, seen
                    seen += chunk
            time.sleep(1.0)  # the board writes to the gone client at its next readings
        finally:
            board.send_signal(signal.SIGINT)
            board.wait(timeout=30)
    text = log.read_text()
    assert "Traceback" not in text and "Error handling request" not in text, text


async def test_the_page_and_its_assets_are_served_by_the_package() -> None:
    board = Board(FakeSource(), refresh_s=1, windows=["15m"])
    client = await client_for(board)
    try:
        page = await (await client.get("/")).text()
        assert "/static/board.js" in page and "http" not in page.replace("http-equiv", "")
        assert (await client.get("/static/board.js")).status == 200
        assert (await client.get("/static/board.css")).status == 200
        assert (await client.get("/static/../app.py")).status == 404
    finally:
        await client.close()


def owning(active: int, waiting: float, held: Iterable[int] | None = None) -> Reading:
    """A reading from workers that actively own ``active`` of 4 partitions (``held``, 0, 1 ...
    by default; a partition listed twice is held by two workers' scrapes)."""
    held = range(active) if held is None else held
    counts = Counter(held)
    return Reading(
        {
            ("ticketpulse_contacts_waiting", (("channel", "chat"), ("queue", "sales"))): waiting,
            ("ticketpulse_topic_partitions", ()): 4.0,
            **{
                ("ticketpulse_partition_active", (("partition", str(p)),)): float(n)
                for p, n in counts.items()
            },
        }
    )


@dataclass
class ScriptedSource:
    readings: list[Reading]
    name: str = "scripted"

    async def read(self, session) -> Reading:
        return self.readings.pop(0)


async def test_a_reading_covering_some_partitions_keeps_the_last_complete_one_stale() -> None:
    """A rebalance or a lost worker leaves partitions unowned; their figures would read as
    zero, so the board keeps the last complete reading, marked stale, and says why."""
    source = ScriptedSource([owning(1, 5), owning(4, 9), owning(2, 1), owning(0, 0), owning(4, 7)])
    board = Board(source, refresh_s=1, windows=["15m"])

    def shown() -> tuple[float, bool, str | None]:
        doc = board.figures({})
        return doc["total"]["now"].get("waiting", 0), doc["stale"], doc["incomplete"]

    await board.refresh(None)  # before any complete reading, a partial one is the best there is
    assert shown() == (5, True, "1 of 4 partitions owned")
    await board.refresh(None)
    assert shown() == (9, False, None)
    await board.refresh(None)
    assert shown() == (9, True, "2 of 4 partitions owned")
    await board.refresh(None)
    assert shown() == (9, True, "0 of 4 partitions owned")
    await board.refresh(None)
    assert shown() == (7, False, None)


async def test_a_partition_counted_twice_and_another_missing_is_not_a_complete_reading() -> None:
    """Two workers scraped either side of a handover that moved partitions both ways: the
    active partitions add up to 4, but partition 0 is in both scrapes and 3 in neither."""
    source = ScriptedSource([owning(4, 9), owning(4, 30, held=[0, 0, 1, 2])])
    board = Board(source, refresh_s=1, windows=["15m"])
    await board.refresh(None)
    await board.refresh(None)
    doc = board.figures({})
    assert (doc["total"]["now"]["waiting"], doc["stale"]) == (9, True)
    assert doc["incomplete"] == "2 of 4 partitions owned, 1 by more than one worker"
