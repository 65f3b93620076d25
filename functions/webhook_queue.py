"""GET /admin/webhook-queue — webhook events that could not be delivered (auth)."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run alone: make core importable

import flask  # noqa: E402

from core.http import endpoint  # noqa: E402
from core.services import Services  # noqa: E402


@endpoint("GET")
def webhook_queue(request: flask.Request, services: Services, caller: object) -> tuple[dict, int]:
    failed = services.webhooks.failed()
    return {"failed": failed, "totalFailed": len(failed), "queueSize": services.webhooks.queue_size()}, 200
