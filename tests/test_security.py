"""Auth that holds, rate limits that run and key on the end client, secrets that never leak."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from emulator.app import create_app
from tests.conftest import AUTH, SECRET, wait_for, wait_terminal

JWT_SECRET = "jwt-signing-secret-of-the-engine"
PHOTO = {"url": "https://www.tiktok.com/@a/photo/1"}  # 422 at once: spends a token, fetches nothing


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def token(secret: str = JWT_SECRET, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": "pluct-business-engine", "aud": "tttranscribe", "sub": "be-req-9", "iat": now, "exp": now + 300}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


@pytest.fixture
def jwt_client(make_services: Any) -> Any:
    return create_app(make_services(jwt_secret=JWT_SECRET)).test_client()


def reason(answer: Any) -> str:
    assert answer.status_code == 401, answer.get_json()
    return answer.get_json()["details"]["reason"]


def test_jwt_accepted_and_each_failure_named(jwt_client: Any) -> None:
    bearer = lambda t: {"Authorization": f"Bearer {t}"}  # noqa: E731
    assert jwt_client.get("/status/x", headers=bearer(token())).status_code == 404
    now = int(time.time())
    assert jwt_client.get("/status/x", headers=bearer(token(exp=now - 30))).status_code == 404  # within 60 s leeway
    assert reason(jwt_client.get("/status/x", headers=bearer(token(exp=now - 120)))) == "token_expired"
    assert reason(jwt_client.get("/status/x", headers=bearer(token(aud="someone-else")))) == "invalid_token"
    assert reason(jwt_client.get("/status/x", headers=bearer(token(iss="mallory")))) == "invalid_token"
    assert reason(jwt_client.get("/status/x", headers=bearer(token(secret="not-the-key-but-long-enough-32-bytes")))) == "invalid_token"
    assert reason(jwt_client.get("/status/x", headers=bearer(token(sub=None)))) == "invalid_token"
    assert reason(jwt_client.get("/status/x", headers=bearer("a.b.c"))) == "invalid_token"
    assert reason(jwt_client.get("/status/x")) == "missing_credentials"
    assert reason(jwt_client.get("/status/x", headers={"X-Engine-Auth": "nope"})) == "invalid_secret"


def test_jwt_refused_when_no_jwt_secret_is_configured(client: Any) -> None:
    assert reason(client.get("/status/x", headers={"Authorization": f"Bearer {token()}"})) == "invalid_secret"


def test_limit_is_exact_and_comes_back_with_time(make_services: Any) -> None:
    clock = Clock()
    client = create_app(make_services(rate_limit_capacity=10, clock=clock)).test_client()
    answers = [client.post("/estimate", json=PHOTO, headers=AUTH) for _ in range(11)]
    assert [a.status_code for a in answers] == [422] * 10 + [429]
    assert answers[0].headers["RateLimit-Policy"] == '"bucket";q=10;w=60'
    assert answers[0].headers["RateLimit"].startswith('"bucket";r=9;')
    assert answers[-1].headers["Retry-After"] == "6"
    clock.now += 6
    assert client.post("/transcribe", json=PHOTO, headers=AUTH).status_code == 422
    assert client.post("/transcribe", json=PHOTO, headers=AUTH).status_code == 429


def test_buckets_are_shared_by_processes_on_one_data_dir(make_services: Any) -> None:
    a = create_app(make_services(rate_limit_capacity=4)).test_client()
    b = create_app(make_services(rate_limit_capacity=4)).test_client()
    codes = [(a if i % 2 else b).post("/estimate", json=PHOTO, headers=AUTH).status_code for i in range(6)]
    assert codes == [422] * 4 + [429] * 2


def test_key_is_the_address_the_trusted_proxy_saw(make_services: Any) -> None:
    client = create_app(make_services(rate_limit_capacity=2, trusted_proxy_count=1)).test_client()

    def post(xff: str) -> int:
        return client.post("/estimate", json=PHOTO, headers={**AUTH, "X-Forwarded-For": xff}).status_code

    # The client forges the left part; our proxy appends the real address on the right.
    assert [post(f"10.9.9.{i}, 203.0.113.7") for i in range(3)] == [422, 422, 429]
    assert post("203.0.113.7, 198.51.100.1") == 422  # another real client, its own bucket


def test_without_trusted_proxies_forwarded_for_is_ignored(make_services: Any) -> None:
    client = create_app(make_services(rate_limit_capacity=2, trusted_proxy_count=0)).test_client()
    codes = [client.post("/estimate", json=PHOTO, headers={**AUTH, "X-Forwarded-For": f"198.51.100.{i}"}).status_code
             for i in range(3)]
    assert codes == [422, 422, 429]


def test_engine_vouched_user_gets_own_bucket_only_when_authenticated(make_services: Any) -> None:
    client = create_app(make_services(rate_limit_capacity=2)).test_client()
    user = lambda u: {**AUTH, "X-End-User-Id": u}  # noqa: E731
    assert [client.post("/estimate", json=PHOTO, headers=user("alice")).status_code for _ in range(3)] == [422, 422, 429]
    assert client.post("/estimate", json=PHOTO, headers=user("bob")).status_code == 422
    # Unauthenticated requests are limited by address, whatever user they claim.
    anon = [client.post("/estimate", json=PHOTO, headers={"X-End-User-Id": f"u{i}"}).status_code for i in range(3)]
    assert anon == [401, 401, 429]


def test_exempt_cidrs_are_never_limited(make_services: Any) -> None:
    client = create_app(make_services(rate_limit_capacity=1, rate_limit_exempt_cidrs="127.0.0.0/8")).test_client()
    assert {client.post("/estimate", json=PHOTO, headers=AUTH).status_code for _ in range(5)} == {422}
    assert "RateLimit" not in client.post("/estimate", json=PHOTO, headers=AUTH).headers


def test_length_limits_on_ids(client: Any) -> None:
    url = {"url": "https://www.tiktok.com/@a/video/1"}
    too_long = client.post("/transcribe", json={**url, "requestId": "r" * 129}, headers=AUTH)
    assert too_long.status_code == 400 and too_long.get_json()["details"]["field"] == "requestId"
    header = client.post("/transcribe", json=url, headers={**AUTH, "Idempotency-Key": "k" * 129})
    assert header.status_code == 400 and header.get_json()["details"]["field"] == "Idempotency-Key"


def test_no_secret_or_token_in_any_log_line_or_answer(make_services: Any, media: Any, fixtures: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.webhook_receiver import WebhookReceiver

    hook_secret = "webhook-secret-value-xyz"
    good_jwt = token()
    bad_jwt = token(secret="some-other-secret-key-of-32-bytes")
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    with WebhookReceiver([500, 200]) as rx:
        services = make_services(jwt_secret=JWT_SECRET, business_engine_webhook_url=rx.url,
                                 BUSINESS_ENGINE_WEBHOOK_SECRET=hook_secret, webhook_initial_backoff_seconds=0.05)
        client = create_app(services).test_client()
        url = media.add_clip("sec/clip.m4a", fixtures / "asterisk-en/conf-waitforleader.wav")
        for headers in (AUTH, {"Authorization": f"Bearer {SECRET}"}, {"Authorization": f"Bearer {good_jwt}"},
                        {"Authorization": f"Bearer {bad_jwt}"}, {"X-Engine-Auth": SECRET + "x"}, {}):
            answer = client.post("/transcribe", json={"url": url, "requestId": "be-sec"}, headers=headers)
            answers.append(answer.get_data(as_text=True))
        job_id = client.get("/status/be-sec", headers=AUTH).get_json()["id"]
        answers.append(str(wait_terminal(client, job_id)))
        wait_for(lambda: len(rx.received) >= 2, timeout=10)
        assert len(rx.received) == 2  # a failed attempt and a delivery were logged
        for path in ("/health", "/", "/ready", "/openapi.json", "/admin/webhook-queue"):
            answers.append(client.get(path, headers=AUTH).get_data(as_text=True))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "[webhook]" in logged and "[auth]" in logged
    for secret in (SECRET, JWT_SECRET, hook_secret, good_jwt, bad_jwt):
        assert secret not in logged
        assert all(secret not in a for a in answers)
