"""Audio: decoding with PyAV straight to 16 kHz mono (no ffmpeg subprocess, no temp WAV), the
speech windows the local engine transcribes, and a signal-level quality label.

``decode`` gives the same samples as faster-whisper's ``decode_audio`` (s16 from PyAV's
resampler, then ``/ 32768`` in float32: bit for bit, tested), so the service hears exactly what a
bare ``WhisperModel.transcribe(path)`` hears, but
- without its forced full garbage collection (20–30 ms in the service's process, more in larger
  ones; PyAV 18 frees its resampler without it: 60 decodes with the collector off left RSS flat),
- and into one float32 buffer sized from the container's duration, instead of a growing byte
  buffer plus two converted copies (a 10-minute file: +37 MB instead of about twice that).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from core.errors import JobFailure

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30.0  # Whisper's input length: one window is one encoder pass
VAD_BLOCK_SECONDS = 120.0  # Silero's memory grows with its input (~15 MB per audio minute)


def decode(path: Path) -> np.ndarray:
    """Decode any container PyAV knows to 16 kHz mono float32; JobFailure if it holds no audio.

    Samples go straight into one float32 buffer sized from the container's duration (grown if
    that was short), so a long file costs its 4 bytes per sample and little more.
    """
    import av

    out, n = np.empty(0, dtype=np.float32), 0
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            seconds = (container.duration or 0) / 1_000_000
            out = np.empty(int((seconds + 1) * SAMPLE_RATE) if seconds > 0 else 60 * SAMPLE_RATE, dtype=np.float32)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in itertools.chain(_frames(container), [None]):  # None flushes the resampler
                if frame is not None:
                    frame.pts = None  # as faster-whisper: a gap or jump in timestamps is no error here
                for resampled in resampler.resample(frame):
                    pcm = resampled.to_ndarray().reshape(-1)
                    if n + pcm.size > out.size:
                        out = np.concatenate([out[:n], np.empty(max(out.size, pcm.size), dtype=np.float32)])
                    out[n : n + pcm.size] = pcm
                    n += pcm.size
    except Exception as exc:  # PyAV raises a zoo of InvalidDataError/ValueError/IndexError
        raise JobFailure("unsupported_content", "The downloaded file has no audio track that can be decoded.") from exc
    if not n:
        raise JobFailure("unsupported_content", "The video has no audio to transcribe.")
    audio = out[:n]
    audio /= 32768.0  # a power of two: the same float32 values as faster-whisper's decode_audio
    return audio if n > 0.9 * out.size else audio.copy()


def _frames(container: object):  # type: ignore[no-untyped-def]
    """The audio frames, skipping the undecodable ones as faster-whisper does."""
    import av

    frames = container.decode(audio=0)  # type: ignore[attr-defined]
    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def speech_windows(audio: np.ndarray, max_seconds: float = WINDOW_SECONDS,
                   block_seconds: float = VAD_BLOCK_SECONDS) -> list[tuple[int, int]]:
    """Spans of ``audio`` (sample offsets) that hold speech: in order, disjoint, each at most
    ``max_seconds`` long, so each is one Whisper window.

    faster-whisper's Silero VAD finds the speech, cut at silences of 160 ms or more and never
    longer than ``max_seconds``; neighbouring speech joins a span while the span stays within
    ``max_seconds`` (the silence between stays in it: the model hears continuous audio). VAD runs
    over ``block_seconds`` blocks so that its memory does not grow with the length of the audio.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(max_speech_duration_s=max_seconds, min_silence_duration_ms=160)
    block, limit = int(block_seconds * SAMPLE_RATE), int(max_seconds * SAMPLE_RATE)
    spans: list[list[int]] = []
    for offset in range(0, len(audio), block):
        for speech in get_speech_timestamps(audio[offset : offset + block], options):
            start, end = speech["start"] + offset, speech["end"] + offset
            if spans and end - spans[-1][0] <= limit:
                spans[-1][1] = end
            else:
                spans.append([start, end])
    return [(start, end) for start, end in spans]


def quality(audio: np.ndarray) -> str:
    """``good`` / ``fair`` / ``poor`` from loudness (RMS dBFS) and clipping of the real signal."""
    if not audio.size:
        return "poor"
    step = 1 << 20  # blocks: no float64 copy of a ten-minute signal
    energy = sum(float(np.dot(b, b)) for b in (audio[i : i + step].astype(np.float64) for i in range(0, audio.size, step)))
    clipped_samples = sum(int(np.count_nonzero(np.abs(audio[i : i + step]) >= 0.999)) for i in range(0, audio.size, step))
    rms = (energy / audio.size) ** 0.5
    dbfs = 20 * np.log10(rms) if rms > 0 else -120.0
    clipped = clipped_samples / audio.size
    if dbfs < -45 or clipped > 0.01:
        return "poor"
    if dbfs < -35 or clipped > 0.001:
        return "fair"
    return "good"
