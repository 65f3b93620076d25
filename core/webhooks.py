"""Webhooks to the Business Engine: a durable outbox in the store, and the sender that drains it.

Events (contract.md, "Webhook to the Business Engine"): one per job and terminal status, only for
jobs submitted with a ``requestId`` and only when ``BUSINESS_ENGINE_WEBHOOK_SECRET`` is set.

Contracts:
- Atomicity. ``record`` runs inside the transaction that makes the job terminal, so the event
  exists if and only if the job is terminal. It is written once (``store.add`` on
  ``<jobId>:<status>``) with its final body text, legacy signature and idempotency key; every
  attempt, retry and admin re-send posts exactly those bytes.
- States: ``pending`` (its key is in the persisted queue ``webhook``) -> ``sending`` (claimed by one
  sender under a lease) -> ``delivered`` | ``failed``. 2xx and 409 deliver. 408, 429, 5xx and
  network errors are retried (``Retry-After`` of 429/503 honoured, capped at ``max_backoff``);
  any other answer fails the event at once. ``failed`` events stay listed and can be re-sent by
  hand (``retry``). An index of undelivered events makes ``queue_size`` a single read.
- Retries. tenacity, ``wait_exponential_jitter(multiplier=initial_backoff, max=max_backoff)``,
  ``stop_after_attempt(max_attempts)``. Defaults (12 attempts, 4 s doubling, capped at 300 s) wait
  4+8+16+32+64+128+256+4*300 = 1708 s: the last attempt comes >= 28.5 min after the first, so an
  outage of up to ~28 minutes is survived. ``attempts``, ``lastError`` and ``nextAttemptAt`` are
  persisted after each attempt, so a restarted process continues the count.
- Processes. Several may share the store. A sender takes the next key and claims it in one
  transaction; the claim carries a lease (``until``) renewed before every backoff sleep. A claim
  whose lease ran out, or whose owner ``is_dead``, is put back in the queue by ``recover`` (run
  by ``start`` and every lease period), so an event claimed by a killed process is re-driven.
- Isolation. Delivery runs on the outbox's own daemon threads (``concurrency``) with a per-request
  timeout; ``record`` never touches the network. During an outage at most ``concurrency`` events
  are in flight, the rest wait in the queue: a down receiver sees no retry storm.
- Expiry. Undelivered events never expire; delivered ones are kept 7 days (a re-record is a no-op,
  nothing is sent twice); failed ones 30 days.

Signatures. Legacy: ``X-TTTranscribe-Signature`` = ``signature`` = hex HMAC-SHA256 of
``signing_string`` with the secret. Standard Webhooks: the key is the secret's UTF-8 bytes, i.e.
a receiver verifies with ``standardwebhooks.Webhook("whsec_" + base64(secret))``;
``webhook-id`` is the idempotency key (fixed per event). ``webhook-timestamp`` and
``webhook-signature`` are made per attempt (the body is unchanged): the spec's timestamp is when
the message was sent, and receivers reject timestamps older than 5 minutes, so a fixed creation
time would make every retry after a 5-minute outage fail verification.
"""
from __future__ import annotations

import base64
import datetime as _dt
import email.utils
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import requests
from standardwebhooks import Webhook
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from core.models import COMPLETED, FAILED
from core.store import Record, Store

log = logging.getLogger("tttranscribe.webhook")

NS, QUEUE, INDEX = "webhook", "webhook", ("webhook-index", "undelivered")
DELIVERED_TTL, FAILED_TTL = 7 * 86400.0, 30 * 86400.0
USAGE_KEYS = ("audioDurationSeconds", "transcriptCharacters", "modelUsed", "processingTimeSeconds")
SIGNED_KEYS = ("jobId", "requestId", "status", "usage", "timestamp", "idempotencyKey")


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return [_integral(v) for v in value] if isinstance(value, list) else value


def _compact(value: Any) -> str:
    """The contract's JSON: no spaces, non-ASCII as is, 12.0 written as 12 (as JavaScript does)."""
    return json.dumps(_integral(value), separators=(",", ":"), ensure_ascii=False)


def signing_string(event: dict[str, Any]) -> bytes:
    signed = {k: event[k] for k in SIGNED_KEYS}
    signed["usage"] = {k: event["usage"][k] for k in USAGE_KEYS}
    return _compact(signed).encode()


def idempotency_key(job_id: str, status: str, timestamp: str) -> str:
    return hashlib.sha256(f"{job_id}-{status}-{timestamp}".encode()).hexdigest()


def legacy_signature(secret: str, event: dict[str, Any]) -> str:
    return hmac.new(secret.encode(), signing_string(event), hashlib.sha256).hexdigest()


