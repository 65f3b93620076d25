"""The OpenAPI 3.1 document of the whole HTTP surface (served at ``GET /openapi.json``).

Contracts:
- It describes exactly what the handlers answer: every route of ``emulator/app.py`` (plus the
  ``/ttt/...`` aliases of transcribe, estimate and status), every status code a route can give,
  and every body. Where contract.md fixes the keys of a body, its schema lists them as
  ``required`` and allows no other (``additionalProperties: false``): a key added to an answer
  must be added here too, and ``tests/test_openapi.py`` (real answers validated against this
  document) and ``tests/test_fuzz.py`` (schemathesis) fail until it is.
- Schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect), so ``if``/``then`` say which keys a
  status document carries in each job state.
- The webhook sent to the Business Engine is the top-level ``webhooks.jobFinished`` entry.
- Plain dicts, built fresh on each call: the caller may change what it gets.
"""
from __future__ import annotations

from typing import Any

from core.errors import RETRYABLE

Schema = dict[str, Any]

ERROR_CODES = [
    "invalid_request", "invalid_url", "unauthorized", "not_found", "job_not_found", "method_not_allowed",
    "payload_too_large", "unsupported_content", "idempotency_conflict", "rate_limited", "processing_failed",
    "service_unavailable",
]
TIMESTAMP: Schema = {"type": "string", "format": "date-time", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"}
HEX64: Schema = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
PERCENT: Schema = {"type": "integer", "minimum": 0, "maximum": 100}
JOB_ID: Schema = {"type": "string", "format": "uuid"}
STATUS = ["queued", "processing", "completed", "failed"]
JSON = "application/json"
AUTHENTICATED = [{"engineAuth": []}, {"bearerAuth": []}]


def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None, **extra: Any) -> Schema:
    """A JSON object with exactly these keys (the ``required`` ones always present)."""
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})},
            "additionalProperties": False, **extra}


def text(**extra: Any) -> Schema:
    return {"type": "string", **extra}


def nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def answer(description: str, schema: Schema, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def error(description: str, *codes: str, details: Schema | None = None, message: Schema | None = None) -> Schema:
    """A response whose body is the error envelope with ``error`` one of ``codes``."""
    narrowed: Schema = {"properties": {"error": {"enum": list(codes)}}}
    if details is not None:
        narrowed["required"] = ["details"]
        narrowed["properties"]["details"] = details
    if message is not None:
        narrowed["properties"]["message"] = message
    return answer(description, {"allOf": [ref("Error"), narrowed]})


def components() -> Schema:
    metadata = obj({}, {
        "url": text(description="The link as submitted."),
        "canonicalUrl": text(), "videoId": text(), "title": text(maxLength=80),
        "author": text(pattern="^@", description="@handle"), "authorDisplayName": text(),
        "description": text(), "thumbnail": text(),
        "viewCount": {"type": "integer", "minimum": 0}, "likeCount": {"type": "integer", "minimum": 0},
        "commentCount": {"type": "integer", "minimum": 0},
        "uploadDate": text(format="date"), "hashtags": {"type": "array", "items": text()},
        "music": obj({}, {"title": text(), "author": text()}),
        "duration": {"type": "number", "minimum": 0, "description": "Seconds, from the video's metadata."},
    }, description="Real values from the video's metadata, present as soon as known; absent when unknown.")
    segment = obj({"start": {"type": "number", "minimum": 0}, "end": {"type": "number", "minimum": 0}, "text": text()})
    result = obj({
        "transcription": text(description="Cut to KEEP_TEXT_MAX characters."), "truncated": {"type": "boolean"},
        "language": nullable(text()), "confidence": nullable({"type": "number", "minimum": 0, "maximum": 1}),
        "duration": {"type": "number", "minimum": 0, "description": "Audio seconds, 2 dp."},
        "wordCount": {"type": "integer", "minimum": 0}, "speakerCount": nullable({"type": "integer", "minimum": 0}),
        "audioQuality": {"enum": ["good", "fair", "poor", None]}, "processingTime": {"type": "number", "minimum": 0},
        "modelUsed": text(), "source": {"enum": ["asr", "tiktok_captions"]},
        "segments": {"type": "array", "items": segment},
    })
    job_error_code = {"enum": list(RETRYABLE)}
    job_status = obj(
        {"id": JOB_ID, "request_id": JOB_ID, "status": {"enum": STATUS},
         "phase": {"enum": ["REQUEST_SUBMITTED", "DOWNLOADING", "TRANSCRIBING", "SUMMARIZING", "COMPLETED", "FAILED"]},
         "currentStep": {"enum": ["queued", "audio_extraction", "transcription", "summarization", "completed", "failed"]},
         "progress": PERCENT, "percent": PERCENT, "note": text(), "message": text(),
         "submittedAt": TIMESTAMP, "updatedAt": TIMESTAMP, "statusUrl": text(format="uri"),
         "pollIntervalSeconds": {"type": "integer", "minimum": 1}},
        {"requestId": nullable(text(description="The caller's requestId, if it sent one."))},
        description="A job's progress, result or error. `progress` and `percent` are the same and never go down.",
    )
    job_status["properties"].update({
        "completedAt": TIMESTAMP, "failedAt": TIMESTAMP, "estimatedCompletion": TIMESTAMP,
        "cacheHit": {"type": "boolean"}, "result": ref("Result"), "metadata": ref("Metadata"),
        "error": text(pattern=r"\[code: [a-z_]+\]$"), "errorCode": job_error_code,
        "errorDetails": obj({"code": job_error_code, "message": text(), "retryable": {"type": "boolean"}}),
        "estimatedCost": obj({"audioDurationSeconds": {"type": "number", "minimum": 0},
                              "estimatedCharacters": {"type": "integer", "minimum": 0},
                              "isCacheFree": {"type": "boolean"}, "billingNote": text()}),
    })
    job_status["allOf"] = [
        {"if": {"properties": {"status": {"const": "completed"}}},
         "then": {"required": ["completedAt", "result", "metadata", "estimatedCost", "cacheHit"],
                  "properties": {"progress": {"const": 100}, "phase": {"const": "COMPLETED"}}}},
        {"if": {"properties": {"status": {"const": "failed"}}},
         "then": {"required": ["failedAt", "error", "errorCode", "errorDetails", "cacheHit"],
                  "properties": {"phase": {"const": "FAILED"}}}},
        {"if": {"properties": {"status": {"enum": ["queued", "processing"]}}},
         "then": {"required": ["estimatedCompletion"],
                  "not": {"anyOf": [{"required": [k]} for k in ("result", "error", "completedAt", "failedAt")]}}},
    ]
    usage = obj({"audioDurationSeconds": {"type": "number", "minimum": 0},
                 "transcriptCharacters": {"type": "integer", "minimum": 0}, "modelUsed": text(),
                 "processingTimeSeconds": {"type": "number", "minimum": 0}})
    webhook_event = obj(
        {"jobId": JOB_ID, "requestId": text(), "status": {"enum": ["completed", "failed"]}, "usage": usage,
         "timestamp": TIMESTAMP, "cacheHit": {"type": "boolean"}, "idempotencyKey": HEX64, "signature": HEX64},
        {"error": text(pattern=r"\[code: [a-z_]+\]$")},
        allOf=[{"if": {"properties": {"status": {"const": "failed"}}}, "then": {"required": ["error"]},
                "else": {"not": {"required": ["error"]}}}],
        description="Keys in this order. idempotencyKey = sha256_hex(jobId-status-timestamp); signature = "
        "hex HMAC-SHA256 of the compact JSON of {jobId, requestId, status, usage, timestamp, idempotencyKey}.",
    )
    return {
        "securitySchemes": {
            "engineAuth": {"type": "apiKey", "in": "header", "name": "X-Engine-Auth",
                           "description": "The shared secret ENGINE_SHARED_SECRET."},
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "shared secret or HS256 JWT",
                           "description": "The shared secret, or a JWT with iss=pluct-business-engine, aud=tttranscribe."},
        },
        "schemas": {
            "Error": obj({"error": {"enum": ERROR_CODES}, "message": text(minLength=1)},
                         {"details": {"type": "object"}}, description="Every non-2xx answer. Never a traceback."),
            "UrlRequest": {"type": "object", "required": ["url"], "properties": {
                "url": text(maxLength=2048, examples=["https://www.tiktok.com/@scout2015/video/6718335390845095173",
                                                      "https://vm.tiktok.com/ZMabc123/"],
                            description="A TikTok video link or vm./vt./www.tiktok.com/t/ short link."),
                "requestId": text(minLength=1, maxLength=128, description="The caller's id; enables webhooks.")},
                "description": "Unknown keys are ignored."},
            "SubmitAnswer": obj({
                "id": JOB_ID, "jobId": JOB_ID, "requestId": JOB_ID, "request_id": JOB_ID,
                "status": {"enum": STATUS}, "message": text(), "statusUrl": text(format="uri"),
                "statusPollUrl": text(format="uri"), "pollIntervalSeconds": {"type": "integer", "minimum": 1},
                "submittedAt": TIMESTAMP, "estimatedProcessingTime": {"type": "integer", "minimum": 0},
                "url": text(), "cacheHit": {"type": "boolean"}},
                description="`id`, `jobId`, `requestId`, `request_id` are all the job's id."),
            "Estimate": obj(
                {"estimatedCredits": {"type": "integer", "minimum": 1},
                 "estimatedDurationSeconds": {"type": "number", "minimum": 0}, "modelUsed": text(), "note": text(),
                 "durationSource": {"enum": ["metadata", "cache", "default"]}},
                {"videoId": text()}),
            "JobStatus": job_status, "Result": result, "Metadata": metadata, "WebhookEvent": webhook_event,
            "FailedWebhook": obj({"jobId": JOB_ID, "url": text(), "attempts": {"type": "integer", "minimum": 0},
                                  "lastError": nullable(text()), "timestamp": TIMESTAMP, "canRetry": {"type": "boolean"}}),
        },
        "responses": {
            "NotFound": error("No such route.", "not_found"),
            "MethodNotAllowed": error("Any method not listed for a path.", "method_not_allowed",
                                      details=obj({"allowed": {"type": "array", "items": text()}})),
            "Unauthorized": error(
                "Missing or wrong credentials.", "unauthorized",
                message={"enum": ["Missing Authorization header", "Invalid authentication token"]},
                details=obj({"reason": {"enum": ["missing_credentials", "invalid_secret", "token_expired", "invalid_token"]}}),
            ),
            "ServerError": error("Unexpected failure; no internals are shown.", "processing_failed"),
            "RateLimited": error(
                "Out of tokens: one per POST /transcribe or /estimate, refilled over time.", "rate_limited",
                details=obj({"retryAfter": {"type": "integer", "minimum": 1}, "retryAfterTimestamp": TIMESTAMP,
                             "rateLimitInfo": obj({"capacity": {"type": "integer", "minimum": 1}, "refillRate": text(),
                                                   "tokensRemaining": {"type": "integer", "minimum": 0}})}),
            ) | {"headers": {"Retry-After": {"required": True, "description": "Seconds until one token is back.",
                                             "schema": {"type": "string", "pattern": "^[0-9]+$"}}}},
        },
    }


