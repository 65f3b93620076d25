"""One error hierarchy with HTTP meaning, turned into the contract's envelope in core/http.py.

``ServiceError`` is what a request can fail with; ``JobFailure`` is what a job can fail with
(its ``code`` is the contract's ``errorCode``). Both carry only text that is safe to show.
"""
from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An answer other than 2xx: ``{"error": code, "message": message, "details": details}``."""

    status: int = 500
    code: str = "processing_failed"
    message: str = "The request could not be processed."

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or {}

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(ServiceError):
    status, code, message = 400, "invalid_request", "The request body is not valid."


class InvalidUrl(ServiceError):
    status, code, message = 400, "invalid_url", "The URL is not a supported TikTok video link."


class Unauthorized(ServiceError):
    status, code, message = 401, "unauthorized", "Invalid authentication token"


class NotFound(ServiceError):
    status, code, message = 404, "not_found", "No such route."


class JobNotFound(ServiceError):
    status, code, message = 404, "job_not_found", "Transcription job not found"


class MethodNotAllowed(ServiceError):
    status, code, message = 405, "method_not_allowed", "Method not allowed on this route."


class PayloadTooLarge(ServiceError):
    status, code, message = 413, "payload_too_large", "The request body is too large."


class UnsupportedContent(ServiceError):
    status, code, message = 422, "unsupported_content", "This content cannot be transcribed."


class IdempotencyConflict(ServiceError):
    status, code, message = 422, "idempotency_conflict", "This key was already used for a different URL."


class RateLimited(ServiceError):
    status, code, message = 429, "rate_limited", "Too many requests. Please wait before retrying."

    def __init__(self, retry_after: int, details: dict[str, Any], extra_headers: dict[str, str] | None = None) -> None:
        super().__init__(details=details)
        self.retry_after = retry_after
        self.extra_headers = extra_headers or {}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after), **self.extra_headers}


class ServiceUnavailable(ServiceError):
    status, code, message = 503, "service_unavailable", "The service is not ready."


# Job failure codes of contract.md, with whether trying again later may succeed.
RETRYABLE: dict[str, bool] = {
    "download_auth": False,
    "download_blocked": True,
    "download_network": True,
    "download_not_found": False,
    "unsupported_content": False,
    "media_too_long": False,
    "transcription_failed": True,
    "internal_error": True,
}


class JobFailure(Exception):
    """Why a job failed: a contract ``errorCode`` and a message safe to show to the user."""

    def __init__(self, code: str, message: str, retryable: bool | None = None) -> None:
        if code not in RETRYABLE:
            raise ValueError(f"unknown job failure code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = RETRYABLE[code] if retryable is None else retryable

    def as_details(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}
