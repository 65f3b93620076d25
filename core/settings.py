"""The one settings object: every environment variable of contract.md, typed.

Read once at the edge (the composition root); core classes take plain values.
Secrets are ``SecretStr`` so that they never print by accident.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MODEL_SIZES = ("tiny", "base", "small", "medium", "large")
DEFAULT_WEBHOOK_URL = "https://pluct-business-engine.romeo-lya2.workers.dev/webhooks/tttranscribe"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    """Service configuration from the environment (names fixed by contract.md)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False, populate_by_name=True)

    engine_shared_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ENGINE_SHARED_SECRET", "TTT_SHARED_SECRET")
    )
    """Shared secret the Business Engine sends; generated and kept in DATA_DIR when unset."""
    jwt_secret: SecretStr | None = None
    """Enables HS256 JWT Bearer tokens (iss=pluct-business-engine, aud=tttranscribe)."""
    business_engine_webhook_secret: SecretStr | None = None
    """HMAC key for webhook signatures; webhooks are not sent without it."""
    business_engine_webhook_url: str = DEFAULT_WEBHOOK_URL
    """Where completion/failure webhooks go (https, or loopback for tests)."""
    hf_api_key: SecretStr | None = None
    """Hugging Face token for the hosted ASR provider."""
    api_version: str = "1.0.0"
    """Version reported by /, /health and the webhook User-Agent."""
    rate_limit_capacity: int = Field(10, ge=1)
    """Token bucket size per client."""
    rate_limit_refill_per_min: float = Field(10.0, gt=0)
    """Tokens returned to each bucket per minute."""
    rate_limit_exempt_cidrs: str = ""
    """Comma-separated CIDRs never rate limited (the engine's own egress)."""
    trusted_proxy_count: int | None = Field(None, ge=0)
    """Proxies in front of us that append to X-Forwarded-For (default 1 on a Space, else 0)."""
    keep_text_max: int = Field(10000, ge=1)
    """Transcripts longer than this are cut and marked truncated."""
    asr_provider: Literal["hf", "local"] | None = None
    """`hf` or `local`; unset: `hf` when HF_API_KEY is set, else `local`."""
    whisper_model_size: Literal["tiny", "base", "small", "medium", "large"] = "base"
    """Local Whisper size, resolved to Systran/faster-whisper-<size>."""
    whisper_model_path: str | None = None
    """A CTranslate2 Whisper model directory that wins over the hub."""
    hf_asr_model: str = "openai/whisper-large-v3-turbo"
    """Hosted model for ASR_PROVIDER=hf."""
    hf_asr_fallback_models: str = ""
    """Comma-separated hosted models tried in order when the first is gone (404/410) or failing."""
    hf_inference_base_url: str | None = None
    """A dedicated Inference Endpoint URL (``{model}`` in it is replaced by the model id)."""
    hf_timeout_seconds: float = Field(120.0, gt=0)
    """Per-phase timeout of one hosted ASR call."""
    asr_fallback_to_local: bool = True
    """When every hosted model fails, transcribe with local faster-whisper instead of failing."""
    beam_size: int = Field(5, ge=1, le=10)
    """Beam width for local decoding."""
    decode_mode: Literal["windowed", "sequential", "batched"] = "windowed"
    """Local decoding: speech windows in parallel, one whole-file pass, or faster-whisper's batched pipeline."""
    port: int = 7860
    """Port the emulator listens on."""
    base_url: str | None = None
    """Public base URL used in statusUrl; default from SPACE_HOST or localhost:PORT."""
    space_id: str | None = None
    """Set by Hugging Face Spaces."""
    space_host: str | None = None
    """Set by Hugging Face Spaces (e.g. user-tttranscribe.hf.space)."""
    max_audio_seconds: float = Field(600.0, gt=0)
    """Videos longer than this are refused (422 / media_too_long)."""
    max_download_bytes: int = Field(200 * 1024 * 1024, gt=0)
    """Media files larger than this are refused while downloading."""
    ytdlp_cookies: str | None = None
    """Path to a Netscape cookies file for yt-dlp."""
    ytdlp_proxy: str | None = None
    """Proxy URL for yt-dlp (HTTPS_PROXY is honoured when unset)."""
    ytdlp_impersonate: bool = False
    """Send every yt-dlp request (media too) through curl_cffi as Chrome; off: only TikTok's page
    request is impersonated, which yt-dlp does by itself when curl_cffi is installed."""
    data_dir: Path = Path("data")
    """Where the job store, results cache, outbox and generated secret live."""
    media_host_allowlist: str = ""
    """Test-only: comma-separated extra hosts (e.g. 127.0.0.1) whose URLs may be fetched directly."""
    process_jobs: bool = True
    """Run a worker pool in this process; false: only accept jobs, another process on DATA_DIR runs them."""
    worker_concurrency: int = Field(1, ge=1, le=16)
    """Jobs transcribed at once per process."""
    job_ttl_seconds: int = Field(72 * 3600, ge=24 * 3600)
    """How long a job record is kept after its last change (at least 24 h)."""
    result_cache_ttl_seconds: int = Field(48 * 3600, ge=0)
    """How long a transcript is reused for the same video and model."""
    max_job_attempts: int = Field(3, ge=1)
    """Times a job is retried after its process died before it is failed."""
    job_lease_seconds: float = Field(30.0, gt=1)
    """A running job whose heartbeat is older than this is taken over by another process."""
    webhook_max_attempts: int = Field(12, ge=1)
    """Delivery attempts per webhook event before it is parked as failed."""
    webhook_initial_backoff_seconds: float = Field(4.0, gt=0)
    """First wait between webhook attempts; doubles (with jitter) up to the max."""
    webhook_max_backoff_seconds: float = Field(300.0, gt=0)
    """Upper bound of the exponential backoff between webhook attempts."""
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    """Per-attempt HTTP timeout of webhook delivery."""
    log_level: str = "INFO"
    """Python logging level."""

    @property
    def media_hosts(self) -> list[str]:
        return [h.lower() for h in _csv(self.media_host_allowlist)]

    @property
    def hf_models(self) -> list[str]:
        return [self.hf_asr_model, *_csv(self.hf_asr_fallback_models)]

    @property
    def exempt_cidrs(self) -> list[str]:
        return _csv(self.rate_limit_exempt_cidrs)

    @property
    def on_space(self) -> bool:
        return bool(self.space_id or self.space_host)

    @property
    def platform(self) -> str:
        return "huggingface-spaces" if self.on_space else "local"

    @property
    def public_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.space_host:
            return f"https://{self.space_host}"
        return f"http://localhost:{self.port}"

    @property
    def proxy_hops(self) -> int:
        if self.trusted_proxy_count is not None:
            return self.trusted_proxy_count
        return 1 if self.on_space else 0

    @property
    def effective_asr_provider(self) -> str:
        return self.asr_provider or ("hf" if self.hf_api_key else "local")

    @property
    def asr_provider_reason(self) -> str:
        if self.asr_provider:
            return f"ASR_PROVIDER={self.asr_provider}"
        return "HF_API_KEY is set" if self.hf_api_key else "no HF_API_KEY"

    @property
    def cpu_count(self) -> int:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