def url_operation(name: str, summary: str, ok: Schema) -> Schema:
    """POST /transcribe or /estimate: same body, same validation, same errors."""
    return {
        "operationId": name, "summary": summary, "security": AUTHENTICATED,
        "requestBody": {"required": True, "content": {JSON: {"schema": ref("UrlRequest")}}},
        "responses": {
            **ok,
            "400": error("Bad JSON or field (`invalid_request`), or not a TikTok video link (`invalid_url`, with "
                         "`details.providedUrl` and `details.expectedFormat`).", "invalid_request", "invalid_url"),
            "401": ref("Unauthorized", "responses"),
            "413": error("Body over 64 KiB.", "payload_too_large"),
            "422": error("A photo post, or a video longer than MAX_AUDIO_SECONDS.", "unsupported_content"),
            "429": ref("RateLimited", "responses"),
            "500": ref("ServerError", "responses"),
            "503": error("A short link could not be resolved right now; try again.", "service_unavailable"),
        },
    }


def status_operation(name: str) -> Schema:
    return {
        "operationId": name, "summary": "A job's progress, result or error.", "security": AUTHENTICATED,
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "description": "The job id, or the requestId it was submitted with.",
                        "schema": text(minLength=1, maxLength=128)}],
        "responses": {
            "200": answer("The status document.", ref("JobStatus")),
            "400": error("An id over 128 characters.", "invalid_request"),
            "401": ref("Unauthorized", "responses"),
            "404": error("No such job (`details.jobId`), or an id the route cannot hold.", "job_not_found", "not_found"),
            "500": ref("ServerError", "responses"),
        },
    }


