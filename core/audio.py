"""Audio decoding (PyAV, through faster-whisper's own decoder: no ffmpeg subprocess) and a
signal-level quality label computed from the samples themselves."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import JobFailure

SAMPLE_RATE = 16000


def decode(path: Path) -> np.ndarray:
    """Decode any container PyAV knows to 16 kHz mono float32; JobFailure if it holds no audio."""
    from faster_whisper.audio import decode_audio

    try:
        audio = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises a zoo of InvalidDataError/ValueError/IndexError
        raise JobFailure("unsupported_content", "The downloaded file has no audio track that can be decoded.") from exc
    if audio.size == 0:
        raise JobFailure("unsupported_content", "The video has no audio to transcribe.")
    return audio


def quality(audio: np.ndarray) -> str:
    """``good`` / ``fair`` / ``poor`` from loudness (RMS dBFS) and clipping of the real signal."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    dbfs = 20 * np.log10(rms) if rms > 0 else -120.0
    clipped = float(np.mean(np.abs(audio) >= 0.999)) if audio.size else 0.0
    if dbfs < -45 or clipped > 0.01:
        return "poor"
    if dbfs < -35 or clipped > 0.001:
        return "fair"
    return "good"
