"""Speech recognition on the Hugging Face Inference API (``huggingface_hub.InferenceClient``).

Contracts:
- Audio goes up as 16 kHz mono FLAC (lossless, about half of 16-bit PCM), base64 in the JSON body
  ``{"inputs", "parameters": {"return_timestamps": true}}``: timestamps give segments, and Whisper
  on the hosted pipeline refuses audio over 30 s without them. The wire size is checked against
  ``max_upload_bytes`` before anything is sent.
- Models are tried in order. Per model, 429/5xx/connection errors are retried (tenacity, at most
  ``max_attempts`` calls) waiting what the server asks (``Retry-After``, a 503's ``estimated_time``)
  up to ``max_wait``, else exponential backoff with jitter; 404/410/400/422 and time-outs move to
  the next model; 413 ends the hosted attempts. 401/403 (key rejected) and ``HF_HUB_OFFLINE``
  are configuration errors: never retried, no local fallback (it would hide them behind
  normal-looking results), ``config_error`` says why for /ready, the job fails. A later success
  clears ``config_error``.
- When every hosted model failed and ``fallback`` is given, the local engine transcribes and its
  ``Transcript`` is returned as it is (its own ``model_used``) with ``extra["fallbackReason"]``.
  Otherwise ``JobFailure("transcription_failed")``. Error text never becomes a transcript.
- ``language`` comes from the answer when it has one, else from the fallback engine's own
  detection when that model is already loaded and multilingual, else ``None``. The API gives no
  probabilities, so ``confidence`` is ``None``. Without chunks, the text is one segment spanning
  [0, duration]: a true bound, and clients that read only segments still get the text.
- ``base_url``: unset → the hf-inference router (``model=<id>``; huggingface_hub checks the
  model's task on the Hub once per model). With ``{model}`` in it, each model is posted at that
  URL (router-shaped servers, the tests' fake). Without it, it is a dedicated Inference Endpoint:
  every call goes to that URL and ``models`` name what it serves (for ``modelUsed``).
- huggingface_hub refuses every request, Inference API included, when ``HF_HUB_OFFLINE`` was set
  at its import; ``config_error`` reports it.
"""
from __future__ import annotations

import email.utils
import io
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from core.asr import SAMPLE_RATE, AsrProvider, ProgressFn, Transcript
from core.errors import JobFailure

log = logging.getLogger("tttranscribe.asr")

PROVIDER = "hf-inference"
# Retried on the same model; everything else is the model's or the key's final answer.
_RETRY_STATUSES = {429, 500, 502, 503, 504}


def encode_flac(audio: np.ndarray) -> bytes:
    """16 kHz mono float32 samples → a 16-bit FLAC file in memory (PyAV, no ffmpeg binary)."""
    import av

    pcm = np.clip(np.round(np.asarray(audio, dtype=np.float32) * 32767), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        for start in range(0, len(pcm), 16384):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 16384], format="s16", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