LIMIT_HEADERS = {h: {"description": "IETF RateLimit fields of the caller's bucket.", "schema": text()}
                 for h in ("RateLimit", "RateLimit-Policy")}


def transcribe_operation(name: str) -> Schema:
    operation = url_operation(name, "Submit a TikTok link for transcription.", {
        "202": answer("The job (already `completed`, with `cacheHit`, on a cache hit).", ref("SubmitAnswer"), LIMIT_HEADERS)})
    operation["responses"]["422"] = error(
        "A photo post or a video longer than MAX_AUDIO_SECONDS (`unsupported_content`), or a requestId / "
        "Idempotency-Key already used for a different video (`idempotency_conflict`).",
        "unsupported_content", "idempotency_conflict")
    operation["parameters"] = [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": text(minLength=1, maxLength=128),
                                "description": "The same key returns the job already made for it."}]
    return operation


def estimate_operation(name: str) -> Schema:
    return url_operation(name, "Credits for a video, from its real duration.", {
        "200": answer("The estimate.", ref("Estimate"), LIMIT_HEADERS)})


def public(name: str, summary: str, responses: Schema) -> Schema:
    return {"get": {"operationId": name, "summary": summary, "security": [],
                    "responses": {**responses, "500": ref("ServerError", "responses")}}}


