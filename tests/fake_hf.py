"""A fake Hugging Face Inference API for ASR on 127.0.0.1, answering like the real one.

Routes are router-shaped: ``POST /models/<org>/<name>`` (``base_url`` gives the template for
``HfInferenceAsr``). Each request must carry ``Authorization: Bearer <token>`` (else 401
``{"error": "Invalid credentials in Authorization header"}``, whatever is scripted) and audio the
way the real API takes it: raw ``audio/*`` bytes, or JSON ``{"inputs": <base64>, "parameters"}``.
The audio must be a FLAC file; anything else is a 400.

Per model, tests script answers in order (``loading``, ``gone``, ``rate_limited``, ``status``,
``slow``...); when the script is used up, the model transcribes. A transcription is real: the
uploaded FLAC is decoded and run through the engine the test passes (the local tiny.en model),
so the text proves the audio arrived intact. ``chunks`` come back only when
``return_timestamps`` was asked for, as on the real API. Every request is recorded without its
token.
"""
from __future__ import annotations

import base64
import io
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

__all__ = ["FakeHf", "Answer", "Seen", "loading", "gone", "not_found", "rate_limited", "status", "slow"]


@dataclass
class Answer:
    """What the fake says to one request. ``body=None`` with 200 means: transcribe the upload."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def loading(model: str, estimated_time: float) -> Answer:
    return Answer(503, {"error": f"Model {model} is currently loading", "estimated_time": estimated_time})


def gone(model: str) -> Answer:
    return Answer(410, {"error": f"The model {model} is no longer supported by the hf-inference provider."})


def not_found(model: str) -> Answer:
    return Answer(404, {"error": f"Model {model} does not exist"})


def rate_limited(retry_after: float) -> Answer:
    return Answer(429, {"error": "Rate limit reached. Please retry later."}, {"Retry-After": f"{retry_after:g}"})


def status(code: int, error: str) -> Answer:
    return Answer(code, {"error": error})


def slow(seconds: float) -> Answer:
    """Transcribe, but only answer after ``seconds`` (or when the server stops)."""
    return Answer(delay=seconds)


@dataclass
class Seen:
    """One request as it arrived (the token itself is never kept)."""

    path: str
    model: str
    content_type: str
    authorized: bool
    body_bytes: int
    audio_bytes: int
    audio_seconds: float | None
    return_timestamps: bool
    status: int = 0


class FakeHf:
    """Threaded HTTP server on 127.0.0.1; use as a context manager."""

    def __init__(self, transcribe: Callable[[np.ndarray], Any] | None = None, token: str = "hf_test_token") -> None:
        self._transcribe = transcribe
        self.token = token
        self.requests: list[Seen] = []
        self._scripts: dict[str, deque[Answer]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The ``HF_INFERENCE_BASE_URL`` that routes each model to its own path here."""
        return f"{self.url}/models/{{model}}"

    def script(self, model: str, *answers: Answer) -> None:
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(answers)

    def calls(self, model: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if model is None or s.model == model]

    def __enter__(self) -> FakeHf:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    # ---- called from the handler --------------------------------------------------------------

    def _next(self, model: str) -> Answer:
        with self._lock:
            queue = self._scripts.get(model)
            return queue.popleft() if queue else Answer()

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def _run(self, audio: np.ndarray, timestamps: bool) -> dict[str, Any]:
        if self._transcribe is None:
            raise RuntimeError("FakeHf was built without a transcriber")
        t = self._transcribe(audio)
        answer: dict[str, Any] = {"text": " " + t.text}  # the hosted pipeline keeps Whisper's leading space
        if timestamps:
            answer["chunks"] = [{"timestamp": [s["start"], s["end"]], "text": " " + s["text"]} for s in t.segments]
        return answer


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_POST(self) -> None:
        owner: FakeHf = self.server.owner
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        model = path.removeprefix("/models/") if path.startswith("/models/") else ""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        authorized = self.headers.get("Authorization") == f"Bearer {owner.token}"
        audio, timestamps, problem = _audio_of(body, content_type)
        seconds = None
        decoded = None
        if audio is not None:
            from faster_whisper.audio import decode_audio

            try:
                decoded = decode_audio(io.BytesIO(audio), sampling_rate=16000)
                seconds = round(len(decoded) / 16000, 3)
            except Exception:  # PyAV's many decode errors: the real API answers 400
                problem = "Malformed soundfile"
        seen = Seen(path, model, content_type, authorized, len(body), len(audio or b""), seconds, timestamps)
        owner._record(seen)
        if not authorized:
            return self._json(seen, 401, {"error": "Invalid credentials in Authorization header"})
        if not model:
            return self._json(seen, 404, {"error": "Not Found"})
        answer = owner._next(model)
        if answer.delay:
            owner._stop.wait(answer.delay)
        if answer.status != 200 or answer.body is not None:
            return self._json(seen, answer.status, answer.body or {}, answer.headers)
        if decoded is None:
            return self._json(seen, 400, {"error": problem})
        self._json(seen, 200, owner._run(decoded, timestamps))

    def _json(self, seen: Seen, code: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        seen.status = code
        data = json.dumps(doc).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up (its timeout), as real clients do


def _audio_of(body: bytes, content_type: str) -> tuple[bytes | None, bool, str]:
    """(FLAC bytes, return_timestamps asked, why not) from a request body in either accepted form."""
    timestamps = False
    if content_type == "application/json":
        try:
            doc = json.loads(body)
            audio = base64.b64decode(doc["inputs"], validate=True)
            timestamps = bool((doc.get("parameters") or {}).get("return_timestamps"))
        except (ValueError, KeyError, TypeError):
            return None, False, "Malformed JSON body: expected base64 `inputs`"
    elif content_type.startswith("audio/"):
        audio = body
    else:
        return None, False, f"Content type {content_type or 'none'} is not an audio type"
    if not audio.startswith(b"fLaC") or (content_type.startswith("audio/") and content_type != "audio/flac"):
        return None, timestamps, "Malformed soundfile: expected FLAC"
    return audio, timestamps, ""