class _Hosted(Exception):
    """One failed hosted call, classified. ``kind``: retry (same model) | next (model) | stop
    (hosted) | config (the key: stop, no fallback)."""

    def __init__(self, kind: str, detail: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.status, self.retry_after = kind, detail, status, retry_after


class HfInferenceAsr:
    """``AsrProvider`` on the Hugging Face Inference API, with ordered model fallback."""

    def __init__(
        self,
        *,
        token: str,
        models: Sequence[str],
        base_url: str | None = None,
        timeout: float = 120.0,
        fallback: Callable[[], AsrProvider] | None = None,
        max_attempts: int = 4,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        max_upload_bytes: int = 25 * 1024 * 1024,
    ) -> None:
        if not models:
            raise ValueError("at least one model is needed")
        self._token = token
        self._models = list(models)
        self._base_url = base_url.rstrip("/") if base_url else None
        self._timeout = timeout
        self._fallback = fallback
        self._local: AsrProvider | None = None
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._sleep = sleep
        self._max_upload_bytes = max_upload_bytes
        self._config_error: str | None = None
        self._client: Any = None

    @property
    def model_used(self) -> str:
        """The primary model: what a job is planned (and estimated) with."""
        return self._models[0]

    @property
    def config_error(self) -> str | None:
        """Why this provider cannot work until its configuration changes, or None. No network."""
        if _offline():
            return "HF_HUB_OFFLINE is set, so huggingface_hub refuses to call the Inference API"
        return self._config_error

    def transcribe(self, audio: np.ndarray, on_progress: ProgressFn | None = None) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        flac = encode_flac(audio)
        wire = 4 * ((len(flac) + 2) // 3) + 64  # base64 inside the small JSON envelope
        if wire > self._max_upload_bytes:
            why = f"the audio is {wire / 2**20:.1f} MB to upload, over the {self._max_upload_bytes / 2**20:.1f} MB limit"
            log.warning("[transcribe] not sent to Hugging Face: %s", why)
            return self._fall_back(audio, on_progress, why, retryable=False)
        if _offline():  # not one call can succeed, and the operator must see it in /ready
            raise JobFailure("transcription_failed", "The Hugging Face speech recognizer is switched off (offline mode).")
        failures: list[str] = []
        for model in self._models:
            try:
                answer, attempts = self._call_model(model, flac, duration)
            except _Hosted as err:
                failures.append(f"{model}: {err.detail}")
                if err.kind == "config":
                    self._config_error = f"HF_API_KEY was rejected by Hugging Face ({err.status})"
                    raise JobFailure("transcription_failed", "The Hugging Face API key was rejected.") from None
                if err.kind == "stop":
                    break
                continue
            self._config_error = None
            if on_progress:
                on_progress(duration)
            extra: dict[str, Any] = {"provider": PROVIDER, "attempts": attempts}
            if failures:
                extra["skippedModels"] = failures
            return Transcript(
                text=answer["text"],
                segments=answer["segments"],
                language=answer.get("language") or self._detect_language(audio),
                confidence=None,
                duration=round(duration, 2),
                model_used=model,
                extra=extra,
            )
        return self._fall_back(audio, on_progress, "; ".join(failures), retryable=True)

    # ---- one model -----------------------------------------------------------------------------

    def _call_model(self, model: str, flac: bytes, duration: float) -> tuple[dict[str, Any], int]:
        """The parsed answer of ``model`` and the number of calls it took; raises ``_Hosted``."""
        counter = itertools.count(1)

        def once() -> dict[str, Any]:
            attempt = next(counter)
            try:
                return self._call_once(model, flac, duration)
            except _Hosted as err:
                log.warning(
                    "[transcribe] %s answered %s (attempt %d/%d): %s",
                    model, err.status or "-", attempt, self._max_attempts, err.detail,
                )
                raise

        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, _Hosted) and e.kind == "retry"),
            sleep=self._sleep,
            reraise=True,
        )
        answer = retrying(once)
        return answer, next(counter) - 1

    def _wait(self, state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, _Hosted) and err.retry_after is not None:
            return min(max(err.retry_after, 0.0), self._max_wait)
        return wait_random_exponential(multiplier=1, max=self._max_wait)(state)

    def _call_once(self, model: str, flac: bytes, duration: float) -> dict[str, Any]:
        from huggingface_hub import InferenceClient

        if self._client is None:
            self._client = InferenceClient(provider=PROVIDER, token=self._token, timeout=self._timeout)
        target = model
        if self._base_url:
            target = self._base_url.replace("{model}", model) if "{model}" in self._base_url else self._base_url
        try:
            out = self._client.automatic_speech_recognition(flac, model=target, extra_body={"return_timestamps": True})
        except Exception as exc:
            raise _classify(exc, self._timeout) from exc
        if not isinstance(out.text, str):  # a 200 without text is not a transcript
            raise _Hosted("next", "answer without text", 200)
        text = out.text.strip()
        language = out.get("language")  # absent from Whisper's hosted answer, present on some servers
        return {"text": text, "segments": _segments(out, text, duration),
                "language": language if isinstance(language, str) and language else None}

    # ---- when hosted fails --------------------------------------------------------------------

    def _fall_back(self, audio: np.ndarray, on_progress: ProgressFn | None, why: str, *, retryable: bool) -> Transcript:
        local = self._local_engine()
        if local is None:
            raise JobFailure("transcription_failed", f"Hugging Face speech recognition failed: {why}.", retryable)
        log.warning("[transcribe] falling back to the local engine (%s): %s", local.model_used, why)
        transcript = local.transcribe(audio, on_progress)
        transcript.extra = {**transcript.extra, "fallbackReason": why}
        return transcript

    def _local_engine(self) -> AsrProvider | None:
        if self._local is None and self._fallback is not None:
            self._local = self._fallback()
        return self._local

    def _detect_language(self, audio: np.ndarray) -> str | None:
        # Only a model already in memory: loading one just to name the language would cost more
        # than the hosted call saved.
        local = self._local_engine()
        detect = getattr(local, "detect_language", None)
        if detect is None or not getattr(local, "loaded", False):
            return None
        try:
            return detect(audio)
        except Exception:
            log.exception("[transcribe] local language detection failed")
            return None


