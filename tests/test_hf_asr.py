"""The Hugging Face provider through the real ``InferenceClient`` over HTTP to the fake Inference
API on 127.0.0.1: retries, model fallback, local fallback, key errors, limits and time-outs.

``sleep`` is injected, so retries cost no wall time and the waits asked for are visible.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.asr import LocalWhisper
from core.audio import decode
from core.errors import JobFailure
from core.hf_asr import HfInferenceAsr, encode_flac
from tests.conftest import AUTH, CountingAsr, Sleeps, wait_for, wait_terminal
from tests.fake_hf import FakeHf, Seen, gone, loading, not_found, rate_limited, slow, status
from tests.wer import wer

MODEL = "openai/whisper-large-v3-turbo"
SECOND = "openai/whisper-large-v3"
CLIP = "pocketsphinx-librivox/sense_and_sensibility_01_austen_64kb-0870.wav"  # two segments in tiny.en


@pytest.fixture
def hub_online(whisper: LocalWhisper, monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub as in production (HF_HUB_OFFLINE unset). The library reads the variable once,
    at import, and then refuses every request, loopback included; conftest sets it so that nothing
    downloads. The local model is resolved first, while the hub is still off."""
    whisper.model_used
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)


@pytest.fixture
def fake(hub_online: None, whisper: LocalWhisper) -> Iterator[FakeHf]:
    with FakeHf(whisper.transcribe) as server:
        yield server


@pytest.fixture
def clip(fixtures: Path, manifest: dict[str, tuple[float, str]]) -> tuple[Any, float, str]:
    duration, reference = manifest[CLIP]
    return decode(fixtures / CLIP), duration, reference


def provider(fake: FakeHf, models: list[str] | None = None, **kw: Any) -> HfInferenceAsr:
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("timeout", 30.0)
    return HfInferenceAsr(token=fake.token, models=models or [MODEL], base_url=fake.base_url, **kw)


def statuses(seen: list[Seen]) -> list[int]:
    return [s.status for s in seen]


def decode_flac_from(audio: Any) -> Any:
    import io

    from faster_whisper.audio import decode_audio

    return decode_audio(io.BytesIO(encode_flac(audio)), sampling_rate=16000)


def test_encode_flac_is_lossless_16_bit_and_compact(clip: Any) -> None:
    audio, _, _ = clip
    flac = encode_flac(audio)
    assert flac[:4] == b"fLaC" and len(flac) < len(audio) * 2  # smaller than the 16-bit PCM
    back = decode_flac_from(audio)
    assert len(back) == len(audio) and abs(back - audio).max() <= 1 / 32767 + 1e-6


def test_happy_path_sends_flac_once_and_keeps_the_answer(fake: FakeHf, clip: Any, whisper: LocalWhisper) -> None:
    audio, duration, reference = clip
    progress: list[float] = []
    asr = provider(fake)
    t = asr.transcribe(audio, on_progress=progress.append)
    assert t.model_used == asr.model_used == MODEL and t.source == "asr"
    assert wer(reference, t.text) <= 0.15 and t.text == t.text.strip()
    assert abs(t.duration - duration) <= 0.02 and progress == [pytest.approx(len(audio) / 16000)]
    # No probabilities from the API; tiny.en (the only local model) cannot tell languages apart.
    assert t.confidence is None and t.language is None
    [seen] = fake.requests
    assert seen.model == MODEL and seen.authorized and seen.return_timestamps
    assert seen.audio_seconds == pytest.approx(len(audio) / 16000, abs=0.002)  # arrived intact
    assert seen.audio_bytes < len(audio) * 2
    # Segments are the answer's chunks, as the local engine timed them on the uploaded audio.
    local = whisper.transcribe(decode_flac_from(audio))
    assert len(t.segments) == len(local.segments) > 1
    assert [(s["start"], s["end"], s["text"]) for s in t.segments] == [(s["start"], s["end"], s["text"]) for s in local.segments]
    assert asr.config_error is None


