"""Shared fixtures: real store in a temp dir, real faster-whisper (bundled tiny.en, loaded once
per session), real yt-dlp against a loopback media server, the real Flask app."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may download at run time in tests

from core.asr import LocalWhisper, resolve_local_model  # noqa: E402
from core.services import Services  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.media_server import MediaServer, fixtures_dir, load_manifest  # noqa: E402

SECRET = "test-engine-secret"
AUTH = {"X-Engine-Auth": SECRET}


class CountingAsr:
    """The real local engine, counting how many transcriptions really ran."""

    def __init__(self, inner: LocalWhisper) -> None:
        self.inner = inner
        self.runs = 0

    @property
    def model_used(self) -> str:
        return self.inner.model_used

    def transcribe(self, audio: Any, on_progress: Any = None) -> Any:
        self.runs += 1
        return self.inner.transcribe(audio, on_progress)


@pytest.fixture(scope="session")
def whisper() -> LocalWhisper:
    return LocalWhisper(lambda: resolve_local_model("base"), num_workers=2, cpu_threads=1)


@pytest.fixture(scope="session")
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        yield server


@pytest.fixture(scope="session")
def manifest() -> dict[str, tuple[float, str]]:
    return load_manifest()


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return fixtures_dir()


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "ENGINE_SHARED_SECRET": SECRET,
        "media_host_allowlist": "127.0.0.1",
        "asr_provider": "local",
        "rate_limit_capacity": 1000,
        "base_url": "http://testserver",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_services(tmp_path: Path, whisper: LocalWhisper) -> Iterator[Callable[..., Services]]:
    built: list[Services] = []

    def build(**overrides: Any) -> Services:
        asr = overrides.pop("asr", None)
        # asr=False: let Services build the provider from the settings, as in production.
        asr = CountingAsr(whisper) if asr is None else (asr or None)
        extra = {k: overrides.pop(k) for k in ("http", "clock") if k in overrides}
        services = Services(make_settings(tmp_path / "data", **overrides), asr=asr, announce=lambda _: None, **extra)
        built.append(services)
        return services

    yield build
    for services in built:
        services.close()


@pytest.fixture
def services(make_services: Callable[..., Services]) -> Services:
    return make_services()


@pytest.fixture
def client(services: Services) -> Any:
    from emulator.app import create_app

    return create_app(services).test_client()


class Sleeps(list[float]):
    """An injectable ``sleep`` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` until true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def tiktok() -> Iterator[Any]:
    """TikTok's short-link service, faked on loopback (routes set by each test)."""
    from tests.fake_tiktok import FakeShortLinkServer

    with FakeShortLinkServer() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A real webhook receiver on 127.0.0.1 that accepts everything unless given a plan."""
    from tests.webhook_receiver import WebhookReceiver

    with WebhookReceiver() as rx:
        yield rx


def wait_terminal(client: Any, job_id: str, timeout: float = 120.0, seen: list[int] | None = None) -> dict[str, Any]:
    """Poll /status until the job is terminal; records every progress value in ``seen``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(f"/status/{job_id}", headers=AUTH).get_json()
        if seen is not None:
            seen.append(doc["progress"])
        if doc["status"] in ("completed", "failed"):
            return doc
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not terminal after {timeout}s: {doc}")


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    """Server processes started by a test; all stopped when it ends."""
    started: list[Any] = []
    yield started
    for proc in started:
        proc.stop()