def _segments(out: Any, text: str, duration: float) -> list[dict[str, Any]]:
    segments = []
    for chunk in out.chunks or []:
        stamp = list(chunk.get("timestamp") or []) + [None, None]
        start = min(float(stamp[0] or 0.0), duration)
        end = min(float(stamp[1]) if stamp[1] is not None else duration, duration)  # last end may be null
        if (chunk.get("text") or "").strip():
            segments.append({"start": round(start, 2), "end": round(max(end, start), 2), "text": chunk["text"].strip()})
    if not segments and text:
        segments = [{"start": 0.0, "end": round(duration, 2), "text": text}]
    return segments


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


def _classify(exc: Exception, timeout: float) -> _Hosted:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(exc, OfflineModeIsEnabled):
        return _Hosted("stop", "HF_HUB_OFFLINE is set")  # checked before calling; here only if set meanwhile
    if isinstance(exc, InferenceTimeoutError):
        # A model that did not answer within the timeout is busy; the next one may not be.
        return _Hosted("next", f"no answer within {timeout:g}s")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code
        message = _server_message(exc)
        if status in (401, 403) and not isinstance(exc, RepositoryNotFoundError):
            return _Hosted("config", f"key rejected: {message}", status)
        if status == 413:
            return _Hosted("stop", f"upload too large: {message}", status)
        if status in _RETRY_STATUSES:
            return _Hosted("retry", message, status, _retry_after(exc.response))
        return _Hosted("next", message, status)  # 404/410 model gone, 400/422 refused, gated
    if isinstance(exc, httpx2.TransportError):  # connection refused/reset: the network, not the model
        return _Hosted("retry", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):  # not an ASR model (Hub check) or an answer that is not JSON
        return _Hosted("next", f"{type(exc).__name__}: {exc}")
    raise exc


def _server_message(exc: Any) -> str:
    try:
        body = exc.response.json()
        text = body.get("error") if isinstance(body, dict) else None
    except Exception:
        text = None
    return str(text or exc.server_message or f"HTTP {exc.response.status_code}")[:200]


def _retry_after(response: Any) -> float | None:
    """Seconds the server asked to wait: ``Retry-After`` (seconds or a date) or ``estimated_time``."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            return float(header)
        except ValueError:
            try:
                return max(email.utils.parsedate_to_datetime(header).timestamp() - time.time(), 0.0)
            except (TypeError, ValueError):
                return None
    try:
        body = json.loads(response.content or b"{}")
        return float(body["estimated_time"]) if isinstance(body, dict) and "estimated_time" in body else None
    except (ValueError, TypeError):
        return None
