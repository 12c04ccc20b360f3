"""The web view's ASGI app: ``/`` dashboard (a grid of them for several sources), ``/stream.mjpg``,
``/api/status``, ``/metrics``, and ``/source/NAME/`` for each source; every route reads,
none can change the pipeline (GET and HEAD only). With a token, `TokenGate` checks it on every request first.
"""
from __future__ import annotations

import asyncio
import hmac
from html import escape
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from serve.hub import FrameHub
from serve.live import LiveRun
from serve.metrics import CONTENT_TYPE, metrics_text, run_registry

DASHBOARD = Path(__file__).with_name("dashboard.html")
PART = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n"  # a boundary and the headers of the part after it
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


class TokenGate:
    """401 unless the request carries the token (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``), compared
    in constant time; the 401 says nothing about the run or the routes."""

    def __init__(self, app: ASGIApp, token: str):
        self.app, self.token = app, token.encode()

    def allowed(self, scope: Scope) -> bool:
        offered = []
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                offered.append(value[7:].strip())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        offered += [v.encode() for v in query.get("token", [])]
        return any(hmac.compare_digest(candidate, self.token) for candidate in offered)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.allowed(scope):
            response = PlainTextResponse("unauthorized\n", 401, headers={"WWW-Authenticate": "Bearer", **NO_STORE})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class MjpegStream:
    """``multipart/x-mixed-replace`` of the hub's newest JPEG. A viewer that reads slowly or not at all only
    waits in its own ``send`` (uvicorn's flow control) and misses frames; it never holds the pipeline."""

    def __init__(self, hub: FrameHub, max_clients: int):
        self.hub, self.max_clients = hub, max_clients
        self.poll = min(0.05, hub.interval / 2)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            response: Response = PlainTextResponse("method not allowed\n", 405, headers={"Allow": "GET, HEAD"})
        elif self.hub.viewers >= self.max_clients:
            response = PlainTextResponse("too many viewers\n", 503, headers={"Retry-After": "10"})
        else:
            response = StreamingResponse(self._parts(), media_type="multipart/x-mixed-replace; boundary=frame",
                                         headers=NO_STORE)
            self.hub.add_viewer()
            try:
                await response(scope, receive, send)
            finally:
                self.hub.remove_viewer()
            return
        await response(scope, receive, send)

    async def _parts(self) -> AsyncIterator[bytes]:
        """Each JPEG followed by the boundary and headers of the next part: a browser shows a part only once it
        has read the next part's headers, so parts sent header first would show each frame a frame late, and
        the last frame of a finished run (or of a stalled camera) never. The parts carry no Content-Length (not
        known ahead); clients find the boundary, as the multipart format intends."""
        shown = 0
        yield PART
        while not self.hub.closed:
            seq, jpeg = self.hub.jpeg()
            if seq == shown:
                await asyncio.sleep(self.poll)
                continue
            shown = seq
            yield b"%b\r\n%b" % (jpeg, PART)


def grid_page(names: list[str]) -> str:
    """``/`` for a run of several sources: every live stream in a grid, each a link to its source's dashboard."""
    cells = "\n".join(
        f'<a class="cell" href="source/{escape(n)}/"><img data-src="source/{escape(n)}/stream.mjpg" alt="{escape(n)}">'
        f'<span>{escape(n)}</span></a>' for n in names)
    return GRID.replace("<!--cells-->", cells)


GRID = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>driving-detect: sources</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { margin: 0; font: 14px system-ui, sans-serif; background: #111; color: #eee; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 8px; padding: 8px; }
.cell { position: relative; color: inherit; text-decoration: none; background: #000; }
.cell img { width: 100%; display: block; }
.cell span { position: absolute; left: 6px; top: 4px; background: #0009; padding: 2px 6px; }
</style></head>
<body><main>
<!--cells-->
</main>
<script>
// the token, if the page was opened with one, goes to the streams and the links too
const query = location.search;
for (const image of document.querySelectorAll("img[data-src]")) image.src = image.dataset.src + query;
for (const link of document.querySelectorAll("a.cell")) link.href += query;
</script></body></html>
"""


def build_app(lives: list[LiveRun], token: str | None) -> Starlette:
    """The app over ``lives`` (one per source, each with its hub); ``token`` None: open (the loopback default).

    Every source has its dashboard at ``/source/NAME/`` (with its ``api/status`` and ``stream.mjpg``); ``/`` is
    the dashboard of a single source, or the grid of several; ``/api/status`` is the single source's status, or
    ``{"sources": {NAME: status}}``; ``/metrics`` has every source, by a ``source`` label."""
    page = DASHBOARD.read_text()
    registry = run_registry(lives)
    single = lives[0] if len(lives) == 1 else None
    grid = grid_page([live.source_id for live in lives])

    async def dashboard(_: Request) -> Response:
        return HTMLResponse(page, headers=NO_STORE)

    async def home(_: Request) -> Response:
        return HTMLResponse(page if single is not None else grid, headers=NO_STORE)

    def status_of(live: LiveRun):
        async def status(_: Request) -> Response:
            return JSONResponse(live.status(), headers=NO_STORE)
        return status

    async def all_status(_: Request) -> Response:
        if single is not None:
            return JSONResponse(single.status(), headers=NO_STORE)
        return JSONResponse({"sources": {live.source_id: live.status() for live in lives}}, headers=NO_STORE)

    async def metrics(_: Request) -> Response:
        return Response(metrics_text(registry), media_type=CONTENT_TYPE, headers=NO_STORE)

    routes = [Route("/", home), Route("/api/status", all_status), Route("/metrics", metrics)]
    if single is not None:
        routes.append(Route("/stream.mjpg", MjpegStream(single.hub, single.cfg.max_clients)))
    for live in lives:
        base = f"/source/{live.source_id}"
        routes += [Route(f"{base}/", dashboard), Route(f"{base}/api/status", status_of(live)),
                   Route(f"{base}/stream.mjpg", MjpegStream(live.hub, live.cfg.max_clients))]
    return Starlette(routes=routes, middleware=[Middleware(TokenGate, token=token)] if token else [])
