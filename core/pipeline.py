"""One work, start to finish: download → decode → transcribe → result.

Contracts:
- Temp files live in a directory under ``tmp_dir`` that is removed whatever happens.
- Every failure ends as a ``JobFailure`` with a contract code on all attached jobs; unexpected
  exceptions are logged with their traceback and shown to users only as ``internal_error``.
- Progress is written at most every ``progress_interval`` seconds (and on every step change),
  so a long transcription does not hammer the store.
"""
from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from core import audio as audio_mod
from core.asr import AsrProvider, Transcript
from core.errors import JobFailure
from core.jobs import JobService
from core.store import Record

log = logging.getLogger("tttranscribe.jobs")


class DownloadLike(Protocol):
    path: Path
    metadata: dict[str, Any]
    duration: float | None


class DownloaderLike(Protocol):
    def download(self, url: str, workdir: Path, on_progress: Callable[[int, int | None], None] | None = None) -> Any: ...


class Pipeline:
    """Runs claimed works; shared by all worker threads of a process."""

    def __init__(
        self,
        jobs: JobService,
        downloader: DownloaderLike,
        asr: Callable[[], AsrProvider],
        *,
        tmp_dir: Path,
        keep_text_max: int,
        max_seconds: float,
        progress_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.downloader = downloader
        self.asr = asr
        self.tmp_dir = tmp_dir
        self.keep_text_max = keep_text_max
        self.max_seconds = max_seconds
        self.progress_interval = progress_interval
        self.clock = clock

    def run(self, work: Record) -> None:
        key = work["key"]
        started = self.clock()
        log.info("[job-processing] start %s (attempt %s, jobs %s)", key, work["attempts"], work["jobs"])
        try:
            metadata, audio = self._fetch(work)
            transcript = self._transcribe(key, audio)
            self.jobs.advance(key, "finishing")
            elapsed = self.clock() - started
            result = self._result(transcript, audio, elapsed)
            self.jobs.complete(key, result, metadata, elapsed)
            log.info("[job-processing] done %s: %.2fs audio in %.2fs", key, transcript.duration, elapsed)
        except JobFailure as failure:
            log.warning("[job-processing] failed %s: %s [code: %s]", key, failure.message, failure.code)
            self.jobs.fail(key, failure)
        except Exception:
            log.exception("[job-processing] internal error in %s", key)
            self.jobs.fail(key, JobFailure("internal_error", "An internal error stopped this job."))

    def transcribe_file(self, path: Path, on_progress: Callable[[float], None] | None = None) -> Record:
        """A local file through the same decode → transcribe → result steps (the CLI's path).

        ``on_progress`` gets the fraction of the audio covered. Raises ``JobFailure``.
        """
        started = self.clock()
        audio = audio_mod.decode(path)
        duration = len(audio) / audio_mod.SAMPLE_RATE
        transcript = self.asr().transcribe(audio, on_progress=lambda s: on_progress and on_progress(s / duration))
        return self._result(transcript, audio, self.clock() - started)

    def _fetch(self, work: Record) -> tuple[Record, Any]:
        key = work["key"]
        tick = self._ticker()

        def on_bytes(done: int, total: int | None) -> None:
            if total and tick():
                self.jobs.advance(key, "downloading", done / total)

        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.tmp_dir, prefix="dl-") as workdir:
            download = self.downloader.download(work["fetchUrl"], Path(workdir), on_progress=on_bytes)
            metadata = {**download.metadata}
            self.jobs.remember_metadata(work["videoId"], metadata)
            self.jobs.advance(key, "downloading", 1.0, metadata=metadata)
            audio = audio_mod.decode(download.path)
        seconds = len(audio) / audio_mod.SAMPLE_RATE
        expected = download.duration
        # A body cut short without Content-Length is reported by yt-dlp as a success: only the
        # decoded length against the metadata's duration reveals it.
        if expected and seconds < expected - max(1.0, 0.05 * expected):
            raise JobFailure(
                "download_network",
                f"The download was cut short ({seconds:.1f}s of {expected:.1f}s of audio).",
            )
        if seconds > self.max_seconds:
            raise JobFailure("media_too_long", f"The audio is {seconds:.0f}s long; the limit is {self.max_seconds:.0f}s.")
        return metadata, audio

    def _transcribe(self, key: str, audio: Any) -> Transcript:
        duration = len(audio) / audio_mod.SAMPLE_RATE
        started = self.clock()
        tick = self._ticker()
        self.jobs.advance(key, "transcribing", 0.0, eta=started + self.jobs.estimate_seconds(duration))

        def on_covered(seconds: float) -> None:
            if duration and seconds > 0 and tick():
                spent = self.clock() - started
                eta = self.clock() + spent / seconds * max(duration - seconds, 0.0) + 1
                self.jobs.advance(key, "transcribing", seconds / duration, eta=eta)

        try:
            return self.asr().transcribe(audio, on_progress=on_covered)
        except JobFailure:
            raise
        except Exception as exc:
            log.exception("[transcribe] engine error in %s", key)
            raise JobFailure("transcription_failed", "The speech recognizer failed on this audio.") from exc

    def _result(self, t: Transcript, audio: Any, elapsed: float) -> Record:
        text = t.text
        return {
            "transcription": text[: self.keep_text_max],
            "truncated": len(text) > self.keep_text_max,
            "language": t.language,
            "confidence": t.confidence,
            "duration": round(t.duration, 2),
            "wordCount": len(text.split()),
            # No diarization is run, so the number of speakers is unknown rather than guessed.
            "speakerCount": None,
            "audioQuality": audio_mod.quality(audio),
            "processingTime": round(elapsed, 2),
            "modelUsed": t.model_used,
            "source": t.source,
            "segments": t.segments,
        }

    def _ticker(self) -> Callable[[], bool]:
        last = [0.0]

        def tick() -> bool:
            now = self.clock()
            if now - last[0] >= self.progress_interval:
                last[0] = now
                return True
            return False

        return tick