def build_event(job: Record, secret: str) -> dict[str, Any]:
    """The body of a terminal job's event, keys in contract order, signed."""
    status = COMPLETED if job["step"] == COMPLETED else FAILED
    result = job.get("result") or {}
    timestamp = job["completedAt"] if status == COMPLETED else job["failedAt"]
    event: dict[str, Any] = {"jobId": job["id"], "requestId": job["requestId"], "status": status}
    event["usage"] = {
        "audioDurationSeconds": round(float(result.get("duration") or 0), 2),
        "transcriptCharacters": len(result.get("transcription") or ""),
        "modelUsed": result.get("modelUsed") or "",
        # A cache hit ran no processing for this job; billing must not see the first job's time.
        "processingTimeSeconds": 0 if job.get("cacheHit") else round(float(result.get("processingTime") or 0), 2),
    }
    if status == FAILED:
        err = job.get("errorDetails") or {"code": "internal_error", "message": "Transcription failed"}
        event["error"] = f"{err['message']} [code: {err['code']}]"
    event.update(timestamp=timestamp, cacheHit=bool(job.get("cacheHit")))
    event["idempotencyKey"] = idempotency_key(job["id"], status, timestamp)
    event["signature"] = legacy_signature(secret, event)
    return event


def validate_target(url: str) -> None:
    """https only; plain http only to loopback (tests, local receivers). Raises ValueError."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback:
        raise ValueError(f"webhook target must be https (or http on loopback): {url!r}")


@dataclass(frozen=True)
class _Outcome:
    status: int | None  # None: no HTTP answer
    error: str | None  # None: delivered
    retryable: bool
    retry_after: float | None = None


class _Attempt(NamedTuple):
    attempt_number: int


class _Stopped(Exception):
    """The outbox is stopping: hand the event back to the queue instead of sending."""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the HTTP-date form
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None  # unreadable: fall back to our own backoff


class WebhookOutbox:
    """Records events in the store and delivers them from background threads (see module doc)."""

    def __init__(
        self, store: Store, *, url: str, secret: str | None, version: str, max_attempts: int = 12,
        max_backoff: float = 300.0, timeout: float = 10.0, session: requests.Session | None = None,
        clock: Callable[[], float] = time.time, sleep: Callable[[float], None] | None = None,
        initial_backoff: float = 4.0, concurrency: int = 2, poll_interval: float = 2.0,
        owner: Record | None = None, is_dead: Callable[[Record], bool] = lambda owner: False,
    ) -> None:
        validate_target(url)
        self.store, self.url, self.secret, self.version = store, url, secret or None, version
        self.max_attempts, self.max_backoff, self.timeout = max_attempts, max_backoff, timeout
        self.initial_backoff, self.concurrency, self.poll_interval = initial_backoff, concurrency, poll_interval
        self.session, self.clock, self.is_dead = session or requests.Session(), clock, is_dead
        self._stop, self._wake = threading.Event(), threading.Event()
        # Default sleep is interruptible, so stop() does not wait out a 300 s backoff.
        self.sleep = sleep if sleep is not None else (lambda seconds: self._stop.wait(seconds) and None)
        self.owner = owner or {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}
        self.lease = 3 * timeout + 10  # outlives one attempt with room to persist its outcome
        self._std = Webhook("whsec_" + base64.b64encode(self.secret.encode()).decode()) if self.secret else None
        self._threads: list[threading.Thread] = []
        self._recovered_at = 0.0
        self._recover_lock = threading.Lock()

    # ---- recording (inside the job's transaction: store only, no network) ----------------------

    def record(self, job: Record) -> None:
        if not job.get("requestId") or not self.secret:
            return
        status = COMPLETED if job["step"] == COMPLETED else FAILED
        key = f"{job['id']}:{status}"
        if self.store.get(NS, key) is not None:
            return
        body = build_event(job, self.secret)
        now = self.clock()
        headers = {
            "Content-Type": "application/json", "User-Agent": f"TTTranscribe/{self.version}",
            "X-TTTranscribe-Signature": body["signature"], "X-Idempotency-Key": body["idempotencyKey"],
            "webhook-id": body["idempotencyKey"],
        }
        rec: Record = {
            "key": key, "jobId": job["id"], "status": status, "url": self.url, "timestamp": body["timestamp"],
            "body": _compact(body), "headers": headers, "state": "pending", "attempts": 0, "totalAttempts": 0,
            "lastError": None, "lastStatus": None, "nextAttemptAt": now, "createdAt": now, "claim": None,
        }
        with self.store.transact():
            if self.store.add(NS, key, rec):  # the atomic guard: one event per job and status
                self._index(key, "pending")
                self.store.push(QUEUE, key)
        self.wake()

    def _index(self, key: str, state: str | None) -> None:
        def change(index: Record | None) -> Record:
            index = dict(index or {})
            index.pop(key, None) if state is None else index.__setitem__(key, state)
            return index

        self.store.update(*INDEX, change)

    # ---- the sender -------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        self.recover()
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"ttt-webhook-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._recover_lock:
                    if time.monotonic() - self._recovered_at > self.lease:
                        self.recover()
                rec = self._claim_next()
                if rec is not None:
                    self._drive(rec)
                    continue
            except Exception:
                log.exception("[webhook] sender error")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def deliver_pending(self) -> int:
        """Drain the queue on this thread (tests, CLI); returns how many events were delivered."""
        self.recover()
        delivered = 0
        while (rec := self._claim_next()) is not None:
            delivered += self._drive(rec).error is None
        return delivered

    def recover(self) -> int:
        """Put back in the queue every claimed event whose lease ran out or whose owner is dead."""
        self._recovered_at = time.monotonic()
        requeued = 0
        for key, state in (self.store.get(*INDEX) or {}).items():
            if state == "failed" and self.store.get(NS, key) is None:  # expired: forget it
                self._index(key, None)
            if state != "sending":
                continue
            with self.store.transact():
                rec = self.store.get(NS, key)
                claim = (rec or {}).get("claim") or {}
                if rec is None or rec["state"] != "sending":
                    continue
                if claim.get("until", 0) > self.clock() and not self.is_dead(claim.get("owner") or {}):
                    continue
                self._put(rec, state="pending", claim=None)
                self.store.push(QUEUE, key)
                requeued += 1
        if requeued:
            log.warning("[webhook] re-queued %d event(s) left by a stopped sender", requeued)
            self.wake()
        return requeued

    def _put(self, rec: Record, **changes: Any) -> None:
        rec.update(changes)
        ttl = {"delivered": DELIVERED_TTL, "failed": FAILED_TTL}.get(rec["state"])
        self.store.put(NS, rec["key"], rec, ttl)
        self._index(rec["key"], None if rec["state"] == "delivered" else rec["state"])

    def _claim(self, key: str, states: tuple[str, ...]) -> Record | None:
        rec = self.store.get(NS, key)
        if rec is None or rec["state"] not in states:
            return None
        claim = {"id": uuid.uuid4().hex, "owner": self.owner, "until": self.clock() + self.lease}
        self._put(rec, state="sending", claim=claim)
        return rec

    def _claim_next(self) -> Record | None:
        with self.store.transact():
            while (key := self.store.pull(QUEUE)) is not None:
                if (rec := self._claim(key, ("pending",))) is not None:
                    return rec
        return None

    def _persist(self, rec: Record, **changes: Any) -> None:
        """Save our changes to a claimed event, unless another sender took it over meanwhile."""
        with self.store.transact():
            current = self.store.get(NS, rec["key"])
            if not current or (current.get("claim") or {}).get("id") != rec["claim"]["id"]:
                raise _Stopped(f"claim on {rec['key']} lost")
            self._put(rec, **changes)

    def _drive(self, rec: Record, budget: int | None = None, park: bool = True) -> _Outcome:
        """Send a claimed event until delivered, refused or out of attempts; then settle its state.

        ``park``: when the budget runs out on a retryable error, mark it failed (True) or hand it
        back to the queue for the sender's normal schedule (False, used by the admin re-send).
        """
        done = rec["attempts"]
        backoff = wait_exponential_jitter(multiplier=self.initial_backoff, max=self.max_backoff, jitter=self.initial_backoff)

        def wait(state: RetryCallState) -> float:
            outcome = cast(_Outcome, state.outcome.result())  # type: ignore[union-attr]
            if outcome.retry_after is not None:
                return min(outcome.retry_after, self.max_backoff)
            return backoff(cast(RetryCallState, _Attempt(state.attempt_number + done)))

        def before_sleep(state: RetryCallState) -> None:
            delay = state.next_action.sleep  # type: ignore[union-attr]
            self._log(rec, cast(_Outcome, state.outcome.result()), delay)  # type: ignore[union-attr]
            until = self.clock() + delay
            self._persist(rec, nextAttemptAt=until, claim={**rec["claim"], "until": until + self.lease})

        retrying = Retrying(
            sleep=self.sleep, stop=stop_after_attempt(budget or max(1, self.max_attempts - done)), wait=wait,
            retry=retry_if_result(lambda o: o.retryable), before_sleep=before_sleep,
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )
        try:
            outcome = cast(_Outcome, retrying(self._attempt, rec))
            self._log(rec, outcome, None)
            if outcome.error is None:
                self._persist(rec, state="delivered", claim=None, deliveredAt=self.clock())
            elif outcome.retryable and not park:
                self._persist(rec, state="pending", claim=None)
                self.store.push(QUEUE, rec["key"])
                self.wake()
            else:
                self._persist(rec, state="failed", claim=None)
            return outcome
        except _Stopped:
            # Stopping, or another sender took the event over: hand it back only if still ours.
            with self.store.transact():
                if ((self.store.get(NS, rec["key"]) or {}).get("claim") or {}).get("id") == rec["claim"]["id"]:
                    self._put(rec, state="pending", claim=None)
                    self.store.push(QUEUE, rec["key"])
            return _Outcome(None, "stopped", True)

    def _attempt(self, rec: Record) -> _Outcome:
        if self._stop.is_set() and threading.current_thread() in self._threads:
            raise _Stopped
        headers = dict(rec["headers"])
        if self._std is not None:
            ts = int(self.clock())
            when = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
            headers.update({"webhook-timestamp": str(ts), "webhook-signature": self._std.sign(headers["webhook-id"], when, rec["body"])})
        try:
            with self.session.post(
                self.url, data=rec["body"].encode(), headers=headers, timeout=self.timeout, allow_redirects=False, stream=True
            ) as response:
                code, excerpt = response.status_code, response.raw.read(300, decode_content=True).decode("utf-8", "replace")
                retry_after = _retry_after(response.headers.get("Retry-After")) if code in (429, 503) else None
        except requests.RequestException as exc:
            outcome = _Outcome(None, f"{type(exc).__name__}: {exc}"[:300], True)
        else:
            ok = 200 <= code < 300 or code == 409
            error = None if ok else f"HTTP {code}: {excerpt.strip()}"[:300]
            outcome = _Outcome(code, error, code in (408, 429) or code >= 500, retry_after)
        self._persist(
            rec, attempts=rec["attempts"] + 1, totalAttempts=rec["totalAttempts"] + 1, url=self.url,
            lastStatus=outcome.status, lastError=outcome.error or rec["lastError"], lastAttemptAt=self.clock(),
        )
        return outcome

    def _log(self, rec: Record, outcome: _Outcome, delay: float | None) -> None:
        level = logging.INFO if outcome.error is None else logging.WARNING
        result = "delivered" if outcome.error is None else ("retry" if delay is not None else "gave up")
        log.log(
            level, "[webhook] job=%s event=%s attempt=%d/%d status=%s delay=%s result=%s%s",
            rec["jobId"], rec["status"], rec["attempts"], self.max_attempts, outcome.status or "network-error",
            f"{delay:.1f}s" if delay is not None else "-", result, f" error={outcome.error}" if outcome.error else "",
        )

    # ---- admin and health -------------------------------------------------------------------

    def queue_size(self) -> int:
        return len(self.store.get(*INDEX) or {})

    def failed(self) -> list[Record]:
        rows = []
        for key, state in (self.store.get(*INDEX) or {}).items():
            if state == "failed" and (rec := self.store.get(NS, key)):
                rows.append({"jobId": rec["jobId"], "url": rec["url"], "attempts": rec["totalAttempts"],
                             "lastError": rec["lastError"], "timestamp": rec["timestamp"], "canRetry": True})
        return sorted(rows, key=lambda row: row["timestamp"])

    def retry(self, job_id: str) -> Record:
        """Re-send a failed event now, once (same bytes, bounded by ``timeout``).

        A retryable failure hands it back to the queue with a fresh attempt budget.
        """
        for status in (COMPLETED, FAILED):
            with self.store.transact():
                current = self.store.get(NS, f"{job_id}:{status}")
                rec = self._claim(f"{job_id}:{status}", ("failed",))
                if rec is not None:
                    self._put(rec, attempts=0)
            if current is None:
                continue
            if rec is None:
                state = current["state"]
                return {"success": state == "delivered", "jobId": job_id,
                        "message": "Webhook already delivered" if state == "delivered" else f"Webhook is {state}; delivery is under way"}
            outcome = self._drive(rec, budget=1, park=False)
            if outcome.error is None:
                return {"success": True, "message": "Webhook delivered", "jobId": job_id}
            then = "queued for automatic retries" if outcome.retryable else "kept as failed"
            return {"success": False, "message": f"Delivery failed ({outcome.error}); {then}", "jobId": job_id}
        return {"success": False, "message": "No webhook event for this job", "jobId": job_id}

    def describe(self) -> Record:
        return {"queueSize": self.queue_size(), "targetUrl": self.url}
