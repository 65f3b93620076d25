"""A real webhook receiver on 127.0.0.1 for the tests: records every POST, answers as programmed.

``WebhookReceiver`` is a threaded ``http.server`` on a loopback port. It records the headers and
the raw body bytes of every POST (``received``) and answers each call with the next status of a
programmable plan: a list (``[500, 500, 200]``; 200 once the list is used up) or a function of
the 0-based call number (``lambda n: 500 if n % 2 == 0 else 200``). ``retry_after`` adds a
``Retry-After`` header to 429/503 answers; ``delay`` holds each answer back (a slow receiver).

``listening=False`` reserves the port without listening, so connections are refused (a receiver
that is down) until ``listen()``; the URL stays the same, as for a real outage. Every answer is
bounded: nothing here waits longer than ``delay``, and ``stop()`` closes the socket.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "WebhookReceiver"]

Plan = list[int] | Callable[[int], int]


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # what we answered
    at: float


class WebhookReceiver:
    def __init__(
        self, plan: Plan | None = None, *, retry_after: str | None = None, delay: float = 0.0, listening: bool = True
    ) -> None:
        self.plan: Plan = plan if plan is not None else []
        self.retry_after = retry_after
        self.delay = delay
        self.received: list[Received] = []
        self._calls = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(), bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.server_bind()  # bound but not listening: connections are refused
        if listening:
            self.listen()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/webhooks/tttranscribe"

    def listen(self) -> None:
        self._server.server_activate()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def set_plan(self, plan: Plan) -> None:
        with self._lock:
            self.plan = plan

    def _next_status(self) -> int:
        with self._lock:
            n, self._calls = self._calls, self._calls + 1
            if callable(self.plan):
                return self.plan(n)
            return self.plan[n] if n < len(self.plan) else 200

    def ok_count(self, key: str) -> int:
        """How many 2xx answers we gave for one idempotency key."""
        return sum(1 for r in self.received if r.headers.get("x-idempotency-key") == key and 200 <= r.status < 300)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver._next_status()
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Received(headers, body, status, time.time()))
                answer = json.dumps({"received": 200 <= status < 300}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                if receiver.retry_after is not None and status in (429, 503):
                    self.send_header("Retry-After", receiver.retry_after)
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
