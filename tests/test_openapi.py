"""GET /openapi.json is a valid OpenAPI 3.1 document, and it is true: every real answer of the
service (jobs that complete and fail, every error, the webhook) validates against the schema the
document gives for its path, method and status code."""
from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import jsonschema
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from core import errors
from core.openapi import document
from emulator.app import ALL_METHODS, ROUTES, create_app
from functions.openapi import openapi as openapi_handler
from core.services import Services
from tests.conftest import AUTH, CountingAsr, make_settings
from tests.fake_tiktok import LoopbackRouter
from tests.webhook_receiver import WebhookReceiver

URI = "urn:tttranscribe:openapi"
JSON = "application/json"
CLIP = "asterisk-en/conf-waitforleader.wav"
TIKTOK = "https://www.tiktok.com/@a/video/123"


def mounted_app(services: Any) -> flask.Flask:
    """The emulator's app, with /openapi.json mounted here until emulator/app.py does it."""
    app = create_app(services)
    if "/openapi.json" not in ROUTES:
        for rule in ("/openapi.json", "/ttt/openapi.json"):
            app.add_url_rule(rule, f"openapi:{rule}", lambda: openapi_handler(flask.request, services),
                             methods=ALL_METHODS, provide_automatic_options=False)
    return app


def app_client(services: Any) -> Any:
    return mounted_app(services).test_client()


@pytest.fixture
def api(services: Any) -> Any:
    return app_client(services)


def service_error_codes() -> set[str]:
    """The ``code`` of every ServiceError class in core/errors.py."""
    found, todo = set(), [errors.ServiceError]
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo.extend(cls.__subclasses__())
    return found


def pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


class Spec:
    """Validates real answers against the document, resolving $refs within it (JSON Schema 2020-12)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry = Registry().with_resource(URI, DRAFT202012.create_resource(doc))

    def at(self, ptr: str) -> Any:
        node: Any = self.doc
        for part in ptr.split("/")[1:]:
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def validate(self, instance: Any, ptr: str) -> None:
        """Raises jsonschema.ValidationError when ``instance`` does not fit the schema at ``ptr``."""
        validator = Draft202012Validator({"$ref": f"{URI}#{ptr}"}, registry=self.registry,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        validator.validate(instance)

    def response(self, path: str, method: str, status: int) -> tuple[str, dict[str, Any]]:
        responses = self.doc["paths"][path][method]["responses"]
        assert str(status) in responses, f"{method.upper()} {path} answered {status}, which is not documented"
        ptr = pointer("paths", path, method, "responses", str(status))
        while "$ref" in (node := self.at(ptr)):
            ptr = node["$ref"][1:]
        return ptr, node

    def check(self, answer: Any, path: str, method: str | None = None, component: str | None = None) -> Any:
        """The answer's JSON body, after checking it and its documented headers against the document."""
        if component:
            ptr = pointer("components", "responses", component)
            node = self.at(ptr)
        else:
            ptr, node = self.response(path, method or "get", answer.status_code)
        assert answer.mimetype == JSON
        body = answer.get_json()
        self.validate(body, ptr + pointer("content", JSON, "schema"))
        for name, header in node.get("headers", {}).items():
            if header.get("required"):
                assert name in answer.headers, f"documented header {name} missing"
            if name in answer.headers:
                jsonschema.validate(answer.headers[name], header["schema"])
        return body


@pytest.fixture
def spec(services: Any) -> Spec:
    return Spec(document(services.settings.public_base_url, services.settings.api_version))


def fails(spec: Spec, instance: Any, ptr: str) -> bool:
    try:
        spec.validate(instance, ptr)
    except jsonschema.ValidationError:
        return True
    return False


# ---- the document itself --------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    doc = document("https://me-tttranscribe.hf.space", "1.2.3")
    validate_openapi(doc)  # the OpenAPI 3.1 meta-schema, $refs included
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    assert doc["openapi"].startswith("3.1") and doc["info"]["version"] == "1.2.3"
    assert doc["servers"] == [{"url": "https://me-tttranscribe.hf.space"}]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["engineAuth"] == {**schemes["engineAuth"], "type": "apiKey", "in": "header", "name": "X-Engine-Auth"}
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    hook = doc["webhooks"]["jobFinished"]["post"]
    assert {p["name"] for p in hook["parameters"] if p["in"] == "header"} >= {
        "X-TTTranscribe-Signature", "X-Idempotency-Key", "webhook-id", "webhook-timestamp", "webhook-signature"}
    error_enum = doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
    assert set(error_enum) == service_error_codes()  # every code the service can answer, and no other
    # The validator has teeth: a broken document is refused.
    broken = copy.deepcopy(doc)
    broken["paths"]["/transcribe"]["post"]["responses"]["202"]["content"][JSON]["schema"] = {"type": "objekt"}
    with pytest.raises(Exception):
        validate_openapi(broken)
    broken = copy.deepcopy(doc)
    broken["paths"]["/estimate"]["post"]["responses"]["200"]["content"][JSON]["schema"] = {"$ref": "#/components/schemas/Nope"}
    with pytest.raises(Exception):
        validate_openapi(broken)


