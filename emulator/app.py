"""The Flask app that mounts every ``functions/`` handler, with the ``/ttt/...`` aliases.

Routing only: each handler does its own method check, auth and error translation, so a route
answers exactly as the same handler run alone by functions-framework would. Unknown paths get
the contract's 404 envelope.
"""
from __future__ import annotations

from collections.abc import Callable

import flask

from core.errors import NotFound
from core.http import error_response
from core.services import Services
from functions.estimate import estimate
from functions.health import health
from functions.index import index
from functions.openapi import openapi
from functions.ready import ready
from functions.retry_webhook import retry_webhook
from functions.status import status
from functions.transcribe import transcribe
from functions.webhook_queue import webhook_queue

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]

# route -> handler; every route is served at /ttt<route> too (the engine's mobile-facing paths)
ROUTES: dict[str, Callable[..., flask.Response]] = {
    "/": index,
    "/health": health,
    "/ready": ready,
    "/openapi.json": openapi,
    "/transcribe": transcribe,
    "/estimate": estimate,
    "/status/<job_id>": status,
    "/admin/webhook-queue": webhook_queue,
    "/admin/retry-webhook/<job_id>": retry_webhook,
}


def create_app(services: Services) -> flask.Flask:
    app = flask.Flask("tttranscribe")

    def mount(rule: str, handler: Callable[..., flask.Response]) -> None:
        def view(**_: str) -> flask.Response:
            return handler(flask.request, services)

        app.add_url_rule(
            rule, f"{handler.__name__}:{rule}", view, methods=ALL_METHODS, provide_automatic_options=False
        )

    for rule, handler in ROUTES.items():
        mount(rule, handler)
        mount("/ttt" + (rule if rule != "/" else ""), handler)

    @app.errorhandler(404)
    def not_found(_: Exception) -> flask.Response:
        return error_response(NotFound(details={"path": flask.request.path[:200]}))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> flask.Response:
        # Werkzeug HTTP errors outside our handlers (e.g. a malformed request line).
        code = getattr(exc, "code", 500)
        if code == 404:
            return not_found(exc)
        app.logger.exception("[http] unhandled error")
        from core.errors import ServiceError

        err = ServiceError()
        if isinstance(code, int) and 400 <= code < 500:
            err = ServiceError("The request could not be understood.")
            err.status, err.code = code, "invalid_request"
        return error_response(err)

    return app
