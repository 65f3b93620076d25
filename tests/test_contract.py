"""Every endpoint's answers, key by key, against contract.md; bad input gets the envelope."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AUTH, SECRET, wait_terminal

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SUBMIT_KEYS = {"id", "jobId", "requestId", "request_id", "status", "message", "statusUrl", "statusPollUrl",
               "pollIntervalSeconds", "submittedAt", "estimatedProcessingTime", "url", "cacheHit"}
STATUS_KEYS = {"id", "request_id", "status", "phase", "currentStep", "progress", "percent", "note", "message",
               "submittedAt", "updatedAt", "statusUrl", "pollIntervalSeconds"}
RESULT_KEYS = {"transcription", "truncated", "language", "confidence", "duration", "wordCount", "speakerCount",
               "audioQuality", "processingTime", "modelUsed", "source", "segments"}
CLIP = "asterisk-en/conf-waitforleader.wav"


def envelope(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True))
    body = answer.get_json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in answer.get_data(as_text=True)
    return body


def test_root(client: Any) -> None:
    body = client.get("/").get_json()
    assert body["service"] == "TTTranscribe" and body["version"] == body["apiVersion"] == "1.0.0"
    assert body["platform"] == "local" and body["baseUrl"] == "http://testserver"
    assert body["endpoints"] == ["POST /transcribe", "POST /estimate", "GET /status/:id", "GET /health"]


def test_platform_and_base_url_on_a_space(make_services: Any) -> None:
    from emulator.app import create_app

    services = make_services(base_url=None, space_host="me-tttranscribe.hf.space", space_id="me/TTTranscribe")
    body = create_app(services).test_client().get("/").get_json()
    assert body["platform"] == "huggingface-spaces" and body["baseUrl"] == "https://me-tttranscribe.hf.space"


def test_health(client: Any) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "healthy" and body["service"] == "tttranscribe"
    assert ISO.match(body["timestamp"]) and body["uptime"] >= 0
    assert body["environment"] == {"hasAuthSecret": True, "hasHfApiKey": False, "hasWebhookUrl": True,
                                   "hasWebhookSecret": False, "asrProvider": "local",
                                   "asrProviderReason": "ASR_PROVIDER=local"}
    assert body["cache"] == {"size": 0, "hitRate": 0.0, "hitCount": 0, "missCount": 0}
    assert body["readiness"] == {"ok": True, "message": "ready", "missing": []}
    assert body["rateLimit"] == {"capacityPerIp": 1000, "refillPerMinute": 10}
    assert isinstance(body["rateLimit"]["refillPerMinute"], int)  # written 10, as contract.md shows
    assert set(body["webhook"]) >= {"queueSize", "targetUrl"}


def test_ready_and_not_ready(client: Any, make_services: Any) -> None:
    assert client.get("/ready").get_json() == {"ready": True}
    from emulator.app import create_app

    hf = create_app(make_services(asr_provider="hf")).test_client()
    answer = hf.get("/ready")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["ready"] is False and "HF_API_KEY" in body["missing"] and body["reason"]
    assert hf.get("/health").get_json()["status"] == "degraded"


def test_submit_and_status_documents(client: Any, media: Any, fixtures: Path) -> None:
    url = media.add_clip("contract/clip.m4a", fixtures / CLIP)
    answer = client.post("/ttt/transcribe", json={"url": url, "requestId": "be-1", "extra": True}, headers=AUTH)
    assert answer.status_code == 202
    body = answer.get_json()
    assert set(body) == SUBMIT_KEYS
    assert body["id"] == body["jobId"] == body["requestId"] == body["request_id"]
    assert body["statusUrl"] == body["statusPollUrl"] == f"http://testserver/status/{body['id']}"
    assert body["pollIntervalSeconds"] == 3 and ISO.match(body["submittedAt"]) and body["url"] == url
    assert isinstance(body["estimatedProcessingTime"], int)

    queued = client.get(f"/ttt/status/{body['id']}", headers=AUTH).get_json()
    assert STATUS_KEYS <= set(queued) and "estimatedCompletion" in queued or queued["status"] == "completed"

    doc = wait_terminal(client, body["id"])
    assert STATUS_KEYS | {"completedAt", "result", "metadata", "estimatedCost", "cacheHit"} <= set(doc)
    assert doc["status"] == "completed" and doc["phase"] == "COMPLETED" and doc["currentStep"] == "completed"
    assert set(doc["result"]) == RESULT_KEYS and doc["result"]["source"] == "asr"
    assert set(doc["estimatedCost"]) == {"audioDurationSeconds", "estimatedCharacters", "isCacheFree", "billingNote"}
    assert doc["metadata"]["url"] == url and doc["metadata"]["videoId"]
    assert all(ISO.match(doc[k]) for k in ("submittedAt", "updatedAt", "completedAt"))
    assert "estimatedCompletion" not in doc


def test_unknown_job_is_404(client: Any) -> None:
    body = envelope(client.get("/status/nope", headers=AUTH), 404, "job_not_found")
    assert body["message"] == "Transcription job not found" and body["details"] == {"jobId": "nope"}


@pytest.mark.parametrize("path", ["/nowhere", "/ttt/nowhere", "/status", "/admin"])
def test_unknown_routes_are_404(client: Any, path: str) -> None:
    envelope(client.get(path, headers=AUTH), 404, "not_found")


@pytest.mark.parametrize("method, path", [("GET", "/transcribe"), ("PUT", "/estimate"), ("POST", "/health"),
                                          ("DELETE", "/status/x"), ("POST", "/")])
def test_wrong_method_is_405(client: Any, method: str, path: str) -> None:
    envelope(client.open(path, method=method, headers=AUTH), 405, "method_not_allowed")


@pytest.mark.parametrize("path", ["/transcribe", "/estimate"])
@pytest.mark.parametrize(
    "data, content_type",
    [("{not json", "application/json"), ("", "application/json"), ("[1,2]", "application/json"),
     ('"url"', "application/json"), ("url=https://x", "application/x-www-form-urlencoded"),
     (b"\xff\xfe\x00", "application/json"), ("null", "text/plain")],
)
def test_malformed_bodies_are_invalid_request(client: Any, path: str, data: Any, content_type: str) -> None:
    envelope(client.post(path, data=data, content_type=content_type, headers=AUTH), 400, "invalid_request")


@pytest.mark.parametrize("path", ["/transcribe", "/estimate"])
@pytest.mark.parametrize("url", [None, 42, ["https://www.tiktok.com/@a/video/1"], {"u": 1}, "", "not a url",
                                 "https://example.com/@a/video/1", "http://127.0.0.2/x.m4a"])
def test_wrong_urls_are_invalid_url(client: Any, path: str, url: Any) -> None:
    body = envelope(client.post(path, json={"url": url}, headers=AUTH), 400, "invalid_url")
    assert "providedUrl" in body["details"] and "expectedFormat" in body["details"]


def test_missing_url_and_wrong_request_id(client: Any) -> None:
    envelope(client.post("/transcribe", json={}, headers=AUTH), 400, "invalid_url")
    good = "https://www.tiktok.com/@a/video/123"
    envelope(client.post("/transcribe", json={"url": good, "requestId": 5}, headers=AUTH), 400, "invalid_request")
    envelope(client.post("/transcribe", json={"url": good, "requestId": "x" * 500}, headers=AUTH), 400, "invalid_request")


def test_photo_post_is_422(client: Any) -> None:
    envelope(client.post("/transcribe", json={"url": "https://www.tiktok.com/@a/photo/123"}, headers=AUTH),
             422, "unsupported_content")


def test_huge_body_is_413(client: Any) -> None:
    envelope(client.post("/transcribe", data="{" + " " * 70_000 + "}", content_type="application/json", headers=AUTH),
             413, "payload_too_large")


@pytest.mark.parametrize("method, path", [("POST", "/transcribe"), ("POST", "/estimate"), ("GET", "/status/x")])
def test_auth(client: Any, method: str, path: str) -> None:
    body = envelope(client.open(path, method=method, json={}), 401, "unauthorized")
    assert body["message"] == "Missing Authorization header" and body["details"]["reason"] == "missing_credentials"
    body = envelope(client.open(path, method=method, json={}, headers={"X-Engine-Auth": "wrong"}), 401, "unauthorized")
    assert body["message"] == "Invalid authentication token" and body["details"]["reason"] == "invalid_secret"
    assert SECRET not in str(body)
    ok = client.open(path, method=method, json={}, headers={"Authorization": f"Bearer {SECRET}"})
    assert ok.status_code != 401


def test_generated_secret_when_none_configured(make_services: Any) -> None:
    from emulator.app import create_app

    services = make_services(ENGINE_SHARED_SECRET=None)
    secret_file = services.settings.data_dir / "engine_shared_secret"
    generated = secret_file.read_text().strip()
    assert len(generated) >= 32 and oct(secret_file.stat().st_mode)[-3:] == "600"
    client = create_app(services).test_client()
    envelope(client.get("/status/x"), 401, "unauthorized")
    envelope(client.get("/status/x", headers={"X-Engine-Auth": ""}), 401, "unauthorized")
    envelope(client.get("/status/x", headers={"X-Engine-Auth": SECRET}), 401, "unauthorized")
    envelope(client.get("/status/x", headers={"X-Engine-Auth": generated}), 404, "job_not_found")
    assert client.get("/health").get_json()["environment"]["hasAuthSecret"] is False


def test_rate_limit_takes_exactly_capacity(make_services: Any) -> None:
    from emulator.app import create_app

    client = create_app(make_services(rate_limit_capacity=3)).test_client()
    codes = [client.post("/estimate", json={"url": "https://www.tiktok.com/@a/photo/1"}, headers=AUTH) for _ in range(4)]
    assert [c.status_code for c in codes] == [422, 422, 422, 429]
    body = envelope(codes[-1], 429, "rate_limited")
    assert body["message"] == "Too many requests. Please wait before retrying."
    info = body["details"]
    assert info["retryAfter"] == 6 and ISO.match(info["retryAfterTimestamp"])
    assert info["rateLimitInfo"] == {"capacity": 3, "refillRate": "10 tokens per minute", "tokensRemaining": 0}
    assert codes[-1].headers["Retry-After"] == "6"
    assert client.get("/status/x", headers=AUTH).status_code == 404  # status is not limited
