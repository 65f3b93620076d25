"""Server processes for tests: the emulator or a single function, on a loopback port."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from tests.conftest import AUTH, SECRET

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "TTT_", "BUSINESS_ENGINE_", "HF_API"))}
    env.update(
        DATA_DIR=str(data_dir), PORT=str(port), ENGINE_SHARED_SECRET=SECRET, MEDIA_HOST_ALLOWLIST="127.0.0.1",
        ASR_PROVIDER="local", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra,
    )
    return env


class Proc:
    """A server process with its output in a file (read on failure)."""

    def __init__(self, args: list[str], env: dict[str, str], port: int, log: Path, cwd: Path = ROOT) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_up(self, path: str = "/health", timeout: float = 60) -> "Proc":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                requests.get(self.base + path, timeout=2)
                return self
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError(f"server not up: {self.log.read_text()[-3000:]}")

    def log_count(self, text: str) -> int:
        return self.log.read_text(errors="replace").count(text)

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


def poll(base: str, job_id: str, until: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = requests.get(f"{base}/status/{job_id}", headers=AUTH, timeout=5).json()
        if until(doc):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting; last status {doc}")
