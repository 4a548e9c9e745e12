"""``ticketpulse wallboard``: a TV page, a JSON API and a Server-Sent Events feed.

aiohttp, which the stack already carries (Faust's web server is built on it): one process
with no build step and nothing fetched from the internet. A refresher reads the source every
``refresh_seconds``; every page, API call and stream is served from that one reading, so ten
TVs cost the workers one scrape per refresh. When the source stops answering, the last
reading is kept and marked stale with its age: the board never goes blank. The same holds for a
reading that covers only some of the topic's partitions (a worker gone and its partitions not
yet taken over, a rebalance in flight): it would show figures too low, so the last complete
reading stays on the board, marked stale, until the workers own every partition again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from streams.metrics.web_config import WebConfig
from streams.wallboard.figures import coverage, document
from streams.wallboard.sources import Reading, Source

log = logging.getLogger(__name__)
VERSION = 1


@dataclass
class Board:
    """The latest reading of the source, and who is waiting for the next one."""

    source: Source
    refresh_s: float
    windows: list[str]
    reading: Reading | None = None
    read_at: float | None = None
    error: str | None = None
    incomplete: str | None = None  # why the newest reading was not shown
    complete_shown: bool = False  # a reading covering every partition is on the board
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def refresh_forever(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                await self.refresh(session)
                await asyncio.sleep(self.refresh_s)

    async def refresh(self, session: aiohttp.ClientSession) -> None:
        try:
            self._accept(await self.source.read(session))
            error = None
        except Exception as exc:  # a source failure is shown on the board, never fatal
            error = f"{self.source.name} did not answer: {exc}"
        if error != self.error:
            (log.warning if error else log.info)(error or f"{self.source.name} answers again")
        self.error = error
        async with self._changed:
            self._changed.notify_all()

    def _accept(self, reading: Reading) -> None:
        """Show a reading, unless it covers only some partitions and a complete one is shown."""
        owned = coverage(reading.metrics)
        partial = owned is not None and owned[0] != owned[1]
        incomplete = _incomplete(owned) if owned and partial else None
        if incomplete != self.incomplete:
            (log.warning if incomplete else log.info)(
                f"{self.source.name}: {incomplete}; showing the last complete reading"
                if incomplete
                else f"{self.source.name}: every partition owned again"
            )
        self.incomplete = incomplete
        if not partial or not self.complete_shown:  # before the first complete one: the best
            self.reading, self.read_at, self.complete_shown = reading, time.time(), not partial

    async def next_reading(self) -> None:
        async with self._changed:
            await self._changed.wait()

    def figures(self, query: Any) -> dict[str, Any]:
        """The ``/api/v1/figures`` document for a request's ``queues``/``channels``/``window``."""
        now = time.time()
        age = None if self.read_at is None else now - self.read_at
        stale = age is None or self.error is not None or age > 2.5 * self.refresh_s
        stale = stale or self.incomplete is not None
        body = document(
            self.reading.metrics if self.reading else {},
            windows=self.windows,
            queues=_names(query.get("queues")),
            channels=_names(query.get("channels")),
        )
        return {
            "version": VERSION,
            "source": self.source.name,
            "at": self.read_at,
            "generated_at": now,
            "stale": stale,
            "age_seconds": age,
            "error": self.error,
            "incomplete": self.incomplete,
            "missing": self.reading.missing if self.reading else [],
            "refresh_seconds": self.refresh_s,
            "windows": self.windows,
            **body,
        }


def _incomplete(owned: tuple[int, int, int]) -> str:
    """The status line's reason: "3 of 4 partitions owned", and how many twice if any."""
    once, total, several = owned
    twice = f", {several} by more than one worker" if several else ""
    return f"{once} of {total} partitions owned{twice}"


def _names(text: str | None) -> set[str] | None:
    names = {n.strip() for n in (text or "").split(",") if n.strip()}
    return names or None


def make_app(board: Board, access: WebConfig | None = None) -> web.Application:
    """``access``: basic auth from the web config (``streams.metrics.web_config``)."""
    app = web.Application(middlewares=[(access or WebConfig()).middleware()])
    static = resources.files("streams.wallboard") / "static"

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=(static / "index.html").read_bytes(), content_type="text/html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kinds = {"board.js": "application/javascript", "board.css": "text/css"}
        if name not in kinds:
            raise web.HTTPNotFound
        return web.Response(body=(static / name).read_bytes(), content_type=kinds[name])

    async def figures(request: web.Request) -> web.Response:
        body = orjson.dumps(board.figures(request.query), option=orjson.OPT_NON_STR_KEYS)
        return web.Response(body=body, content_type="application/json")

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            await response.write(b"retry: 2000\n\n")  # the browser reconnects by itself
            while True:
                doc = orjson.dumps(board.figures(request.query), option=orjson.OPT_NON_STR_KEYS)
                await response.write(b"data: " + doc + b"\n\n")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(board.next_reading(), timeout=board.refresh_s * 2)
        except ConnectionResetError:  # a closed tab, a reloading TV: routine, not an error
            log.debug("a /api/v1/stream client went away")
        return response

    async def start_refresher(app: web.Application) -> Any:
        task = asyncio.create_task(board.refresh_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/v1/figures", figures)
    app.router.add_get("/api/v1/stream", stream)
    app.cleanup_ctx.append(start_refresher)
    return app


def serve(board: Board, host: str, port: int, access: WebConfig | None = None) -> None:
    access = access or WebConfig()
    tls = access.ssl_context()
    scheme = "https" if tls else "http"
    print(f"wallboard: {scheme}://{host}:{port}/ (source: {board.source.name})", flush=True)
    web.run_app(make_app(board, access), host=host, port=port, print=None, ssl_context=tls)
