"""The composition root: builds the real collaborators from one ``Settings``.

Constructing ``Services`` opens the store in DATA_DIR and reads (or generates) the shared
secret; the ASR model loads on first use and the worker pool starts on ``start_workers``.
Tests and the emulator build their own ``Services``; functions-framework handlers fall back
to ``default_services()``, built once per process from the environment.
"""
from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from core.asr import AsrProvider, LocalWhisper, limit_malloc_arenas, resolve_local_model
from core.auth import Authenticator, load_or_create_secret
from core.download import Downloader
from core.hf_asr import HfInferenceAsr
from core.errors import JobFailure, UnsupportedContent
from core.jobs import JobService
from core.models import TERMINAL
from core.pipeline import Pipeline
from core.ratelimit import RateLimiter
from core.settings import Settings
from core.store import Record, Store
from core.tiktok import LinkResolver, VideoRef, parse_url
from core.webhooks import WebhookOutbox
from core.worker import WorkerPool, owner_is_dead, process_identity

log = logging.getLogger("tttranscribe")

DEFAULT_SECONDS = 45.0
CREDIT_RATES = {"tiny": 0.5, "base": 1.0, "small": 1.5, "medium": 2.0, "large": 3.0}


def credit_rate(model: str) -> float:
    """Credits per audio minute for a model name such as ``openai-whisper-tiny.en``."""
    name = model.lower()
    return next((rate for size, rate in CREDIT_RATES.items() if size in name), CREDIT_RATES["base"])