def document(base_url: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a service reached at ``base_url`` running API ``version``."""
    webhook_headers = [
        ("X-TTTranscribe-Signature", HEX64, "Hex HMAC-SHA256 of the signing string (see the body's `signature`)."),
        ("X-Idempotency-Key", HEX64, "Same as the body's `idempotencyKey`; the same on every retry."),
        ("webhook-id", text(), "Standard Webhooks message id (the idempotency key)."),
        ("webhook-timestamp", text(pattern="^[0-9]+$"), "Standard Webhooks: Unix seconds of this attempt."),
        ("webhook-signature", text(pattern=r"^v1,[A-Za-z0-9+/=]+$"), "Standard Webhooks: `v1,<base64>` over the raw body."),
        ("User-Agent", text(pattern="^TTTranscribe/"), "TTTranscribe/<version>."),
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "TTTranscribe", "version": version,
                 "description": "TikTok links in, transcripts out. Every error is "
                 '`{"error": code, "message": text, "details": {...}}`; unknown routes answer 404 `not_found` '
                 "and unlisted methods 405 `method_not_allowed` (components.responses)."},
        "servers": [{"url": base_url}],
        "security": AUTHENTICATED,
        "paths": {
            "/": public("index", "What this service is and where its endpoints are.", {"200": answer("About.", obj(
                {"service": {"const": "TTTranscribe"}, "version": text(), "apiVersion": text(),
                 "platform": {"enum": ["huggingface-spaces", "local"]}, "baseUrl": text(format="uri"),
                 "endpoints": {"type": "array", "items": text()}},
                {"aliases": {"type": "array", "items": text()}, "documentation": text(format="uri"),
                 "authentication": text()}))}),
            "/health": public("health", "Always 200; `status` is `degraded` when something is wrong.", {"200": answer(
                "Health.", obj(
                    {"status": {"enum": ["healthy", "degraded"]}, "version": text(), "apiVersion": text(),
                     "service": {"const": "tttranscribe"}, "platform": {"enum": ["huggingface-spaces", "local"]},
                     "uptime": {"type": "number", "minimum": 0}, "timestamp": TIMESTAMP, "baseUrl": text(),
                     "environment": obj({k: {"type": "boolean"} for k in (
                         "hasAuthSecret", "hasHfApiKey", "hasWebhookUrl", "hasWebhookSecret")}
                         | {"asrProvider": {"enum": ["hf", "local"]}, "asrProviderReason": text()}),
                     "cache": obj({"size": {"type": "integer", "minimum": 0},
                                   "hitRate": {"type": "number", "minimum": 0, "maximum": 1},
                                   "hitCount": {"type": "integer", "minimum": 0}, "missCount": {"type": "integer", "minimum": 0}}),
                     "readiness": obj({"ok": {"type": "boolean"}, "message": text(), "missing": {"type": "array", "items": text()}}),
                     "rateLimit": obj({"capacityPerIp": {"type": "integer", "minimum": 1}, "refillPerMinute": {"type": "number"}}),
                     "webhook": obj({"queueSize": {"type": "integer", "minimum": 0}, "targetUrl": text()})},
                    {"workers": {"type": "object"}}))}),
            "/ready": public("ready", "Can the service take jobs?", {
                "200": answer("Ready.", obj({"ready": {"const": True}})),
                "503": answer("Not ready, and why.", obj({"ready": {"const": False}, "reason": text(),
                                                           "missing": {"type": "array", "items": text()}}))}),
            "/openapi.json": public("openapi", "This document.", {"200": answer("OpenAPI 3.1.", {
                "type": "object", "required": ["openapi", "info", "paths"]})}),
            "/transcribe": {"post": transcribe_operation("transcribe")},
            "/estimate": {"post": estimate_operation("estimate")},
            "/status/{id}": {"get": status_operation("status")},
            "/ttt/transcribe": {"post": transcribe_operation("tttTranscribe")},
            "/ttt/estimate": {"post": estimate_operation("tttEstimate")},
            "/ttt/status/{id}": {"get": status_operation("tttStatus")},
            "/admin/webhook-queue": {"get": {
                "operationId": "webhookQueue", "summary": "Webhook events that could not be delivered.",
                "responses": {
                    "200": answer("The failed events.", obj({"failed": {"type": "array", "items": ref("FailedWebhook")},
                                                             "totalFailed": {"type": "integer", "minimum": 0}},
                                                            {"queueSize": {"type": "integer", "minimum": 0}})),
                    "401": ref("Unauthorized", "responses"), "500": ref("ServerError", "responses")}}},
            "/admin/retry-webhook/{jobId}": {"post": {
                "operationId": "retryWebhook", "summary": "Re-send a job's failed webhook now (same bytes).",
                "parameters": [{"name": "jobId", "in": "path", "required": True, "schema": text(minLength=1)}],
                "responses": {
                    "200": answer("What happened.", obj({"success": {"type": "boolean"}, "message": text(), "jobId": text()})),
                    "401": ref("Unauthorized", "responses"),
                    "404": error("No such job, or an id the route cannot hold.", "job_not_found", "not_found"),
                    "500": ref("ServerError", "responses")}}},
        },
        "webhooks": {"jobFinished": {"post": {
            "operationId": "jobFinished",
            "summary": "Sent to BUSINESS_ENGINE_WEBHOOK_URL when a job submitted with a requestId completes or fails.",
            "security": [],
            "parameters": [{"name": name, "in": "header", "required": True, "schema": schema, "description": about}
                           for name, schema, about in webhook_headers],
            "requestBody": {"required": True, "content": {JSON: {"schema": ref("WebhookEvent")}}},
            "responses": {
                "2XX": {"description": "Delivered."}, "409": {"description": "Already had it: delivered."},
                "default": {"description": "408, 429 and 5xx are retried with backoff (Retry-After honoured); "
                            "other answers park the event as failed (see /admin/webhook-queue)."}},
        }}},
        "components": components(),
    }