def test_every_route_is_documented_with_its_methods() -> None:
    doc = document("http://testserver", "1.0.0")
    routes = {**ROUTES, "/openapi.json": openapi_handler}
    served = {rule.replace("<job_id>", "{id}"): handler for rule, handler in routes.items()}
    served["/admin/retry-webhook/{jobId}"] = served.pop("/admin/retry-webhook/{id}")
    aliases = {"/ttt/transcribe", "/ttt/estimate", "/ttt/status/{id}"}
    assert set(doc["paths"]) == set(served) | aliases
    for path, item in doc["paths"].items():
        handler = served[path.removeprefix("/ttt")]
        assert {m.upper() for m in item} == set(handler.methods), path
        for method, operation in item.items():
            public = path in ("/", "/health", "/ready", "/openapi.json")
            assert (operation.get("security", doc["security"]) == []) is public, path
            codes = set(operation["responses"])
            assert "500" in codes and ("401" in codes) is not public, path
            if path.endswith(("/transcribe", "/estimate")):
                assert {"400", "401", "413", "422", "429", "503"} <= codes


def test_served_publicly_unlimited_and_matches_the_base_url(make_services: Callable[..., Any]) -> None:
    services = make_services(rate_limit_capacity=1, base_url="https://tt.example/")
    client = app_client(services)
    answers = [client.get("/openapi.json") for _ in range(4)]
    assert [a.status_code for a in answers] == [200] * 4  # no auth, no token spent
    body = answers[0].get_json()
    assert body == document("https://tt.example", "1.0.0")
    assert body["servers"] == [{"url": "https://tt.example"}]
    spec = Spec(body)
    spec.check(answers[0], "/openapi.json")
    spec.check(client.post("/openapi.json"), "/openapi.json", component="MethodNotAllowed")
    # The one token is still there for a real request.
    assert client.post("/estimate", json={"url": "https://www.tiktok.com/@a/photo/1"}, headers=AUTH).status_code == 422


# ---- real answers against the document --------------------------------------------------------------