@pytest.mark.parametrize(
    "answer, wait",
    [(loading(MODEL, 2.0), 2.0), (rate_limited(7), 7.0)],
    ids=["503-loading-estimated_time", "429-retry-after"],
)
def test_loading_or_rate_limited_is_retried_after_the_wait_asked(fake: FakeHf, clip: Any, answer: Any, wait: float) -> None:
    audio, _, reference = clip
    fake.script(MODEL, answer)
    sleeps = Sleeps()
    t = provider(fake, sleep=sleeps).transcribe(audio)
    assert sleeps == [wait]
    assert statuses(fake.calls(MODEL)) == [answer.status, 200]
    assert len({s.audio_bytes for s in fake.requests}) == 1  # the same upload each attempt
    assert t.model_used == MODEL and wer(reference, t.text) <= 0.15 and t.extra["attempts"] == 2


def test_waits_are_capped_and_attempts_bounded(fake: FakeHf, clip: Any) -> None:
    fake.script(MODEL, *[loading(MODEL, 900.0)] * 5)
    sleeps = Sleeps()
    with pytest.raises(JobFailure) as failure:
        provider(fake, sleep=sleeps, max_attempts=3, max_wait=20.0).transcribe(clip[0])
    assert sleeps == [20.0, 20.0]
    assert statuses(fake.requests) == [503, 503, 503]
    assert failure.value.code == "transcription_failed" and "currently loading" in failure.value.message


@pytest.mark.parametrize("answer", [gone(MODEL), not_found(MODEL)], ids=["410", "404"])
def test_model_gone_moves_to_the_next_model(fake: FakeHf, clip: Any, answer: Any) -> None:
    audio, _, reference = clip
    fake.script(MODEL, answer)
    sleeps = Sleeps()
    asr = provider(fake, [MODEL, SECOND], sleep=sleeps)
    t = asr.transcribe(audio)
    assert t.model_used == SECOND and asr.model_used == MODEL
    assert wer(reference, t.text) <= 0.15
    assert [(s.model, s.status) for s in fake.requests] == [(MODEL, answer.status), (SECOND, 200)]
    assert sleeps == [] and str(answer.status) not in t.text
    assert t.extra["skippedModels"] == [f"{MODEL}: {answer.body['error']}"]


def test_every_hosted_model_failing_falls_back_to_the_local_engine(fake: FakeHf, clip: Any, whisper: LocalWhisper) -> None:
    audio, duration, reference = clip
    fake.script(MODEL, gone(MODEL))
    fake.script(SECOND, *[status(500, "CUDA error: an illegal memory access")] * 2)
    local = CountingAsr(whisper)
    t = provider(fake, [MODEL, SECOND], fallback=lambda: local, max_attempts=2).transcribe(audio)
    assert local.runs == 1
    assert t.model_used == "openai-whisper-tiny.en" and t.source == "asr"
    assert wer(reference, t.text) <= 0.15 and abs(t.duration - duration) <= 0.02
    assert t.confidence is not None  # the local engine's own measurement, kept as it is
    reason = t.extra["fallbackReason"]
    assert f"{MODEL}: " in reason and f"{SECOND}: CUDA error" in reason
    assert statuses(fake.requests) == [410, 500, 500]


def test_without_fallback_every_model_failing_fails_the_job(fake: FakeHf, clip: Any) -> None:
    fake.script(MODEL, gone(MODEL))
    fake.script(SECOND, not_found(SECOND))
    with pytest.raises(JobFailure) as failure:
        provider(fake, [MODEL, SECOND]).transcribe(clip[0])
    assert failure.value.code == "transcription_failed" and failure.value.retryable
    assert MODEL in failure.value.message and SECOND in failure.value.message


