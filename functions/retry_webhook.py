"""POST /admin/retry-webhook/:jobId — re-send a failed webhook event now, same bytes (auth)."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run alone: make core importable

import flask  # noqa: E402

from core.errors import JobNotFound  # noqa: E402
from core.http import endpoint  # noqa: E402
from core.services import Services  # noqa: E402


@endpoint("POST")
def retry_webhook(request: flask.Request, services: Services, caller: object) -> tuple[dict, int]:
    job_id = request.path.rstrip("/").rsplit("/", 1)[-1][:128]
    answer = services.webhooks.retry(job_id)
    if not answer["success"] and services.jobs.find(job_id) is None:
        raise JobNotFound(details={"jobId": job_id})
    return answer, 200
