"""GET /openapi.json — the OpenAPI 3.1 document of this service (public, not rate-limited)."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run alone: make core importable

import flask  # noqa: E402

from core.http import endpoint  # noqa: E402
from core.openapi import document  # noqa: E402
from core.services import Services  # noqa: E402


@endpoint("GET", auth=False)
def openapi(request: flask.Request, services: Services, caller: object) -> tuple[dict, int]:
    s = services.settings
    return document(s.public_base_url, s.api_version), 200
