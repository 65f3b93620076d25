"""GET / — what this service is and where its endpoints are (public)."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run alone: make core importable

import flask  # noqa: E402

from core.http import endpoint  # noqa: E402
from core.services import Services  # noqa: E402

ENDPOINTS = ["POST /transcribe", "POST /estimate", "GET /status/:id", "GET /health"]


@endpoint("GET", auth=False)
def index(request: flask.Request, services: Services, caller: object) -> tuple[dict, int]:
    s = services.settings
    return {
        "service": "TTTranscribe",
        "version": s.api_version,
        "apiVersion": s.api_version,
        "platform": s.platform,
        "baseUrl": s.public_base_url,
        "endpoints": ENDPOINTS,
        "aliases": ["/ttt/transcribe", "/ttt/estimate", "/ttt/status/:id"],
        "documentation": f"{s.public_base_url}/openapi.json",
        "authentication": "X-Engine-Auth: <secret> or Authorization: Bearer <secret|JWT>",
    }, 200