def test_rejected_key_is_a_configuration_error_not_retried_no_fallback(
    fake: FakeHf, clip: Any, whisper: LocalWhisper, caplog: pytest.LogCaptureFixture
) -> None:
    local = CountingAsr(whisper)
    sleeps = Sleeps()
    asr = HfInferenceAsr(token="hf_wrong_key", models=[MODEL, SECOND], base_url=fake.base_url, fallback=lambda: local, sleep=sleeps)
    with caplog.at_level(logging.DEBUG), pytest.raises(JobFailure) as failure:
        asr.transcribe(clip[0])
    assert failure.value.code == "transcription_failed"
    assert failure.value.message == "The Hugging Face API key was rejected."
    assert asr.config_error == "HF_API_KEY was rejected by Hugging Face (401)"
    assert [(s.model, s.status, s.authorized) for s in fake.requests] == [(MODEL, 401, False)]  # once, first model only
    assert sleeps == [] and local.runs == 0
    assert "hf_wrong_key" not in caplog.text and "[transcribe]" in caplog.text

    fake.token = "hf_wrong_key"  # the key is accepted again: the next job works, /ready recovers
    assert asr.transcribe(clip[0]).model_used == MODEL and asr.config_error is None


@pytest.mark.parametrize("with_fallback", [False, True])
def test_upload_limit_is_checked_before_sending(fake: FakeHf, clip: Any, whisper: LocalWhisper, with_fallback: bool) -> None:
    audio, _, reference = clip
    asr = provider(fake, max_upload_bytes=50_000, fallback=(lambda: whisper) if with_fallback else None)
    if with_fallback:
        t = asr.transcribe(audio)
        assert t.model_used == "openai-whisper-tiny.en" and "over the" in t.extra["fallbackReason"]
        assert wer(reference, t.text) <= 0.15
    else:
        with pytest.raises(JobFailure) as failure:
            asr.transcribe(audio)
        assert failure.value.code == "transcription_failed" and not failure.value.retryable
    assert fake.requests == []


def test_a_model_slower_than_the_timeout_is_left_for_the_next(fake: FakeHf, clip: Any) -> None:
    fake.script(MODEL, slow(60.0))
    # The timeout must leave room for the fake's real CPU transcription of the second answer.
    asr = provider(fake, [MODEL, SECOND], timeout=2.0)
    started = time.monotonic()
    t = asr.transcribe(clip[0])
    assert 2.0 <= time.monotonic() - started < 15.0  # not the slow model's 60 s
    assert t.model_used == SECOND
    assert [s.model for s in fake.requests] == [MODEL, SECOND]


def test_unreachable_server_is_retried_then_fails(hub_online: None, clip: Any) -> None:
    with FakeHf() as gone_server:
        base = gone_server.base_url
    sleeps = Sleeps()
    asr = HfInferenceAsr(token="hf_x", models=[MODEL], base_url=base, sleep=sleeps, max_attempts=3, timeout=5)
    with pytest.raises(JobFailure) as failure:
        asr.transcribe(clip[0])
    assert failure.value.code == "transcription_failed" and len(sleeps) == 2
    assert asr.config_error is None  # the network, not the configuration


