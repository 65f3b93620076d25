"""Shared vocabulary: job steps and how they appear on the wire, and the contract's timestamps."""
from __future__ import annotations

import datetime as _dt
from typing import Any

QUEUED, PROCESSING, COMPLETED, FAILED = "queued", "processing", "completed", "failed"
TERMINAL = (COMPLETED, FAILED)

# step -> (status, phase, currentStep, progress range, human note)
STEPS: dict[str, tuple[str, str, str, tuple[int, int], str]] = {
    "queued": (QUEUED, "REQUEST_SUBMITTED", "queued", (0, 0), "Waiting in the queue"),
    "downloading": (PROCESSING, "DOWNLOADING", "audio_extraction", (5, 30), "Downloading the video's audio"),
    "transcribing": (PROCESSING, "TRANSCRIBING", "transcription", (30, 95), "Transcribing the audio"),
    "finishing": (PROCESSING, "SUMMARIZING", "summarization", (95, 99), "Finishing the transcript"),
    "completed": (COMPLETED, "COMPLETED", "completed", (100, 100), "Transcription completed"),
    "failed": (FAILED, "FAILED", "failed", (0, 0), "Transcription failed"),
}


def step_percent(step: str, fraction: float) -> int:
    """Progress percent for ``fraction`` (0..1) of ``step``, inside the step's weight range."""
    lo, hi = STEPS[step][3]
    return int(lo + (hi - lo) * min(max(fraction, 0.0), 1.0))


def iso(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (contract.md)."""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
