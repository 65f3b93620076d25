"""GET /ready — 200 when the service can take jobs, else 503 with the reason (public)."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run alone: make core importable

import flask  # noqa: E402

from core.http import endpoint  # noqa: E402
from core.services import Services  # noqa: E402


@endpoint("GET", auth=False)
def ready(request: flask.Request, services: Services, caller: object) -> tuple[dict, int]:
    readiness = services.readiness()
    if readiness["ok"]:
        return {"ready": True}, 200
    return {"ready": False, "reason": readiness["message"], "missing": readiness["missing"]}, 503
