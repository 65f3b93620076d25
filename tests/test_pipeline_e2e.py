"""A link in, a real transcript out: the emulator's app, real yt-dlp from a loopback media server,
real faster-whisper, real diskcache."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AUTH, wait_terminal
from tests.wer import wer

CLIPS = [
    "pocketsphinx-librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
    "pocketsphinx-librivox/sense_and_sensibility_01_austen_64kb-0920.wav",
    "asterisk-en/agent-alreadyon.wav",
    "asterisk-en/conf-waitforleader.wav",
]


def submit(client: Any, url: str, **extra: Any) -> dict[str, Any]:
    answer = client.post("/transcribe", json={"url": url, **extra}, headers=AUTH)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()


@pytest.mark.parametrize("clip", CLIPS)
def test_clip_transcribed_with_real_words_duration_and_progress(client: Any, media: Any, fixtures: Path, manifest: dict, clip: str) -> None:
    url = media.add_clip(f"e2e/{Path(clip).stem}.m4a", fixtures / clip)
    job = submit(client, url)
    assert job["status"] == "queued" and job["cacheHit"] is False
    seen: list[int] = []
    doc = wait_terminal(client, job["id"], seen=seen)
    assert doc["status"] == "completed", doc
    duration, reference = manifest[clip]
    result = doc["result"]
    assert wer(reference, result["transcription"]) <= 0.15, (reference, result["transcription"])
    assert result["language"] == "en"
    assert abs(result["duration"] - duration) <= 0.2
    assert 0 < result["confidence"] < 1
    assert result["wordCount"] == len(result["transcription"].split())
    assert result["segments"] and all(s["end"] >= s["start"] for s in result["segments"])
    assert result["modelUsed"] == "openai-whisper-tiny.en"  # the bundled model really ran
    assert seen == sorted(seen) and seen[-1] == 100
    assert doc["progress"] == doc["percent"] == 100 and doc["phase"] == "COMPLETED"


def test_confidence_comes_from_the_model(client: Any, media: Any, fixtures: Path) -> None:
    confidences = set()
    for clip in CLIPS[:3]:
        doc = wait_terminal(client, submit(client, media.add_clip(f"conf/{Path(clip).stem}.m4a", fixtures / clip))["id"])
        confidences.add(doc["result"]["confidence"])
    assert len(confidences) == 3


def test_page_with_video_tag_fills_metadata(client: Any, media: Any, fixtures: Path) -> None:
    media.add_clip("page/clip.m4a", fixtures / CLIPS[2])
    page = media.add_page(
        "page/video", "page/clip.m4a", title="Agent login prompt", author="allison", duration=4.91,
        description="Telephone prompt #voice #asterisk", keywords=["voice", "asterisk"],
    )
    doc = wait_terminal(client, submit(client, page)["id"])
    assert doc["status"] == "completed", doc
    meta = doc["metadata"]
    assert meta["title"] == "Agent login prompt"
    assert meta["url"] == page
    assert meta["viewCount"] == 1234 and meta["likeCount"] == 56
    assert meta["thumbnail"].endswith(".png")
    assert "agent" in doc["result"]["transcription"].lower()


@pytest.mark.parametrize(
    "kind, code",
    [("403", "download_blocked"), ("404", "download_not_found"), ("truncated", "download_network"), ("html", "unsupported_content")],
)
def test_download_failures_have_their_own_codes(client: Any, services: Any, media: Any, fixtures: Path, kind: str, code: str) -> None:
    media.add_clip("fail/source.m4a", fixtures / CLIPS[0])
    url = {
        "403": lambda: media.add_status("fail/forbidden.m4a", 403),
        "404": lambda: media.add_status("fail/missing.m4a", 404),
        "truncated": lambda: media.add_truncated("fail/cut.m4a", "fail/source.m4a"),
        "html": lambda: media.add_html("fail/page.html", "<html><body><p>No video here.</p></body></html>"),
    }[kind]()
    seen: list[int] = []
    doc = wait_terminal(client, submit(client, url)["id"], seen=seen)
    assert doc["status"] == "failed" and doc["phase"] == "FAILED"
    assert doc["errorCode"] == code
    assert doc["error"].endswith(f"[code: {code}]")
    assert doc["errorDetails"]["code"] == code and isinstance(doc["errorDetails"]["retryable"], bool)
    assert doc["failedAt"] and "result" not in doc
    assert seen == sorted(seen)  # not even a failure takes progress back
    tmp = services.settings.data_dir / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_repeat_submission_is_a_cache_hit_without_asr(client: Any, services: Any, media: Any, fixtures: Path) -> None:
    url = media.add_clip("cache/a.m4a", fixtures / CLIPS[2])
    first = wait_terminal(client, submit(client, url)["id"])
    runs = services.asr.runs
    again = submit(client, url + "#shared")
    assert again["status"] == "completed" and again["cacheHit"] is True
    doc = client.get(f"/status/{again['id']}", headers=AUTH).get_json()
    assert doc["result"]["transcription"] == first["result"]["transcription"]
    assert doc["cacheHit"] is True and doc["estimatedCost"]["isCacheFree"] is True
    assert services.asr.runs == runs
    health = client.get("/health").get_json()
    assert health["cache"]["hitCount"] == 1 and health["cache"]["missCount"] == 1 and health["cache"]["hitRate"] == 0.5


def test_concurrent_submissions_share_one_transcription(client: Any, services: Any, media: Any, fixtures: Path) -> None:
    # What one download costs the media server (yt-dlp's generic extractor looks before it fetches).
    alone = media.add_clip("flight/alone.m4a", fixtures / CLIPS[1])
    wait_terminal(client, submit(client, alone)["id"])
    gets_per_download = media.requested("flight/alone.m4a", "GET")
    runs = services.asr.runs
    url = media.add_clip("flight/a.m4a", fixtures / CLIPS[0], bytes_per_second=40_000)
    answers: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: answers.append(submit(client, url))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    docs = [wait_terminal(client, a["id"]) for a in answers]
    assert {d["status"] for d in docs} == {"completed"}
    assert len({d["id"] for d in docs}) == 2
    assert services.asr.runs == runs + 1
    assert media.requested("flight/a.m4a", "GET") == gets_per_download


def test_same_request_id_returns_the_same_job(client: Any, media: Any, fixtures: Path) -> None:
    url = media.add_clip("idem/a.m4a", fixtures / CLIPS[2])
    first = submit(client, url, requestId="be-req-1")
    second = submit(client, url, requestId="be-req-1")
    assert first["id"] == second["id"]
    by_request_id = client.get("/status/be-req-1", headers=AUTH).get_json()
    assert by_request_id["id"] == first["id"]
    header_a = client.post("/transcribe", json={"url": url}, headers={**AUTH, "Idempotency-Key": "k-1"}).get_json()
    header_b = client.post("/transcribe", json={"url": url}, headers={**AUTH, "Idempotency-Key": "k-1"}).get_json()
    assert header_a["id"] == header_b["id"] != first["id"]


def test_estimate_uses_real_duration_then_falls_back(client: Any, media: Any, fixtures: Path) -> None:
    media.add_clip("est/clip.m4a", fixtures / CLIPS[0])
    page = media.add_page("est/long", "est/clip.m4a", title="Long", author="a", duration=150)
    answer = client.post("/estimate", json={"url": page}, headers=AUTH)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["estimatedDurationSeconds"] == 150
    # 150 s at 0.5 credits/min (the model that runs here is tiny.en)
    assert body["estimatedCredits"] == 2 and body["modelUsed"] == "openai-whisper-tiny.en"
    assert body["durationSource"] == "metadata"
    assert media.requested("est/clip.m4a") == 0  # metadata only, no media download
    assert client.post("/estimate", json={"url": page}, headers=AUTH).get_json()["durationSource"] == "cache"
    fallback = client.post("/estimate", json={"url": media.add_status("est/down", 503)}, headers=AUTH).get_json()
    assert fallback["estimatedDurationSeconds"] == 45 and fallback["durationSource"] == "default"
    assert fallback["estimatedCredits"] == 1


def test_reused_keys_with_another_url_are_refused(client: Any, media: Any, fixtures: Path) -> None:
    first = media.add_clip("idem2/a.m4a", fixtures / CLIPS[2])
    other = media.add_clip("idem2/b.m4a", fixtures / CLIPS[3])
    job = submit(client, first, requestId="be-x")
    client.post("/transcribe", json={"url": first}, headers={**AUTH, "Idempotency-Key": "k-x"})
    for extra, headers in (({"requestId": "be-x"}, {}), ({}, {"Idempotency-Key": "k-x"})):
        answer = client.post("/transcribe", json={"url": other, **extra}, headers={**AUTH, **headers})
        assert answer.status_code == 422 and answer.get_json()["error"] == "idempotency_conflict"
    assert client.get("/status/be-x", headers=AUTH).get_json()["id"] == job["id"]


def test_cache_survives_a_restart_on_the_same_data_dir(make_services: Any, media: Any, fixtures: Path) -> None:
    from emulator.app import create_app

    url = media.add_clip("restart/a.m4a", fixtures / CLIPS[2])
    first = make_services()
    job = submit(create_app(first).test_client(), url)
    doc = wait_terminal(create_app(first).test_client(), job["id"])
    assert first.jobs.find(job["id"])["workKey"] == f"{doc['metadata']['videoId']}:openai-whisper-tiny.en"
    first.close()
    second = make_services()
    again = submit(create_app(second).test_client(), url)
    assert again["cacheHit"] is True and second.asr.runs == 0


def test_page_with_a_real_video_tag_is_transcribed(client: Any, media: Any, fixtures: Path) -> None:
    media.add_clip("tag/clip.m4a", fixtures / CLIPS[2])
    page = media.add_page("tag/video", "tag/clip.m4a", title="Tagged", author="a", duration=5.52, video_tag=True)
    doc = wait_terminal(client, submit(client, page)["id"])
    assert doc["status"] == "completed", doc
    assert "agent" in doc["result"]["transcription"].lower()


def test_keep_text_max_cuts_and_says_so(make_services: Any, media: Any, fixtures: Path) -> None:
    from emulator.app import create_app

    client = create_app(make_services(keep_text_max=20)).test_client()
    doc = wait_terminal(client, submit(client, media.add_clip("cut/a.m4a", fixtures / CLIPS[0]))["id"])
    result = doc["result"]
    assert result["truncated"] is True and len(result["transcription"]) == 20
    assert result["wordCount"] > len(result["transcription"].split())  # counted on the whole transcript


def test_a_process_that_only_accepts_leaves_the_work_to_another(make_services: Any, media: Any, fixtures: Path) -> None:
    from emulator.app import create_app

    front = create_app(acceptor := make_services(process_jobs=False)).test_client()
    job = submit(front, media.add_clip("split/a.m4a", fixtures / CLIPS[2]))
    assert acceptor.pool.started is False
    assert front.get(f"/status/{job['id']}", headers=AUTH).get_json()["status"] == "queued"
    worker = make_services()
    worker.start_workers()
    doc = wait_terminal(front, job["id"])
    assert doc["status"] == "completed" and worker.asr.runs == 1 and acceptor.asr.runs == 0
