"""The one place that knows Flask: request parsing, the error envelope, and the handler wrapper.

Every handler is wrapped by ``endpoint``: method check, authentication, rate limiting, then
the handler; any ``ServiceError`` raised anywhere below becomes the contract's envelope here,
and anything unexpected is logged with its traceback and answered 500 with no internals.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flask

from core.auth import Caller
from core.errors import InvalidRequest, MethodNotAllowed, PayloadTooLarge, RateLimited, ServiceError, Unauthorized
from core.models import iso

if TYPE_CHECKING:
    from core.services import Services

log = logging.getLogger("tttranscribe.http")

MAX_BODY_BYTES = 64 * 1024
Answer = tuple[Any, int] | tuple[Any, int, dict[str, str]]
Handler = Callable[[flask.Request, "Services", Caller | None], Answer]


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return flask.Response(text, status=status, headers=headers or {}, mimetype="application/json")


def error_response(exc: ServiceError) -> flask.Response:
    return respond(exc.envelope(), exc.status, exc.headers())


def json_body(request: flask.Request) -> dict[str, Any]:
    """The request's JSON object, or InvalidRequest / PayloadTooLarge (never reads > 64 KiB)."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise PayloadTooLarge(details={"maxBytes": MAX_BODY_BYTES})
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(details={"maxBytes": MAX_BODY_BYTES})
    if not raw.strip():
        raise InvalidRequest("The request body must be a JSON object.", details={"reason": "empty_body"})
    # The content type is not trusted either way: a JSON body is read as JSON whatever the
    # header says, and anything else is refused with a clear message.
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequest(
            "The request body is not valid JSON.",
            details={"reason": "malformed_json", "contentType": (request.content_type or "")[:100]},
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", details={"reason": "not_an_object"})
    return body


def optional_str(body: dict[str, Any], key: str, max_len: int = 256) -> str | None:
    """A string field that may be absent or null; wrong types and over-long values refused."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidRequest(
            f"'{key}' must be a non-empty string of at most {max_len} characters.",
            details={"field": key},
        )
    return value.strip()


def client_address(request: flask.Request, trusted_hops: int) -> str:
    """The end client's address: the entry ``trusted_hops`` from the right of X-Forwarded-For.

    Each trusted proxy appends the address it saw; entries further left were written by the
    client and can be forged, so they are never used.
    """
    if trusted_hops > 0:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if hops:
            return hops[-min(trusted_hops, len(hops))]
    return request.remote_addr or "unknown"


def _rate_limit(request: flask.Request, services: "Services", caller: Caller | None) -> dict[str, str]:
    address = client_address(request, services.settings.proxy_hops)
    limiter = services.limiter
    if limiter.is_exempt(address):
        return {}
    user = request.headers.get("X-End-User-Id", "").strip()[:128] if caller else ""
    key = f"user:{user}" if user else f"ip:{address}"
    decision = limiter.take(key)
    window = round(limiter.capacity / limiter.rate)
    headers = {
        "RateLimit-Policy": f'"bucket";q={limiter.capacity};w={window}',
        "RateLimit": f'"bucket";r={decision.remaining};t={decision.reset if decision.allowed else decision.retry_after}',
    }
    if decision.allowed:
        return headers
    log.info("[rate-limit] limited %s for %ss", key.split(":", 1)[0], decision.retry_after)
    now = services.clock()
    raise RateLimited(
        decision.retry_after,
        details={
            "retryAfter": decision.retry_after,
            "retryAfterTimestamp": iso(now + decision.retry_after),
            "rateLimitInfo": {
                "capacity": limiter.capacity,
                "refillRate": f"{limiter.describe()['refillPerMinute']:g} tokens per minute",
                "tokensRemaining": decision.remaining,
            },
        },
        extra_headers=headers,
    )


def endpoint(
    *methods: str, auth: bool = True, limited: bool = False
) -> Callable[[Handler], Callable[..., flask.Response]]:
    """Wrap ``fn(request, services, caller)`` into a functions-framework handler."""

    def wrap(fn: Handler) -> Callable[..., flask.Response]:
        @functools.wraps(fn)
        def handler(request: flask.Request, services: "Services | None" = None) -> flask.Response:
            headers: dict[str, str] = {}  # rate-limit headers go on every answer that spent a token
            try:
                if request.method not in methods:
                    raise MethodNotAllowed(details={"allowed": list(methods)})
                if services is None:
                    from core.services import default_services

                    services = default_services()
                caller = None
                if auth:
                    try:
                        caller = services.auth.check(request.headers)
                    except Unauthorized:
                        if limited:  # unauthenticated floods still spend their address's tokens
                            _rate_limit(request, services, None)
                        raise
                headers = _rate_limit(request, services, caller) if limited else {}
                body, status, *extra = fn(request, services, caller)
                return respond(body, status, {**headers, **(extra[0] if extra else {})})
            except ServiceError as exc:
                response = error_response(exc)
                for name, value in headers.items():
                    response.headers.setdefault(name, value)
                return response
            except Exception:
                log.exception("[http] unexpected error on %s %s", request.method, request.path)
                return error_response(ServiceError())

        handler.methods = methods  # type: ignore[attr-defined]
        return handler

    return wrap