def poll_checked(api: Any, spec: Spec, job_id: str, path: str = "/status/{id}", timeout: float = 120.0) -> dict[str, Any]:
    """Poll until terminal, checking every status document on the way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = spec.check(api.get(path.replace("{id}", job_id), headers=AUTH), path)
        if doc["status"] in ("completed", "failed"):
            return doc
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not terminal after {timeout}s")


def test_public_answers_conform(api: Any, spec: Spec, make_services: Callable[..., Any]) -> None:
    spec.check(api.get("/"), "/")
    health = spec.check(api.get("/health"), "/health")
    assert health["status"] == "healthy"
    assert spec.check(api.get("/ready"), "/ready") == {"ready": True}
    not_ready = app_client(make_services(asr_provider="hf"))
    answer = not_ready.get("/ready")
    assert answer.status_code == 503
    spec.check(answer, "/ready")
    assert spec.check(not_ready.get("/health"), "/health")["status"] == "degraded"
    # The health schema fixes its keys: a new one must be documented first.
    assert fails(spec, {**health, "surprise": 1}, pointer("paths", "/health", "get", "responses", "200", "content", JSON, "schema"))


def test_completed_job_answers_conform(api: Any, spec: Spec, media: Any, fixtures: Path) -> None:
    url = media.add_clip("openapi/clip.m4a", fixtures / CLIP)
    answer = api.post("/ttt/transcribe", json={"url": url, "requestId": "oa-1"}, headers={**AUTH, "Idempotency-Key": "oa-k"})
    assert answer.status_code == 202
    submitted = spec.check(answer, "/ttt/transcribe", "post")
    assert submitted["status"] == "queued" and submitted["cacheHit"] is False
    doc = poll_checked(api, spec, submitted["id"])
    assert doc["status"] == "completed" and doc["result"]["segments"] and doc["metadata"]["url"] == url
    by_request_id = spec.check(api.get("/ttt/status/oa-1", headers=AUTH), "/ttt/status/{id}")
    assert by_request_id["id"] == submitted["id"]

    again = spec.check(api.post("/transcribe", json={"url": url + "#again"}, headers=AUTH), "/transcribe", "post")
    assert again["status"] == "completed" and again["cacheHit"] is True
    hit = spec.check(api.get(f"/status/{again['id']}", headers=AUTH), "/status/{id}")
    assert hit["cacheHit"] is True and hit["estimatedCost"]["isCacheFree"] is True

    page = media.add_page("openapi/page", "openapi/clip.m4a", title="Wait for leader", author="allison", duration=4.91)
    estimate = spec.check(api.post("/estimate", json={"url": page}, headers=AUTH), "/estimate", "post")
    assert estimate["estimatedCredits"] == 1 and estimate["durationSource"] == "metadata"
    assert estimate["estimatedDurationSeconds"] == 4.91
    conflict = api.post("/transcribe", json={"url": page, "requestId": "oa-1"}, headers=AUTH)
    assert conflict.status_code == 422
    assert spec.check(conflict, "/transcribe", "post")["error"] == "idempotency_conflict"
    estimate_422 = spec.response("/estimate", "post", 422)[0] + pointer("content", JSON, "schema")
    assert fails(spec, conflict.get_json(), estimate_422)  # /estimate has no key to conflict on
    queue = spec.check(api.get("/admin/webhook-queue", headers=AUTH), "/admin/webhook-queue")
    assert queue["totalFailed"] == len(queue["failed"]) == 0
    retried = spec.check(api.post(f"/admin/retry-webhook/{submitted['id']}", headers=AUTH),
                         "/admin/retry-webhook/{jobId}", "post")
    assert retried["success"] is False and retried["jobId"] == submitted["id"]

    # Each schema can fail: drift in a real answer is caught.
    status_ptr = pointer("components", "schemas", "JobStatus")
    assert not fails(spec, doc, status_ptr)
    assert fails(spec, {k: v for k, v in doc.items() if k != "result"}, status_ptr)
    assert fails(spec, {**doc, "progress": 99}, status_ptr)
    assert fails(spec, {**doc, "result": {**doc["result"], "confidence": 1.5}}, status_ptr)
    assert fails(spec, {**doc, "metadata": {**doc["metadata"], "title": "x" * 81}}, status_ptr)
    submit_ptr = pointer("components", "schemas", "SubmitAnswer")
    assert fails(spec, {**submitted, "extra": 1}, submit_ptr)
    assert fails(spec, {k: v for k, v in submitted.items() if k != "request_id"}, submit_ptr)
    assert fails(spec, {**submitted, "submittedAt": "2025-01-01T00:00:00Z"}, submit_ptr)


def test_failed_job_answers_conform(api: Any, spec: Spec, media: Any) -> None:
    url = media.add_status("openapi/missing.m4a", 404)
    submitted = spec.check(api.post("/transcribe", json={"url": url}, headers=AUTH), "/transcribe", "post")
    doc = poll_checked(api, spec, submitted["id"], "/ttt/status/{id}")
    assert doc["status"] == "failed" and doc["errorCode"] == "download_not_found"
    status_ptr = pointer("components", "schemas", "JobStatus")
    assert fails(spec, {k: v for k, v in doc.items() if k != "errorDetails"}, status_ptr)
    assert fails(spec, {**doc, "errorCode": "oops"}, status_ptr)
    assert fails(spec, {**doc, "error": "no code at the end"}, status_ptr)


LONG = "x" * 129


@pytest.mark.parametrize(
    ("method", "path", "documented", "kwargs", "status"),
    [
        ("post", "/transcribe", "/transcribe", {"data": "{not json", "content_type": JSON}, 400),
        ("post", "/ttt/estimate", "/ttt/estimate", {"json": {"url": "https://evil.example/@a/video/1"}}, 400),
        ("post", "/transcribe", "/transcribe", {"json": {"url": TIKTOK, "requestId": 5}}, 400),
        ("post", "/estimate", "/estimate", {"json": {"url": "https://www.tiktok.com/@a/photo/1"}}, 422),
        ("post", "/transcribe", "/transcribe", {"data": "{" + " " * 70_000 + "}", "content_type": JSON}, 413),
        ("post", "/transcribe", "/transcribe", {"json": {"url": TIKTOK}, "headers": {**AUTH, "Idempotency-Key": LONG}}, 400),
        ("get", "/status/nope", "/status/{id}", {}, 404),
        ("get", f"/ttt/status/{LONG}", "/ttt/status/{id}", {}, 400),
        ("post", "/admin/retry-webhook/nope", "/admin/retry-webhook/{jobId}", {}, 404),
        ("post", "/transcribe", "/transcribe", {"json": {"url": TIKTOK}, "headers": {"X-Engine-Auth": ""}}, 401),
        ("get", "/status/x", "/status/{id}", {"headers": {"Authorization": "Bearer wrong"}}, 401),
        ("get", "/admin/webhook-queue", "/admin/webhook-queue", {"headers": {}}, 401),
    ],
)
def test_error_answers_conform(api: Any, spec: Spec, method: str, path: str, documented: str,
                               kwargs: dict[str, Any], status: int) -> None:
    kwargs = {"headers": AUTH, **kwargs}
    answer = api.open(path, method=method.upper(), **kwargs)
    assert answer.status_code == status, answer.get_json()
    body = spec.check(answer, documented, method)
    assert "Traceback" not in json.dumps(body)
    assert fails(spec, {**body, "error": "teapot"}, spec.response(documented, method, status)[0] + pointer("content", JSON, "schema"))


def test_unknown_route_and_method_conform(api: Any, spec: Spec) -> None:
    for path in ("/nowhere", "/ttt/nowhere", "/status/"):
        answer = api.get(path, headers=AUTH)
        assert answer.status_code == 404
        spec.check(answer, path, component="NotFound")
    for method, path in (("GET", "/transcribe"), ("DELETE", "/status/x"), ("POST", "/health"), ("PUT", "/admin/webhook-queue")):
        answer = api.open(path, method=method, headers=AUTH)
        assert answer.status_code == 405
        spec.check(answer, path, component="MethodNotAllowed")


def test_rate_limited_answer_conforms_with_retry_after(make_services: Callable[..., Any]) -> None:
    services = make_services(rate_limit_capacity=1)
    client, spec = app_client(services), Spec(document("http://testserver", "1.0.0"))
    first = client.post("/ttt/transcribe", json={"url": "https://www.tiktok.com/@a/photo/1"}, headers=AUTH)
    assert first.status_code == 422
    answer = client.post("/ttt/transcribe", json={"url": "https://www.tiktok.com/@a/photo/1"}, headers=AUTH)
    assert answer.status_code == 429
    body = spec.check(answer, "/ttt/transcribe", "post")
    assert int(answer.headers["Retry-After"]) == body["details"]["retryAfter"] >= 1
    ptr = spec.response("/transcribe", "post", 429)[0] + pointer("content", JSON, "schema")
    assert fails(spec, {**body, "details": {k: v for k, v in body["details"].items() if k != "rateLimitInfo"}}, ptr)


def test_unreachable_short_link_is_a_documented_503(tmp_path: Path, whisper: Any) -> None:
    router = LoopbackRouter({})  # refuses every host, as TikTok is unreachable offline
    # Built here: conftest's make_services passes its overrides to Settings only, so http= would be dropped.
    services = Services(make_settings(tmp_path / "data", media_host_allowlist=""), asr=CountingAsr(whisper),
                        http=router.session(), announce=lambda _: None)
    try:
        client, spec = app_client(services), Spec(document("http://testserver", "1.0.0"))
        for path in ("/transcribe", "/ttt/estimate"):
            answer = client.post(path, json={"url": "https://vm.tiktok.com/ZMabc123/"}, headers=AUTH)
            assert answer.status_code == 503
            assert spec.check(answer, path, "post")["details"]["reason"] == "resolver_unreachable"
    finally:
        services.close()
    assert router.refused == ["https://vm.tiktok.com/ZMabc123/"] * 2


def test_real_webhook_conforms(make_services: Callable[..., Any], media: Any, fixtures: Path) -> None:
    with WebhookReceiver() as receiver:
        services = make_services(business_engine_webhook_url=receiver.url,
                                 business_engine_webhook_secret="hook-secret")
        client = app_client(services)
        spec = Spec(document("http://testserver", "1.0.0"))
        done = media.add_clip("openapi/hooked.m4a", fixtures / CLIP)
        gone = media.add_status("openapi/hooked-missing.m4a", 404)
        for url, rid in ((done, "oa-hook-ok"), (gone, "oa-hook-fail")):
            assert client.post("/transcribe", json={"url": url, "requestId": rid}, headers=AUTH).status_code == 202
        deadline = time.monotonic() + 120
        while len(receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        events = {json.loads(r.body)["requestId"]: r for r in receiver.received}
    assert set(events) == {"oa-hook-ok", "oa-hook-fail"}
    hook = spec.doc["webhooks"]["jobFinished"]["post"]
    body_ptr = pointer("webhooks", "jobFinished", "post", "requestBody", "content", JSON, "schema")
    for got in events.values():
        event = json.loads(got.body)
        spec.validate(event, body_ptr)
        for param in hook["parameters"]:
            assert param["name"].lower() in got.headers, param["name"]
            jsonschema.validate(got.headers[param["name"].lower()], param["schema"])
    assert json.loads(events["oa-hook-fail"].body)["status"] == "failed"
    ok = json.loads(events["oa-hook-ok"].body)
    assert fails(spec, {k: v for k, v in ok.items() if k != "signature"}, body_ptr)
    assert fails(spec, {**ok, "error": "boom [code: internal_error]"}, body_ptr)  # only failed events carry it
