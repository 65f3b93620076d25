"""Jobs and the work they share.

A *job* is one caller's submission (``job:<id>``). The *work* (``work:<video>:<model>``) is
the download and transcription of one video with one model; every job submitted for that video
while the work runs attaches to it (single-flight), so N submissions cost one download and one
transcription. Finished results go to the results cache (``result:<work key>``), so a later
submission in any URL form completes at once.

Contracts:
- Submitting, attaching, finishing and recovering are each one store transaction: a job is
  never left without work to finish it, and every job attached to a work is finished with it.
- A job record lives ``job_ttl`` seconds after its last change; results ``result_ttl``.
- ``progress`` never decreases, not even on failure or when a work is re-run after a crash.
- ``on_terminal(job)`` is called inside the transaction that makes a job terminal, so the
  webhook outbox entry is written atomically with the job's final state.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from core.errors import IdempotencyConflict, JobFailure, JobNotFound
from core.models import COMPLETED, FAILED, STEPS, TERMINAL, iso, step_percent
from core.store import Record, Store
from core.tiktok import VideoRef

QUEUE = "work"
DEFAULT_ESTIMATE_SECONDS = 300
REALTIME_FACTOR_GUESS = 0.25  # processing seconds per audio second until measured


class JobService:
    """Creates jobs, attaches them to work, renders status, and finishes them."""

    def __init__(
        self,
        store: Store,
        *,
        base_url: str,
        model_key: Callable[[], str],
        keep_text_max: int,
        job_ttl: float,
        result_ttl: float,
        max_attempts: int,
        on_terminal: Callable[[Record], None] = lambda job: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.base_url = base_url
        self.model_key = model_key
        self.keep_text_max = keep_text_max
        self.job_ttl = job_ttl
        self.result_ttl = result_ttl
        self.max_attempts = max_attempts
        self.on_terminal = on_terminal
        self.clock = clock

    # ---- submission -------------------------------------------------------------------------

    def work_key(self, video_id: str) -> str:
        """Results are per video and per model that runs (a different model is a new transcript)."""
        return f"{video_id}:{self.model_key()}"

    def find(self, job_or_request_id: str) -> Record | None:
        job = self.store.get("job", job_or_request_id)
        if job is None:
            job_id = self.store.get("rid", job_or_request_id)
            job = self.store.get("job", job_id) if job_id else None
        return job

    def submit(
        self, ref: VideoRef, request_id: str | None = None, idempotency_key: str | None = None
    ) -> tuple[Record, bool]:
        """Create (or find) the job for this submission. Returns (job, created)."""
        assert ref.video_id, "short links are resolved before submission"
        now = self.clock()
        key = self.work_key(ref.video_id)
        with self.store.transact():
            for ns, alias in (("rid", request_id), ("idem", idempotency_key)):
                existing = self.store.get(ns, alias) if alias else None
                if existing and (job := self.store.get("job", existing)):
                    if job["videoId"] != ref.video_id:
                        field = "requestId" if ns == "rid" else "Idempotency-Key"
                        raise IdempotencyConflict(
                            f"This {field} was already used for a different URL.",
                            details={"field": field, "jobId": job["id"]},
                        )
                    return job, False
            job_id = str(uuid.uuid4())
            job: Record = {
                "id": job_id,
                "url": ref.url,
                "requestId": request_id,
                "videoId": ref.video_id,
                "workKey": key,
                "submittedAt": iso(now),
                "updatedAt": iso(now),
                "progress": 0,
                "step": "queued",
                "cacheHit": False,
                "metadata": self._ref_metadata(ref),
            }
            cached = self.store.get("result", key)
            if cached is not None:
                self.store.incr("stats", "cache_hits")
                job.update(cacheHit=True)
                self._finish_job(job, cached, now)
            else:
                self.store.incr("stats", "cache_misses")
                self._attach(job, ref, key, now)
            self.store.put("job", job_id, job, self.job_ttl)
            for ns, alias in (("rid", request_id), ("idem", idempotency_key)):
                if alias:
                    self.store.put(ns, alias, job_id, self.job_ttl)
            if job["step"] in TERMINAL:
                self.on_terminal(job)
        return job, True

    def _ref_metadata(self, ref: VideoRef) -> Record:
        meta = {"url": ref.url, "canonicalUrl": ref.canonical_url, "videoId": ref.video_id, "author": ref.author}
        return {k: v for k, v in meta.items() if v is not None}

    def _attach(self, job: Record, ref: VideoRef, key: str, now: float) -> None:
        work = self.store.get("work", key)
        if work is None or work["step"] in TERMINAL:
            work = {
                "key": key,
                "fetchUrl": ref.canonical_url or ref.url,
                "videoId": ref.video_id,
                "jobs": [],
                "step": "queued",
                "progress": 0,
                "attempts": 0,
                "createdAt": now,
                "updatedAt": now,
                "metadata": {},
            }
            self.store.push(QUEUE, key)
        work["jobs"].append(job["id"])
        self.store.put("work", key, work)

    # ---- reading ----------------------------------------------------------------------------

    def status(self, job_or_request_id: str) -> Record:
        """The contract's GET /status document; reads only the store."""
        job = self.find(job_or_request_id)
        if job is None:
            raise JobNotFound(details={"jobId": job_or_request_id})
        view = dict(job)
        if job["step"] not in TERMINAL:
            work = self.store.get("work", job["workKey"])
            if work is None:  # finished between our two reads: the job record is final now
                return self.render(self.find(job["id"]) or job)
            view.update(step=work["step"], eta=work.get("eta"), updatedAt=iso(work["updatedAt"]))
            view["progress"] = max(job["progress"], work["progress"])
            view["metadata"] = {**work.get("metadata", {}), **job["metadata"]}
        return self.render(view)

    def render(self, job: Record) -> Record:
        status, phase, current, _, note = STEPS[job["step"]]
        url = f"{self.base_url}/status/{job['id']}"
        doc: Record = {
            "id": job["id"],
            "request_id": job["id"],
            "requestId": job.get("requestId"),
            "status": status,
            "phase": phase,
            "currentStep": current,
            "progress": job["progress"],
            "percent": job["progress"],
            "note": job.get("note", note),
            "message": job.get("note", note),
            "submittedAt": job["submittedAt"],
            "updatedAt": job["updatedAt"],
            "statusUrl": url,
            "pollIntervalSeconds": 3,
        }
        if job.get("metadata"):
            doc["metadata"] = job["metadata"]
        if status in TERMINAL:
            doc["cacheHit"] = job["cacheHit"]
        if status == COMPLETED:
            doc["completedAt"] = job["completedAt"]
            doc["result"] = job["result"]
            doc["estimatedCost"] = {
                "audioDurationSeconds": job["result"]["duration"],
                "estimatedCharacters": len(job["result"]["transcription"]),
                "isCacheFree": job["cacheHit"],
                "billingNote": "Cached result: no new transcription was run."
                if job["cacheHit"]
                else "Billed on the real audio duration.",
            }
        elif status == FAILED:
            err = job["errorDetails"]
            doc["failedAt"] = job["failedAt"]
            doc["error"] = f"{err['message']} [code: {err['code']}]"
            doc["errorCode"] = err["code"]
            doc["errorDetails"] = err
        else:
            doc["estimatedCompletion"] = iso(job.get("eta") or self.clock() + self.estimate_seconds(None))
        return doc

    def submit_answer(self, job: Record) -> Record:
        """The 202 body of POST /transcribe."""
        url = f"{self.base_url}/status/{job['id']}"
        status = STEPS[job["step"]][0]
        duration = (job.get("result") or {}).get("duration") or self.known_duration(job["videoId"])
        return {
            "id": job["id"],
            "jobId": job["id"],
            "requestId": job["id"],
            "request_id": job["id"],
            "status": status,
            "message": "Your transcription request is being processed..."
            if status not in TERMINAL
            else f"Transcription {status}.",
            "statusUrl": url,
            "statusPollUrl": url,
            "pollIntervalSeconds": 3,
            "submittedAt": job["submittedAt"],
            "estimatedProcessingTime": 0 if status in TERMINAL else self.estimate_seconds(duration),
            "url": job["url"],
            "cacheHit": job["cacheHit"],
        }

    def remember_metadata(self, video_id: str, metadata: Record) -> None:
        """Per-video metadata (duration included), shared with /estimate; kept like results."""
        self.store.put("meta", video_id, metadata, self.result_ttl or None)

    def known_duration(self, video_id: str) -> float | None:
        meta = self.store.get("meta", video_id)
        return meta.get("duration") if meta else None

    def estimate_seconds(self, duration: float | None) -> int:
        """Seconds a job should take: measured speed × real duration when both are known."""
        if duration is None:
            return DEFAULT_ESTIMATE_SECONDS
        rtf = self.store.get("stats", "rtf") or REALTIME_FACTOR_GUESS
        return max(1, round(5 + duration * rtf))

    # ---- the worker's side ------------------------------------------------------------------

    def claim(self, owner: Record) -> Record | None:
        """Take the next queued work and mark it processing by ``owner`` (atomic)."""
        with self.store.transact():
            key = self.store.pull(QUEUE)
            if key is None:
                return None
            work = self.store.get("work", key)
            if work is None or work["step"] in TERMINAL:
                return None
            now = self.clock()
            work.update(step="downloading", owner=owner, heartbeat=now, updatedAt=now, attempts=work["attempts"] + 1)
            work["progress"] = max(work["progress"], step_percent("downloading", 0))
            self.store.put("work", key, work)
            return work

    def advance(self, key: str, step: str, fraction: float = 0.0, **fields: Any) -> None:
        """Record progress of a running work (percent is monotonic)."""
        now = self.clock()

        def change(work: Record | None) -> Record | None:
            if work is None or work["step"] in TERMINAL:
                return work
            work.update(fields, step=step, updatedAt=now, heartbeat=now)
            work["progress"] = max(work["progress"], step_percent(step, fraction))
            return work

        self.store.update("work", key, change)

    def heartbeat(self, keys: list[str]) -> None:
        now = self.clock()
        for key in keys:
            self.store.update("work", key, lambda w: w and {**w, "heartbeat": now})

    def complete(self, key: str, result: Record, metadata: Record, processing_seconds: float) -> None:
        """Finish every job attached to the work with ``result`` and cache it."""
        now = self.clock()
        cached = {"result": result, "metadata": metadata}
        with self.store.transact():
            # A transcript from a fallback engine is delivered but not cached: the next
            # submission should get the planned model's transcript.
            if self.result_ttl and key.endswith(":" + result["modelUsed"]):
                self.store.put("result", key, cached, self.result_ttl)
            if result["duration"]:
                old = self.store.get("stats", "rtf")
                rtf = processing_seconds / result["duration"]
                self.store.put("stats", "rtf", rtf if old is None else 0.7 * old + 0.3 * rtf)
            self._close_work(key, now, lambda job: self._finish_job(job, cached, now))

    def fail(self, key: str, failure: JobFailure) -> None:
        now = self.clock()
        details = failure.as_details()

        def failed(job: Record) -> None:
            job.update(step=FAILED, failedAt=iso(now), errorDetails=details, note=failure.message)

        with self.store.transact():
            self._close_work(key, now, failed)

    def _close_work(self, key: str, now: float, finish: Callable[[Record], None]) -> None:
        work = self.store.get("work", key)
        if work is None:
            return
        for job_id in work["jobs"]:
            job = self.store.get("job", job_id)
            if job is None or job["step"] in TERMINAL:
                continue
            job["progress"] = max(job["progress"], work["progress"])
            job["metadata"] = {**work.get("metadata", {}), **job["metadata"]}
            finish(job)
            job["updatedAt"] = iso(now)
            self.store.put("job", job_id, job, self.job_ttl)
            self.on_terminal(job)
        self.store.delete("work", key)

    def _finish_job(self, job: Record, cached: Record, now: float) -> None:
        job["metadata"] = {**cached["metadata"], **job["metadata"]}
        job.update(step=COMPLETED, progress=100, completedAt=iso(now), result=cached["result"])

    def recover(self, is_dead: Callable[[Record], bool], lease: float) -> list[str]:
        """Re-queue works whose process died (or whose heartbeat is older than ``lease``).

        A work that has already been tried ``max_attempts`` times is failed with a clear error
        instead, so a job that kills its process cannot crash-loop the service.
        """
        requeued: list[str] = []
        now = self.clock()
        for key in self.store.keys("work"):
            with self.store.transact():
                work = self.store.get("work", key)
                if not work or work["step"] in TERMINAL or work["step"] == "queued":
                    continue
                if not (is_dead(work.get("owner", {})) or now - work.get("heartbeat", 0) > lease):
                    continue
                if work["attempts"] >= self.max_attempts:
                    self.fail(key, JobFailure("internal_error", f"Processing was interrupted {work['attempts']} times; giving up."))
                    continue
                work.update(step="queued", owner=None, updatedAt=now)
                self.store.put("work", key, work)
                self.store.push(QUEUE, key)
                requeued.append(key)
        return requeued

    def counts(self) -> Record:
        hits = self.store.get("stats", "cache_hits") or 0
        misses = self.store.get("stats", "cache_misses") or 0
        total = hits + misses
        return {
            "size": len(self.store.keys("result")),
            "hitRate": round(hits / total, 2) if total else 0.0,
            "hitCount": hits,
            "missCount": misses,
        }

