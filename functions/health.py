"""GET /health — always 200; `status` says `degraded` when something is wrong (public).

Reads only local state: no network on the request path.
"""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run alone: make core importable

import flask  # noqa: E402

from core.http import endpoint  # noqa: E402
from core.models import iso  # noqa: E402
from core.services import Services  # noqa: E402


@endpoint("GET", auth=False)
def health(request: flask.Request, services: Services, caller: object) -> tuple[dict, int]:
    s = services.settings
    readiness = services.readiness()
    return {
        "status": "healthy" if readiness["ok"] else "degraded",
        "version": s.api_version,
        "apiVersion": s.api_version,
        "service": "tttranscribe",
        "platform": s.platform,
        "uptime": round(services.clock() - services.started_at, 1),
        "timestamp": iso(services.clock()),
        "baseUrl": s.public_base_url,
        "environment": {
            # A generated secret is a real secret, but the engine cannot know it: report the
            # configured one, which is what the deployment checklist asks about.
            "hasAuthSecret": not services.secret_generated,
            "hasHfApiKey": s.hf_api_key is not None,
            "hasWebhookUrl": bool(s.business_engine_webhook_url),
            "hasWebhookSecret": s.business_engine_webhook_secret is not None,
            "asrProvider": s.effective_asr_provider,
            "asrProviderReason": s.asr_provider_reason,
        },
        "cache": services.jobs.counts(),
        "readiness": readiness,
        "rateLimit": services.limiter.describe(),
        "webhook": services.webhooks.describe(),
        "workers": {"concurrency": s.worker_concurrency, "started": services.pool.started, "busy": services.pool.busy()},
    }, 200
