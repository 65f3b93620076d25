"""One contract for every ``AsrProvider`` (huey's ``StorageTests`` pattern): the same real clips
and the same assertions on the ``Transcript`` for the local engine and for the Hugging Face
provider talking HTTP to the fake Inference API on 127.0.0.1.

The fake transcribes the uploaded FLAC with the same bundled tiny.en model, so both providers
are held to the same word error rate; what differs, and is under test, is the path the audio
and the answer take.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.asr import AsrProvider, LocalWhisper, Transcript
from core.audio import decode
from core.hf_asr import HfInferenceAsr
from tests.fake_hf import FakeHf
from tests.wer import wer, words

CLIPS = [
    "asterisk-en/agent-alreadyon.wav",  # tiny.en's last timestamp (5.60) runs past the audio (5.52)
    "asterisk-en/conf-getchannel.wav",
    "pocketsphinx-librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
]
HF_MODEL = "openai/whisper-large-v3-turbo"


class AsrContract:
    """Subclasses provide the ``provider`` fixture (class-scoped); every test here must pass."""

    @pytest.fixture(scope="class")
    def provider(self) -> AsrProvider:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    def runs(self, provider: AsrProvider, fixtures: Path) -> dict[str, tuple[Transcript, list[float]]]:
        """Each clip transcribed once per provider, with the progress values it reported."""
        out: dict[str, tuple[Transcript, list[float]]] = {}
        for clip in CLIPS:
            seen: list[float] = []
            out[clip] = (provider.transcribe(decode(fixtures / clip), on_progress=seen.append), seen)
        return out

    @pytest.mark.parametrize("clip", CLIPS)
    def test_text_matches_the_reference(self, runs: Any, manifest: Any, clip: str) -> None:
        t, _ = runs[clip]
        assert wer(manifest[clip][1], t.text) <= 0.15, t.text

    @pytest.mark.parametrize("clip", CLIPS)
    def test_duration_is_the_audio_length(self, runs: Any, manifest: Any, clip: str) -> None:
        t, progress = runs[clip]
        assert abs(t.duration - manifest[clip][0]) <= 0.2
        assert progress and progress == sorted(progress) and 0 < progress[-1] <= t.duration + 0.01

    @pytest.mark.parametrize("clip", CLIPS)
    def test_segments_are_well_formed_ordered_and_cover_the_text(self, runs: Any, clip: str) -> None:
        t, _ = runs[clip]
        assert t.segments
        starts = [s["start"] for s in t.segments]
        assert starts == sorted(starts)
        for s in t.segments:
            assert set(s) == {"start", "end", "text"}
            assert 0 <= s["start"] <= s["end"] <= t.duration + 0.05
            assert isinstance(s["text"], str) and s["text"] == s["text"].strip() and s["text"]
        assert words(" ".join(s["text"] for s in t.segments)) == words(t.text)

    def test_model_used_is_what_the_provider_reports(self, runs: Any, provider: AsrProvider) -> None:
        assert provider.model_used
        assert {t.model_used for t, _ in runs.values()} == {provider.model_used}
        assert {t.source for t, _ in runs.values()} == {"asr"}

    def test_language_and_confidence_are_measured_or_null(self, runs: Any) -> None:
        transcripts = [t for t, _ in runs.values()]
        for t in transcripts:
            assert t.language is None or (isinstance(t.language, str) and 2 <= len(t.language) <= 3)
            assert t.confidence is None or 0.0 <= t.confidence <= 1.0
        measured = [t.confidence for t in transcripts if t.confidence is not None]
        assert len(set(measured)) == len(measured), f"a constant confidence is not a measurement: {measured}"


class TestLocalWhisper(AsrContract):
    @pytest.fixture(scope="class")
    def provider(self, whisper: LocalWhisper) -> AsrProvider:
        return whisper


class TestHfInference(AsrContract):
    @pytest.fixture(scope="class")
    def provider(self, whisper: LocalWhisper) -> Iterator[AsrProvider]:
        whisper.model_used  # resolve the local model while the hub is still switched off
        with pytest.MonkeyPatch.context() as mp:
            # huggingface_hub reads HF_HUB_OFFLINE once, at import, and then refuses every request,
            # loopback included; conftest sets it so nothing downloads. Here: production's value.
            mp.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
            with FakeHf(whisper.transcribe) as fake:
                yield HfInferenceAsr(token=fake.token, models=[HF_MODEL], base_url=fake.base_url, timeout=60, sleep=lambda s: None)
                # Each clip went up once, intact (the fake decoded the FLAC to the clip's length).
                assert [s.status for s in fake.requests] == [200] * len(CLIPS)
