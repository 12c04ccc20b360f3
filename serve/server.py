"""``--serve [HOST:]PORT``: the web view of a run, served from a thread of the run while it runs.

Starlette + uvicorn: a small, well-kept ASGI stack whose streaming responses and per-connection flow control let
one event-loop thread serve every viewer, slow or vanished ones included, with no thread per client.

Safe by default: loopback unless told otherwise, and any other address needs a token (`plan_serving`). The
server lives exactly as long as the run: `WebView` binds before the first frame (a taken port is bad input),
and its exit (file finished, Ctrl-C, failure) keeps the final numbers served for ``serve.linger`` seconds after
a run that ended by itself, then closes every connection and the socket.
"""
from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
from dataclasses import dataclass
from types import TracebackType

import uvicorn

from core.config import ConfigError
from serve.app import build_app
from serve.hub import FrameHub
from serve.live import LiveRun, WebSink
from stream.pipeline import Pipeline

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
GENERATE = "auto"  # --serve-token auto / serve.token: auto
BACKLOG = 64
SHUTDOWN_GRACE = 1.0  # seconds open streams get to end before uvicorn cancels them


@dataclass(frozen=True)
class ServePlan:
    """Where to serve and the token every request must carry (None: open); ``generated``: made here, shown once."""

    host: str
    port: int
    token: str | None
    generated: bool = False

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}/"


def parse_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); the host defaults to loopback."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else ""
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--serve '{text}' is not [HOST:]PORT with a port in 0..65535")
    return host or DEFAULT_HOST, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def plan_serving(address: str, token: str | None) -> ServePlan:
    """Check ``--serve`` before anything is loaded: a non-loopback address without a token is refused."""
    host, port = parse_address(address)
    if token == GENERATE:
        return ServePlan(host, port, secrets.token_urlsafe(24), generated=True)
    if token is None and not is_loopback(host):
        raise ConfigError(f"--serve {host}:{port} is not a loopback address, so the web view needs a token: "
                          f"--serve-token TOKEN, serve.token, or --serve-token {GENERATE} to generate one")
    return ServePlan(host, port, token)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), port 0 picking a free one; a taken port or unknown host is bad input."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)  # now, so a client that reads the logged URL is queued, not refused, while uvicorn starts
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class WebView:
    """The web view of ``pipelines`` (built, not yet run; one per source, all served by one server): adds a web
    sink after each one's other sinks, serves while in the ``with`` block."""

    def __init__(self, pipelines: list[Pipeline], plan: ServePlan):
        cfg = pipelines[0].cfg.serve
        self.pipelines, self.plan, self.cfg = pipelines, plan, cfg
        self.sock = bind(plan.host, plan.port)
        self.port = self.sock.getsockname()[1]
        self.lives = []
        for pipeline in pipelines:
            live = LiveRun(pipeline.stats, cfg, FrameHub(cfg.fps, cfg.quality))
            pipeline.sinks.append(WebSink(live))
            self.lives.append(live)
        self.live, self.hub = self.lives[0], self.lives[0].hub  # the first source's: a single run's only one
        config = uvicorn.Config(build_app(self.lives, plan.token), log_config=None, log_level="warning",
                                access_log=False, lifespan="off", http="h11", ws="none", server_header=False,
                                timeout_graceful_shutdown=SHUTDOWN_GRACE)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="web-server", daemon=True)

    @property
    def url(self) -> str:
        return self.plan.url(self.port)

    def __enter__(self) -> WebView:
        self._thread.start()
        for live in self.lives:
            live.start()
        if self.plan.generated:
            log.warning("serving %s?token=%s (generated token, shown only here)", self.url, self.plan.token)
        else:
            log.info("serving %s%s", self.url, "?token=***" if self.plan.token else "")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stopped = all(p.stopping for p in self.pipelines)  # Ctrl-C, SIGTERM or a closed display window
        for pipeline, live in zip(self.pipelines, self.lives):
            live.finish("failed" if pipeline.failed or exc is not None else "stopped" if pipeline.stopping
                        else "finished")
        if exc is None and not stopped and self.cfg.linger > 0:
            log.info("run over; its final numbers stay at %s for %g s (Ctrl-C to leave now)", self.url,
                     self.cfg.linger)
            self.pipelines[0].wait_stop(self.cfg.linger)  # a stop request ends the wait
        self.close()

    def close(self) -> None:
        """End the MJPEG streams, stop the server and wait for it (bounded: a stuck client is cancelled)."""
        for live in self.lives:
            live.hub.close()
        self.server.should_exit = True
        self._thread.join(timeout=SHUTDOWN_GRACE + 5)
        self.sock.close()
        log.info("web view closed")
