"""core/webhooks.py against a real receiver on 127.0.0.1 and a real diskcache store in tmp_path.

The receiver checks signatures with its own code (hashlib/hmac/json here, standardwebhooks for
the Standard Webhooks headers), never with the functions under test.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from core.jobs import JobService
from core.store import Store
from core.tiktok import VideoRef
from core.webhooks import WebhookOutbox, build_event, validate_target
from tests.conftest import Sleeps
from tests.webhook_receiver import Received, WebhookReceiver

pytestmark = pytest.mark.timeout(60)

SECRET = "test-secret"
VECTOR_JOB = "3f1c2b9e-0000-4000-8000-000000000001"
VECTOR_TS = "2025-11-29T21:44:30.000Z"
VECTOR_KEY = "0b78fde76ee82d8aceb5a0e74001d58a94c56781482723a34d00b9deb3a6fe13"
VECTOR_SIG = "c8a5141a0e0c8ee43165025acbb02a8ff977b23e57803b86ceef8d1d8fc4910e"
BODY_KEYS = ["jobId", "requestId", "status", "usage", "timestamp", "cacheHit", "idempotencyKey", "signature"]
USAGE_KEYS = ["audioDurationSeconds", "transcriptCharacters", "modelUsed", "processingTimeSeconds"]


# ---- the receiver's own verification code --------------------------------------------------------


def engine_check(got: Received, secret: str = SECRET) -> dict[str, Any]:
    """What the Business Engine does with a request: recompute key and signature from the bytes."""
    body = json.loads(got.body)
    signed = {k: body[k] for k in ("jobId", "requestId", "status", "usage", "timestamp", "idempotencyKey")}
    text = json.dumps(signed, separators=(",", ":"), ensure_ascii=False).encode()
    signature = hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()
    key = hashlib.sha256(f"{body['jobId']}-{body['status']}-{body['timestamp']}".encode()).hexdigest()
    assert body["idempotencyKey"] == key == got.headers["x-idempotency-key"]
    assert body["signature"] == signature == got.headers["x-tttranscribe-signature"]
    return body


def standard(secret: str = SECRET) -> Webhook:
    return Webhook("whsec_" + base64.b64encode(secret.encode()).decode())


# ---- jobs as core/jobs.py leaves them -----------------------------------------------------------


def completed_job(job_id: str = VECTOR_JOB, request_id: str | None = "be-req-123", **result: Any) -> dict[str, Any]:
    res = {"duration": 45.23, "transcription": "a" * 1937, "modelUsed": "openai-whisper-base", "processingTime": 12.0}
    res.update(result)
    return {"id": job_id, "requestId": request_id, "step": "completed", "cacheHit": False,
            "completedAt": VECTOR_TS, "result": res}


def failed_job(job_id: str = "job-failed-1", request_id: str = "be-req-9") -> dict[str, Any]:
    return {"id": job_id, "requestId": request_id, "step": "failed", "cacheHit": False,
            "failedAt": "2025-11-29T21:50:00.123Z",
            "errorDetails": {"code": "download_not_found", "message": "Video not found", "retryable": False}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store")
    yield s
    s.close()



def outbox_for(store: Store, url: str, **kw: Any) -> WebhookOutbox:
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("timeout", 2.0)
    return WebhookOutbox(store, url=url, secret=kw.pop("secret", SECRET), version="1.2.3", **kw)


# ---- the contract's test vector ------------------------------------------------------------------


def test_vector_reproduces_byte_for_byte_at_the_receiver(store: Store, receiver: WebhookReceiver) -> None:
    event = build_event(completed_job(), SECRET)
    assert (event["idempotencyKey"], event["signature"]) == (VECTOR_KEY, VECTOR_SIG)

    outbox = outbox_for(store, receiver.url)
    outbox.record(completed_job())
    assert outbox.deliver_pending() == 1
    [got] = receiver.received
    body = engine_check(got)
    assert list(body) == BODY_KEYS and list(body["usage"]) == USAGE_KEYS
    assert (body["idempotencyKey"], body["signature"]) == (VECTOR_KEY, VECTOR_SIG)
    assert body["usage"] == {"audioDurationSeconds": 45.23, "transcriptCharacters": 1937,
                             "modelUsed": "openai-whisper-base", "processingTimeSeconds": 12}
    assert b'"processingTimeSeconds":12}' in got.body and b" " not in got.body
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "TTTranscribe/1.2.3"
    assert body["cacheHit"] is False and body["requestId"] == "be-req-123"


def test_failed_job_event_carries_error_after_usage_and_zero_usage(store: Store, receiver: WebhookReceiver) -> None:
    outbox = outbox_for(store, receiver.url)
    outbox.record(failed_job())
    outbox.deliver_pending()
    [got] = receiver.received
    body = engine_check(got)
    assert list(body) == BODY_KEYS[:4] + ["error"] + BODY_KEYS[4:]
    assert body["status"] == "failed" and body["error"] == "Video not found [code: download_not_found]"
    assert body["timestamp"] == "2025-11-29T21:50:00.123Z"
    assert got.body.count(b'"usage":{"audioDurationSeconds":0,"transcriptCharacters":0,"modelUsed":"","processingTimeSeconds":0}') == 1


def test_non_ascii_transcript_counts_characters_and_signs_unescaped(store: Store, receiver: WebhookReceiver) -> None:
    outbox = outbox_for(store, receiver.url)
    outbox.record(completed_job("job-utf8", "réq-ü", transcription="héllo wörld 你好", duration=3.0))
    outbox.deliver_pending()
    body = engine_check(receiver.received[0])
    assert body["usage"]["transcriptCharacters"] == 14 and body["usage"]["audioDurationSeconds"] == 3
    assert "réq-ü".encode() in receiver.received[0].body


# ---- retries, same bytes -------------------------------------------------------------------------


def test_retries_until_delivered_with_identical_bytes_and_logs(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tttranscribe.webhook")
    sleeps = Sleeps()
    with WebhookReceiver([500, 500, 500, 200]) as receiver:
        outbox = outbox_for(store, receiver.url, sleep=sleeps, initial_backoff=1.0, max_backoff=300.0)
        outbox.record(completed_job())
        assert outbox.queue_size() == 1
        assert outbox.deliver_pending() == 1
        assert [r.status for r in receiver.received] == [500, 500, 500, 200]
        assert len({r.body for r in receiver.received}) == 1
        fixed = ("x-tttranscribe-signature", "x-idempotency-key", "webhook-id", "user-agent", "content-type")
        assert len({tuple(r.headers[h] for h in fixed) for r in receiver.received}) == 1
        engine_check(receiver.received[-1])
        # exponential: roughly 1, 2, 4 s (+ jitter up to initial_backoff)
        assert len(sleeps) == 3 and 1 <= sleeps[0] <= 2 and 2 <= sleeps[1] <= 3 and 4 <= sleeps[2] <= 5
        assert outbox.queue_size() == 0 and outbox.failed() == []
        assert outbox.deliver_pending() == 0 and len(receiver.received) == 4  # never sent again
    lines = [r.getMessage() for r in caplog.records if "[webhook]" in r.getMessage()]
    assert len(lines) == 4
    assert all(VECTOR_JOB in line for line in lines)
    assert f"attempt=1/12 status=500 delay={sleeps[0]:.1f}s" in lines[0]
    assert "attempt=4/12 status=200 delay=- result=delivered" in lines[3]
    assert not any(SECRET in r.getMessage() for r in caplog.records)


def test_standard_webhooks_headers_verify_and_tampering_fails(store: Store, receiver: WebhookReceiver) -> None:
    outbox = outbox_for(store, receiver.url)
    outbox.record(completed_job())
    outbox.deliver_pending()
    [got] = receiver.received
    assert got.headers["webhook-id"] == VECTOR_KEY
    assert got.headers["webhook-signature"].startswith("v1,")
    assert standard().verify(got.body, got.headers)["signature"] == VECTOR_SIG
    with pytest.raises(WebhookVerificationError):
        standard().verify(got.body.replace(b"1937", b"1938"), got.headers)
    with pytest.raises(WebhookVerificationError):
        standard("other-secret").verify(got.body, got.headers)


def test_400_is_not_retried_then_admin_retry_delivers_same_bytes(store: Store) -> None:
    with WebhookReceiver([400]) as receiver:
        outbox = outbox_for(store, receiver.url)
        outbox.record(completed_job())
        assert outbox.deliver_pending() == 0
        assert len(receiver.received) == 1  # no retry storm
        [row] = outbox.failed()
        assert row == {"jobId": VECTOR_JOB, "url": receiver.url, "attempts": 1, "lastError": row["lastError"],
                       "timestamp": VECTOR_TS, "canRetry": True}
        assert row["lastError"].startswith("HTTP 400")
        assert outbox.queue_size() == 1 and outbox.describe() == {"queueSize": 1, "targetUrl": receiver.url}
        assert outbox.deliver_pending() == 0 and len(receiver.received) == 1  # failed stays parked

        answer = outbox.retry(VECTOR_JOB)
        assert answer == {"success": True, "message": "Webhook delivered", "jobId": VECTOR_JOB}
        assert len(receiver.received) == 2 and receiver.received[0].body == receiver.received[1].body
        assert outbox.failed() == [] and outbox.queue_size() == 0
        assert outbox.retry(VECTOR_JOB)["message"] == "Webhook already delivered"
        assert outbox.retry("no-such-job") == {"success": False, "message": "No webhook event for this job", "jobId": "no-such-job"}
        assert len(receiver.received) == 2


def test_admin_retry_against_a_still_failing_receiver_requeues_retryable(store: Store) -> None:
    with WebhookReceiver([400, 503, 200]) as receiver:
        outbox = outbox_for(store, receiver.url)
        outbox.record(completed_job())
        outbox.deliver_pending()
        answer = outbox.retry(VECTOR_JOB)
        assert answer["success"] is False and "HTTP 503" in answer["message"] and "queued" in answer["message"]
        assert outbox.failed() == [] and outbox.queue_size() == 1
        assert outbox.deliver_pending() == 1
        assert [r.status for r in receiver.received] == [400, 503, 200]


@pytest.mark.parametrize(
    ("header", "max_backoff", "expected"), [("2", 300.0, 2.0), ("600", 5.0, 5.0), ("soon", 300.0, None)]
)
def test_429_honours_retry_after_capped(store: Store, header: str, max_backoff: float, expected: float | None) -> None:
    sleeps = Sleeps()
    with WebhookReceiver([429, 200], retry_after=header) as receiver:
        outbox = outbox_for(store, receiver.url, sleep=sleeps, max_backoff=max_backoff)
        outbox.record(completed_job())
        assert outbox.deliver_pending() == 1
        assert [r.status for r in receiver.received] == [429, 200]
        if expected is None:  # unreadable header: our own first backoff (4 s + jitter)
            assert len(sleeps) == 1 and 4 <= sleeps[0] <= 8
        else:
            assert sleeps == [expected]


def test_409_counts_as_delivered_and_attempts_are_bounded(store: Store) -> None:
    with WebhookReceiver(lambda n: 409 if n == 0 else 502) as receiver:
        outbox = outbox_for(store, receiver.url, max_attempts=3)
        outbox.record(completed_job("job-a"))
        outbox.record(completed_job("job-b"))
        assert outbox.deliver_pending() == 1
        assert [r.status for r in receiver.received] == [409, 502, 502, 502]
        [row] = outbox.failed()
        assert row["jobId"] == "job-b" and row["attempts"] == 3 and row["lastError"].startswith("HTTP 502")


def test_slow_receiver_times_out_and_is_retried_within_bounds(store: Store) -> None:
    with WebhookReceiver(delay=0.6) as receiver:
        outbox = outbox_for(store, receiver.url, timeout=0.2, max_attempts=2)
        outbox.record(completed_job())
        started = time.monotonic()
        assert outbox.deliver_pending() == 0
        assert time.monotonic() - started < 1.5
        [row] = outbox.failed()
        assert row["attempts"] == 2 and "Timeout" in row["lastError"]


# ---- durability ----------------------------------------------------------------------------------


class Killed(BaseException):
    """The process dies (here: during the first backoff sleep)."""


def kill(_: float) -> None:
    raise Killed


def test_event_recorded_while_receiver_down_survives_a_restart(tmp_path: Path) -> None:
    receiver = WebhookReceiver(listening=False)
    try:
        first = Store(tmp_path / "store")
        outbox = outbox_for(first, receiver.url)
        outbox.record(completed_job())
        first.close()  # the process is gone before any attempt

        second = Store(tmp_path / "store")
        receiver.listen()
        reborn = outbox_for(second, receiver.url)
        assert reborn.queue_size() == 1
        assert reborn.deliver_pending() == 1 and reborn.deliver_pending() == 0
        assert len(receiver.received) == 1 and receiver.ok_count(VECTOR_KEY) == 1
        second.close()
    finally:
        receiver.stop()


def test_event_claimed_by_a_killed_sender_is_redriven_after_its_lease(tmp_path: Path) -> None:
    receiver = WebhookReceiver(listening=False)
    try:
        first = Store(tmp_path / "store")
        outbox = outbox_for(first, receiver.url, sleep=kill)
        outbox.record(completed_job())
        with pytest.raises(Killed):
            outbox.deliver_pending()  # attempt 1 refused, then the process dies in its backoff
        first.close()

        second = Store(tmp_path / "store")
        receiver.listen()
        # Within the dead sender's lease nobody may take its event (it could still be alive).
        assert outbox_for(second, receiver.url).deliver_pending() == 0 and receiver.received == []
        later = outbox_for(second, receiver.url, clock=lambda: time.time() + 3600)
        assert later.deliver_pending() == 1
        assert len(receiver.received) == 1 and receiver.ok_count(VECTOR_KEY) == 1
        engine_check(receiver.received[0])
        assert second.get("webhook", f"{VECTOR_JOB}:completed")["totalAttempts"] == 2  # the count continued
        second.close()
    finally:
        receiver.stop()


def test_dead_owner_is_redriven_at_once(tmp_path: Path, receiver: WebhookReceiver) -> None:
    store = Store(tmp_path / "store")
    outbox = outbox_for(store, "http://127.0.0.1:9/closed", sleep=kill, owner={"pid": 1, "token": "dead"})
    outbox.record(completed_job())
    with pytest.raises(Killed):
        outbox.deliver_pending()
    reborn = outbox_for(store, receiver.url, is_dead=lambda owner: owner.get("token") == "dead")
    assert reborn.deliver_pending() == 1 and len(receiver.received) == 1
    store.close()


def test_record_is_atomic_with_the_callers_transaction(store: Store, receiver: WebhookReceiver) -> None:
    outbox = outbox_for(store, receiver.url)
    with pytest.raises(RuntimeError):
        with store.transact():
            outbox.record(completed_job())
            raise RuntimeError("the job's transaction rolls back")
    assert outbox.queue_size() == 0 and store.queue_length("webhook") == 0
    assert outbox.deliver_pending() == 0 and receiver.received == []


# ---- many events, several senders ---------------------------------------------------------------


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_fifty_events_with_flaky_receiver_two_processes_each_delivered_once(tmp_path: Path) -> None:
    with WebhookReceiver(lambda n: 500 if n % 2 == 0 else 200) as receiver:
        stores = [Store(tmp_path / "store"), Store(tmp_path / "store")]  # two processes' handles
        outboxes = [
            outbox_for(s, receiver.url, sleep=None, initial_backoff=0.01, max_backoff=0.05, poll_interval=0.05)
            for s in stores
        ]
        for o in outboxes:
            o.start()
        keys = []
        for i in range(50):
            job = completed_job(f"job-{i:02d}", f"req-{i}")
            outboxes[i % 2].record(job)
            keys.append(build_event(job, SECRET)["idempotencyKey"])
        wait_until(lambda: outboxes[0].queue_size() == 0)
        for o in outboxes:
            o.stop()
        assert all(receiver.ok_count(k) == 1 for k in keys)
        # nothing was sent for a key after its 2xx
        for key in keys:
            statuses = [r.status for r in receiver.received if r.headers["x-idempotency-key"] == key]
            assert statuses[-1] == 200 and statuses.count(200) == 1
        assert outboxes[1].failed() == []
        for s in stores:
            s.close()


def test_background_sender_never_blocks_record(store: Store) -> None:
    with WebhookReceiver(delay=0.3) as receiver:
        outbox = outbox_for(store, receiver.url, sleep=None, poll_interval=5.0)
        outbox.start()
        started = time.monotonic()
        for i in range(5):
            outbox.record(completed_job(f"slow-{i}", f"r-{i}"))
        assert time.monotonic() - started < 0.25  # no network in record()
        wait_until(lambda: outbox.queue_size() == 0)  # woken, not waiting for the 5 s poll
        started = time.monotonic()
        outbox.stop()
        assert time.monotonic() - started < 1.0
        assert len(receiver.received) == 5


# ---- when there is no event ---------------------------------------------------------------------


def test_record_is_idempotent_and_needs_request_id_and_secret(store: Store, receiver: WebhookReceiver) -> None:
    outbox = outbox_for(store, receiver.url)
    outbox.record(completed_job())
    outbox.record(completed_job())
    assert outbox.queue_size() == 1 and store.queue_length("webhook") == 1
    assert outbox.deliver_pending() == 1
    outbox.record(completed_job())  # after delivery: still a no-op
    assert outbox.queue_size() == 0 and outbox.deliver_pending() == 0 and len(receiver.received) == 1

    outbox.record(completed_job("no-rid", None))
    for secret in (None, ""):
        outbox_for(store, receiver.url, secret=secret).record(completed_job("no-secret"))
    assert outbox.queue_size() == 0 and outbox.deliver_pending() == 0 and len(receiver.received) == 1


def test_validate_target() -> None:
    for bad in ("http://example.com/hook", "http://10.0.0.1/h", "ftp://127.0.0.1/h", "https://", "http://127.0.0.1.nip.io/"):
        with pytest.raises(ValueError):
            validate_target(bad)
    for good in ("http://127.0.0.1:8080/h", "http://127.5.0.1/h", "http://localhost:1/h", "http://[::1]:8080/h", "https://x"):
        validate_target(good)
    with pytest.raises(ValueError):
        WebhookOutbox(Store.__new__(Store), url="http://example.com", secret=SECRET, version="1")


# ---- wired to the job service ---------------------------------------------------------------------


def test_job_service_terminal_transaction_records_events(store: Store, receiver: WebhookReceiver) -> None:
    outbox = outbox_for(store, receiver.url)
    jobs = JobService(store, base_url="http://t", model_key=lambda: "openai-whisper-tiny.en", keep_text_max=100, job_ttl=3600,
                      result_ttl=3600, max_attempts=2, on_terminal=outbox.record)
    ref = VideoRef(url="https://www.tiktok.com/@u/video/1", kind="video", video_id="1",
                   canonical_url="https://www.tiktok.com/@u/video/1", author="@u")
    first, _ = jobs.submit(ref, request_id="req-first")
    assert outbox.queue_size() == 0  # not terminal yet
    result = {"duration": 7.5, "transcription": "hello there", "modelUsed": "openai-whisper-tiny.en", "processingTime": 2.345}
    jobs.complete(first["workKey"], result, {}, 2.345)
    hit, _ = jobs.submit(ref, request_id="req-hit")  # cache hit: the event is recorded at once
    jobs.submit(ref)  # no requestId: no event
    assert outbox.deliver_pending() == 2
    bodies = {b["requestId"]: b for b in (engine_check(r) for r in receiver.received)}
    assert bodies["req-first"]["usage"] == {"audioDurationSeconds": 7.5, "transcriptCharacters": 11,
                                            "modelUsed": "openai-whisper-tiny.en", "processingTimeSeconds": 2.35}
    assert bodies["req-first"]["cacheHit"] is False and bodies["req-first"]["jobId"] == first["id"]
    assert bodies["req-hit"]["cacheHit"] is True and bodies["req-hit"]["jobId"] == hit["id"]
    assert bodies["req-hit"]["usage"]["audioDurationSeconds"] == 7.5
    assert bodies["req-hit"]["usage"]["processingTimeSeconds"] == 0  # nothing was processed for it
    assert bodies["req-first"]["timestamp"] == store.get("job", first["id"])["completedAt"]
