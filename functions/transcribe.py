"""POST /transcribe — accept a TikTok link, answer 202 with the job (auth, rate-limited).

Run alone, this process also runs a worker pool (started on the first request), so the jobs it
accepts are processed here; with the emulator, the emulator's pool does it.
"""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run alone: make core importable

import flask  # noqa: E402

from core.http import endpoint, json_body, optional_str  # noqa: E402
from core.services import Services  # noqa: E402


@endpoint("POST", limited=True)
def transcribe(request: flask.Request, services: Services, caller: object) -> tuple[dict, int]:
    body = json_body(request)
    request_id = optional_str(body, "requestId", 128)
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None:
        idempotency_key = optional_str({"Idempotency-Key": idempotency_key}, "Idempotency-Key", 128)
    ref = services.video(body.get("url"))
    job = services.submit(ref, request_id, idempotency_key)
    return services.jobs.submit_answer(job), 202
