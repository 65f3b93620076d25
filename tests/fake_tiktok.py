"""Loopback stand-ins for TikTok's short-link hosts; nothing here can reach the internet.

``FakeShortLinkServer`` is a threaded HTTP server on 127.0.0.1 (random port) that answers the
routes a test configures and records every request. A second instance, with no routes, plays a
"private target" that must never be contacted.

``LoopbackRouter`` is a requests transport adapter: requests for the hosts it knows go to
``http://127.0.0.1:<port>`` with the original Host header; any other host is refused with
``requests.ConnectionError`` and recorded, so a test can assert that no request left for it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    path: str
    host: str
    user_agent: str


class FakeShortLinkServer:
    """Answers ``route(path, status, location)``; unknown paths get 404. Use as a context manager."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str | None]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def route(self, path: str, status: int, location: str | None = None) -> None:
        """Answer GET/HEAD of ``path`` (query ignored) with ``status`` and, if given, a Location header."""
        self.routes[path] = (status, location)

    def __enter__(self) -> FakeShortLinkServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.seen.append(Seen(handler.path, handler.headers.get("Host", ""), handler.headers.get("User-Agent", "")))
        status, location = self.routes.get(urlsplit(handler.path).path, (404, None))
        handler.send_response(status)
        if location is not None:
            handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                fake._answer(self)

            do_HEAD = do_GET

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

        return Handler


class LoopbackRouter(HTTPAdapter):
    """Sends requests for ``port_by_host`` hosts to 127.0.0.1:<port>; refuses and records the rest."""

    def __init__(self, port_by_host: dict[str, int]) -> None:
        super().__init__(max_retries=0)
        self.port_by_host = {host.lower(): port for host, port in port_by_host.items()}
        self.sent: list[str] = []
        """URLs as the client asked for them (before rewriting), in order."""
        self.refused: list[str] = []
        """URLs for hosts outside the map; none of them was connected to."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = request.url or ""
        parts = urlsplit(url)
        port = self.port_by_host.get((parts.hostname or "").lower())
        if port is None:
            self.refused.append(url)
            raise requests.ConnectionError(f"LoopbackRouter refuses {url!r}")
        self.sent.append(url)
        request.headers["Host"] = parts.netloc
        request.url = urlunsplit(("http", f"127.0.0.1:{port}", parts.path or "/", parts.query, ""))
        return super().send(request, **kwargs)

    def session(self) -> requests.Session:
        """A fresh Session whose every http(s) request goes through this router, ignoring proxy env vars."""
        session = requests.Session()
        session.trust_env = False
        session.mount("https://", self)
        session.mount("http://", self)
        return session