def test_offline_mode_is_reported_and_nothing_is_sent(whisper: LocalWhisper, clip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with FakeHf(whisper.transcribe) as server:
        asr = HfInferenceAsr(token=server.token, models=[MODEL], base_url=server.base_url, fallback=lambda: whisper)
        assert asr.config_error and "HF_HUB_OFFLINE" in asr.config_error
        with pytest.raises(JobFailure):
            asr.transcribe(clip[0])
        assert server.requests == []


def test_dedicated_endpoint_url_serves_every_model_name(fake: FakeHf, clip: Any) -> None:
    # Without {model}, the URL is one endpoint; the model id only names what it runs.
    asr = HfInferenceAsr(token=fake.token, models=[MODEL], base_url=f"{fake.url}/models/{MODEL}", sleep=Sleeps())
    assert asr.transcribe(clip[0]).model_used == MODEL
    assert [s.path for s in fake.requests] == [f"/models/{MODEL}"]


# ---- through a job ---------------------------------------------------------------------------

def test_job_completes_with_the_hosted_model_named(fake: FakeHf, make_services: Any, media: Any, fixtures: Path, clip: Any) -> None:
    from emulator.app import create_app

    client = create_app(make_services(asr=provider(fake))).test_client()
    url = media.add_clip("hf/ok.m4a", fixtures / CLIP)
    job = client.post("/transcribe", json={"url": url}, headers=AUTH).get_json()
    doc = wait_terminal(client, job["id"])
    assert doc["status"] == "completed", doc
    result = doc["result"]
    assert result["modelUsed"] == MODEL and result["source"] == "asr"
    assert result["confidence"] is None and wer(clip[2], result["transcription"]) <= 0.15
    assert len(fake.requests) == 1


def test_job_with_a_rejected_key_fails_with_transcription_failed(fake: FakeHf, make_services: Any, media: Any, fixtures: Path) -> None:
    from emulator.app import create_app

    asr = HfInferenceAsr(token="hf_wrong_key", models=[MODEL], base_url=fake.base_url, sleep=Sleeps())
    client = create_app(make_services(asr=asr)).test_client()
    url = media.add_clip("hf/badkey.m4a", fixtures / CLIP)
    doc = wait_terminal(client, client.post("/transcribe", json={"url": url}, headers=AUTH).get_json()["id"])
    assert doc["status"] == "failed" and doc["errorCode"] == "transcription_failed"
    assert "result" not in doc and "rejected" in doc["errorDetails"]["message"]
    assert asr.config_error == "HF_API_KEY was rejected by Hugging Face (401)"
    assert len(fake.requests) == 1


def test_settings_pick_hf_and_every_report_names_the_model_that_ran(fake: FakeHf, make_services: Any, media: Any, fixtures: Path) -> None:
    """Provider chosen from the settings as in production (ASR_PROVIDER unset, HF_API_KEY set)."""
    from emulator.app import create_app
    from tests.webhook_receiver import WebhookReceiver

    with WebhookReceiver() as rx:
        services = make_services(asr=False, asr_provider=None, hf_api_key=fake.token, hf_inference_base_url=fake.base_url,
                                 business_engine_webhook_url=rx.url, BUSINESS_ENGINE_WEBHOOK_SECRET="s",
                                 webhook_initial_backoff_seconds=0.05)
        client = create_app(services).test_client()
        health = client.get("/health").get_json()
        assert health["environment"]["asrProvider"] == "hf" and health["environment"]["asrProviderReason"] == "HF_API_KEY is set"
        url = media.add_clip("hf/settings.m4a", fixtures / CLIP)
        doc = wait_terminal(client, client.post("/transcribe", json={"url": url, "requestId": "be-hf"}, headers=AUTH).get_json()["id"])
        assert doc["result"]["modelUsed"] == MODEL
        wait_for(lambda: bool(rx.received), timeout=10)
        import json

        assert json.loads(rx.received[0].body)["usage"]["modelUsed"] == MODEL


def test_settings_with_a_rejected_key_make_the_service_not_ready(fake: FakeHf, make_services: Any, media: Any, fixtures: Path) -> None:
    from emulator.app import create_app

    services = make_services(asr=False, asr_provider="hf", hf_api_key="hf_wrong_key", hf_inference_base_url=fake.base_url)
    client = create_app(services).test_client()
    assert client.get("/ready").status_code == 200
    url = media.add_clip("hf/settings-bad.m4a", fixtures / CLIP)
    doc = wait_terminal(client, client.post("/transcribe", json={"url": url}, headers=AUTH).get_json()["id"])
    assert doc["status"] == "failed" and doc["errorCode"] == "transcription_failed"
    ready = client.get("/ready")
    assert ready.status_code == 503 and "rejected" in ready.get_json()["reason"]
    assert client.get("/health").get_json()["status"] == "degraded"


def test_fallback_transcript_is_delivered_but_not_cached(fake: FakeHf, make_services: Any, media: Any, fixtures: Path) -> None:
    from emulator.app import create_app

    fake.script(MODEL, gone(MODEL))
    services = make_services(asr=False, asr_provider="hf", hf_api_key=fake.token, hf_inference_base_url=fake.base_url)
    client = create_app(services).test_client()
    url = media.add_clip("hf/fallback.m4a", fixtures / CLIP)
    doc = wait_terminal(client, client.post("/transcribe", json={"url": url}, headers=AUTH).get_json()["id"])
    assert doc["result"]["modelUsed"] == "openai-whisper-tiny.en"
    again = client.post("/transcribe", json={"url": url}, headers=AUTH).get_json()
    assert again["cacheHit"] is False
