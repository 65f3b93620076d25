"""POST /estimate — credits for a video, from its real duration (auth, rate-limited)."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run alone: make core importable

import flask  # noqa: E402

from core.http import endpoint, json_body  # noqa: E402
from core.services import Services  # noqa: E402


@endpoint("POST", limited=True)
def estimate(request: flask.Request, services: Services, caller: object) -> tuple[dict, int]:
    body = json_body(request)
    ref = services.video(body.get("url"))
    return services.estimate(ref), 200