def asr_parallelism(mode: str, cores: int, concurrency: int) -> tuple[int, int]:
    """(CTranslate2 workers, threads per worker) for one process's model.

    Measured (bench/RESULTS.md): a second intra-op thread made one decode slower (2.98 s → 3.58 s
    on 2 cores), while two single-threaded workers run two decodes at once (throughput ×1.9). So
    each core gets a single-threaded worker:
    in ``windowed`` mode one job's windows already fill them all; in the other modes a job is one
    call, and only ``WORKER_CONCURRENCY`` jobs at once can use them.
    """
    if mode == "windowed":
        return max(1, cores), 1
    return concurrency, max(1, cores // concurrency)


def _announce(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Services:
    """Everything a handler needs, built once per process."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        asr: AsrProvider | None = None,
        http: requests.Session | None = None,
        announce: Callable[[str], None] = _announce,
    ) -> None:
        self.settings = settings
        self.clock = clock
        limit_malloc_arenas()  # before any thread of ours allocates: see its docstring
        self.started_at = clock()
        self.http = http or requests.Session()
        self.store = Store(settings.data_dir / "store")
        secret = settings.engine_shared_secret.get_secret_value() if settings.engine_shared_secret else None
        self.secret_generated = not secret
        secret = secret or load_or_create_secret(settings.data_dir, announce)
        jwt_secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self.auth = Authenticator(secret, jwt_secret, clock=clock)
        self.limiter = RateLimiter(
            self.store, settings.rate_limit_capacity, settings.rate_limit_refill_per_min, settings.exempt_cidrs, clock
        )
        self.resolver = LinkResolver(self.http, settings.media_hosts)
        self.downloader = Downloader(
            max_bytes=settings.max_download_bytes,
            max_seconds=settings.max_audio_seconds,
            cookies_file=settings.ytdlp_cookies,
            proxy=settings.ytdlp_proxy,
            impersonate=settings.ytdlp_impersonate,
        )
        self._asr = asr
        self._asr_lock = threading.Lock()
        self._start_lock = threading.Lock()
        hook_secret = settings.business_engine_webhook_secret
        self.webhooks = WebhookOutbox(
            self.store,
            url=settings.business_engine_webhook_url,
            secret=hook_secret.get_secret_value() if hook_secret else None,
            version=settings.api_version,
            max_attempts=settings.webhook_max_attempts,
            max_backoff=settings.webhook_max_backoff_seconds,
            initial_backoff=settings.webhook_initial_backoff_seconds,
            timeout=settings.webhook_timeout_seconds,
            clock=clock,
            owner=process_identity(),
            is_dead=owner_is_dead,
        )
        self.jobs = JobService(
            self.store,
            base_url=settings.public_base_url,
            model_key=lambda: self.asr.model_used,
            keep_text_max=settings.keep_text_max,
            job_ttl=settings.job_ttl_seconds,
            result_ttl=settings.result_cache_ttl_seconds,
            max_attempts=settings.max_job_attempts,
            on_terminal=self.webhooks.record,
            clock=clock,
        )
        self.pipeline = Pipeline(
            self.jobs,
            self.downloader,
            lambda: self.asr,
            tmp_dir=settings.data_dir / "tmp",
            keep_text_max=settings.keep_text_max,
            max_seconds=settings.max_audio_seconds,
            clock=clock,
        )
        self.pool = WorkerPool(
            self.jobs, self.pipeline, concurrency=settings.worker_concurrency, lease=settings.job_lease_seconds
        )

    @property
    def asr(self) -> AsrProvider:
        with self._asr_lock:
            if self._asr is None:
                self._asr = self._build_asr()
            return self._asr

    def _build_asr(self) -> AsrProvider:
        s = self.settings
        workers, threads = asr_parallelism(s.decode_mode, s.cpu_count, s.worker_concurrency)
        local = LocalWhisper(
            lambda: resolve_local_model(s.whisper_model_size, s.whisper_model_path),
            num_workers=workers,
            cpu_threads=threads,
            beam_size=s.beam_size,
            mode=s.decode_mode,
        )
        # Never build the hosted client without our key: huggingface_hub would quietly fall back
        # to HF_TOKEN or a cached login.
        if s.effective_asr_provider != "hf" or not s.hf_api_key:
            return local
        return HfInferenceAsr(
            token=s.hf_api_key.get_secret_value(),
            models=s.hf_models,
            base_url=s.hf_inference_base_url,
            timeout=s.hf_timeout_seconds,
            fallback=(lambda: local) if s.asr_fallback_to_local else None,
        )

    # ---- operations the handlers share --------------------------------------------------------

    def video(self, url: Any) -> VideoRef:
        """Validate a submitted URL and resolve short links to the canonical video (SSRF-checked)."""
        return self.resolver.resolve(parse_url(url, self.settings.media_hosts))

    def submit(self, ref: VideoRef, request_id: str | None, idempotency_key: str | None) -> Record:
        job, _ = self.jobs.submit(ref, request_id, idempotency_key)
        if job["step"] not in TERMINAL:
            self.start_workers()  # lazily, for a handler run alone by functions-framework
            self.pool.wake()
        return job

    def estimate(self, ref: VideoRef) -> Record:
        """Credits from the video's real duration (metadata only, cached per video)."""
        assert ref.video_id
        model = self.asr.model_used
        meta = self.store.get("meta", ref.video_id)
        source = "cache"
        if not meta or meta.get("duration") is None:
            try:
                meta = self.downloader.probe(ref.canonical_url or ref.url)
                self.jobs.remember_metadata(ref.video_id, meta)
                source = "metadata"
            except JobFailure as failure:
                if failure.code in ("unsupported_content", "media_too_long", "download_not_found", "download_auth"):
                    raise UnsupportedContent(failure.message, details={"errorCode": failure.code}) from None
                log.info("[cache] no metadata for %s (%s); estimating %ss", ref.video_id, failure.code, DEFAULT_SECONDS)
                meta = {}
        duration = meta.get("duration")
        if duration is None:
            duration, source = DEFAULT_SECONDS, "default"
        if duration > self.settings.max_audio_seconds:
            raise UnsupportedContent(
                f"The video is {duration:.0f}s long; the limit is {self.settings.max_audio_seconds:.0f}s.",
                details={"errorCode": "media_too_long", "durationSeconds": duration},
            )
        return {
            "estimatedCredits": max(1, math.ceil(duration / 60 * credit_rate(model))),
            "estimatedDurationSeconds": round(duration, 2),
            "modelUsed": model,
            "note": "This is an estimate. Actual cost will be based on real audio duration.",
            "durationSource": source,
            "videoId": ref.video_id,
        }

    def start_workers(self) -> None:
        """Job workers and webhook senders (idempotent): every process that accepts jobs runs them."""
        with self._start_lock:
            if self.settings.process_jobs:
                self.pool.start()
            self.webhooks.start()

    def readiness(self) -> Record:
        """Ready to take jobs? Reads configuration and remembered errors only: no network."""
        s = self.settings
        missing: list[str] = []
        problems: list[str] = []
        if s.effective_asr_provider == "hf":
            if not s.hf_api_key:
                missing.append("HF_API_KEY")
            elif error := getattr(self.asr, "config_error", None):
                problems.append(error)
        if missing:
            problems.insert(0, "missing " + ", ".join(missing) + f" for ASR_PROVIDER=hf ({s.asr_provider_reason})")
        ok = not problems
        return {"ok": ok, "message": "ready" if ok else "; ".join(problems), "missing": missing}

    def close(self) -> None:
        self.pool.stop()
        self.webhooks.stop()
        self.store.close()


_default: Services | None = None
_default_lock = threading.Lock()


def configure_logging(level: str) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # faster-whisper logs every file's duration and VAD cut at INFO; ours say what matters.
    logging.getLogger("faster_whisper").setLevel(max(logging.WARNING, logging.getLogger().level))


def default_services() -> Services:
    """The process-wide services for handlers run by functions-framework alone."""
    global _default
    with _default_lock:
        if _default is None:
            settings = Settings()
            configure_logging(settings.log_level)
            _default = Services(settings)
        return _default

