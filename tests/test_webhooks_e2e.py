"""Webhooks through the whole service: real jobs, a real receiver on 127.0.0.1, real processes."""
from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import AUTH, wait_for, wait_terminal
from tests.procs import Proc, free_port, poll, service_env
from tests.webhook_receiver import WebhookReceiver

HOOK_SECRET = "hook-secret"
CLIP = "asterisk-en/conf-waitforleader.wav"
FAST = {"BUSINESS_ENGINE_WEBHOOK_SECRET": HOOK_SECRET, "webhook_initial_backoff_seconds": 0.05,
        "webhook_max_backoff_seconds": 0.2}



@pytest.fixture
def hooked(make_services: Callable[..., Any], receiver: WebhookReceiver) -> Any:
    from emulator.app import create_app

    services = make_services(business_engine_webhook_url=receiver.url, **FAST)
    return services, create_app(services).test_client()


def verify(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The receiver's own check, written from contract.md, not from core/webhooks.py."""
    event = json.loads(body)
    signed = {k: event[k] for k in ("jobId", "requestId", "status", "usage", "timestamp", "idempotencyKey")}
    text = json.dumps(signed, separators=(",", ":"), ensure_ascii=False)
    assert hmac.new(HOOK_SECRET.encode(), text.encode(), hashlib.sha256).hexdigest() == event["signature"]
    assert headers["x-tttranscribe-signature"] == event["signature"]
    key = hashlib.sha256(f"{event['jobId']}-{event['status']}-{event['timestamp']}".encode()).hexdigest()
    assert headers["x-idempotency-key"] == event["idempotencyKey"] == key
    return event


def test_completed_and_cache_hit_events_carry_real_usage(hooked: Any, receiver: WebhookReceiver, media: Any, fixtures: Path) -> None:
    services, client = hooked
    url = media.add_clip("hook/clip.m4a", fixtures / CLIP)
    job = client.post("/transcribe", json={"url": url, "requestId": "be-1"}, headers=AUTH).get_json()
    doc = wait_terminal(client, job["id"])
    wait_for(lambda: len(receiver.received) == 1)
    event = verify(receiver.received[0].body, receiver.received[0].headers)
    assert list(event) == ["jobId", "requestId", "status", "usage", "timestamp", "cacheHit", "idempotencyKey", "signature"]
    assert event["jobId"] == job["id"] and event["requestId"] == "be-1" and event["status"] == "completed"
    assert event["timestamp"] == doc["completedAt"] and event["cacheHit"] is False
    usage = event["usage"]
    assert usage["audioDurationSeconds"] == doc["result"]["duration"]
    assert usage["transcriptCharacters"] == len(doc["result"]["transcription"])
    assert usage["modelUsed"] == doc["result"]["modelUsed"] == "openai-whisper-tiny.en"

    hit = client.post("/transcribe", json={"url": url, "requestId": "be-2"}, headers=AUTH).get_json()
    assert hit["cacheHit"] is True
    wait_for(lambda: len(receiver.received) == 2)
    second = verify(receiver.received[1].body, receiver.received[1].headers)
    assert second["cacheHit"] is True and second["requestId"] == "be-2"
    assert second["usage"]["audioDurationSeconds"] == usage["audioDurationSeconds"]
    # without a requestId, no webhook
    client.post("/transcribe", json={"url": url}, headers=AUTH)
    time.sleep(0.3)
    assert len(receiver.received) == 2
    assert client.get("/health").get_json()["webhook"]["queueSize"] == 0


def test_failed_job_event_has_error_and_zero_usage(hooked: Any, receiver: WebhookReceiver, media: Any) -> None:
    _, client = hooked
    job = client.post("/transcribe", json={"url": media.add_status("hook/gone.m4a", 404), "requestId": "be-f"},
                      headers=AUTH).get_json()
    doc = wait_terminal(client, job["id"])
    wait_for(lambda: len(receiver.received) == 1)
    event = verify(receiver.received[0].body, receiver.received[0].headers)
    assert event["status"] == "failed" and event["error"] == doc["error"]
    assert list(event)[:5] == ["jobId", "requestId", "status", "usage", "error"]
    assert event["usage"]["audioDurationSeconds"] == 0 and event["usage"]["transcriptCharacters"] == 0


def test_fifty_jobs_flaky_receiver_each_event_delivered_once(hooked: Any, receiver: WebhookReceiver, media: Any, fixtures: Path) -> None:
    _, client = hooked
    receiver.set_plan(lambda n: 500 if n % 2 == 0 else 200)
    url = media.add_clip("hook/fifty.m4a", fixtures / CLIP)
    ids = [client.post("/transcribe", json={"url": url, "requestId": f"be-{i}"}, headers=AUTH).get_json()["id"] for i in range(50)]
    for job_id in ids:
        wait_terminal(client, job_id)
    keys = lambda: {r.headers["x-idempotency-key"] for r in receiver.received}  # noqa: E731
    wait_for(lambda: len(keys()) == 50 and all(receiver.ok_count(k) == 1 for k in keys()), timeout=60)
    time.sleep(0.5)
    assert all(receiver.ok_count(k) == 1 for k in keys())
    assert {json.loads(r.body)["jobId"] for r in receiver.received} == set(ids)


def test_rejected_event_is_listed_and_retried_by_hand(hooked: Any, receiver: WebhookReceiver, media: Any, fixtures: Path) -> None:
    _, client = hooked
    receiver.set_plan([400])
    url = media.add_clip("hook/reject.m4a", fixtures / CLIP)
    job = client.post("/transcribe", json={"url": url, "requestId": "be-r"}, headers=AUTH).get_json()
    wait_terminal(client, job["id"])
    wait_for(lambda: client.get("/admin/webhook-queue", headers=AUTH).get_json()["totalFailed"] == 1)
    queue = client.get("/admin/webhook-queue", headers=AUTH).get_json()
    row = queue["failed"][0]
    assert row["jobId"] == job["id"] and row["attempts"] == 1 and row["canRetry"] is True and "400" in row["lastError"]
    assert len(receiver.received) == 1  # no retry storm on a 4xx
    answer = client.post(f"/admin/retry-webhook/{job['id']}", headers=AUTH).get_json()
    assert answer == {"success": True, "message": "Webhook delivered", "jobId": job["id"]}
    assert len(receiver.received) == 2 and receiver.received[0].body == receiver.received[1].body
    assert client.get("/admin/webhook-queue", headers=AUTH).get_json()["totalFailed"] == 0
    assert client.post("/admin/retry-webhook/unknown-job", headers=AUTH).status_code == 404
    assert client.get("/admin/webhook-queue").status_code == 401


def test_receiver_down_kill_9_restart_delivers_once(tmp_path: Path, media: Any, fixtures: Path, procs: list) -> None:
    receiver = WebhookReceiver(listening=False)
    try:
        port = free_port()
        env = service_env(tmp_path / "data", port, BUSINESS_ENGINE_WEBHOOK_URL=receiver.url,
                          BUSINESS_ENGINE_WEBHOOK_SECRET=HOOK_SECRET, WEBHOOK_INITIAL_BACKOFF_SECONDS="0.2",
                          WEBHOOK_MAX_BACKOFF_SECONDS="1")
        url = media.add_clip("hook/kill.m4a", fixtures / CLIP)
        first = Proc([sys.executable, "-m", "emulator"], env, port, tmp_path / "first.log")
        procs.append(first)
        first.wait_up()
        job = requests.post(f"{first.base}/transcribe", json={"url": url, "requestId": "be-k"}, headers=AUTH, timeout=10).json()
        poll(first.base, job["id"], lambda d: d["status"] == "completed")
        wait_for(lambda: requests.get(f"{first.base}/health", timeout=5).json()["webhook"]["queueSize"] == 1)
        time.sleep(1.0)  # a few refused attempts
        first.kill9()
        assert receiver.received == []

        second = Proc([sys.executable, "-m", "emulator"], env, port, tmp_path / "second.log")
        procs.append(second)
        second.wait_up()
        receiver.listen()
        wait_for(lambda: len(receiver.received) >= 1, timeout=60)
        time.sleep(1.0)
        assert len(receiver.received) == 1
        event = verify(receiver.received[0].body, receiver.received[0].headers)
        assert event["jobId"] == job["id"] and event["status"] == "completed"
        wait_for(lambda: requests.get(f"{second.base}/health", timeout=5).json()["webhook"]["queueSize"] == 0)
    finally:
        receiver.stop()
