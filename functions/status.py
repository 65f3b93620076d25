"""GET /status/:id — the job's real progress, result or error (auth; not rate-limited)."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run alone: make core importable

import flask  # noqa: E402

from core.errors import InvalidRequest  # noqa: E402
from core.http import endpoint  # noqa: E402
from core.services import Services  # noqa: E402


@endpoint("GET")
def status(request: flask.Request, services: Services, caller: object) -> tuple[dict, int]:
    job_id = request.path.rstrip("/").rsplit("/", 1)[-1]
    if not job_id or job_id == "status" or len(job_id) > 128:
        raise InvalidRequest("Give the job id: /status/<id>.", details={"reason": "missing_job_id"})
    return services.jobs.status(job_id), 200
