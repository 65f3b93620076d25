"""Real server processes on loopback: the emulator under waitress, kill -9 and restart, and
every ``functions/*.py`` run alone by functions-framework."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import requests

from tests.conftest import AUTH
from tests.procs import ROOT, Proc, free_port, poll, service_env

CLIP = "pocketsphinx-librivox/sense_and_sensibility_01_austen_64kb-0870.wav"


def test_kill_9_mid_job_then_restart_completes_the_job(tmp_path: Path, media: Any, fixtures: Path, procs: list[Proc]) -> None:
    port = free_port()
    env = service_env(tmp_path / "data", port)
    # Slow enough that the kill lands while the download is under way.
    url = media.add_clip("kill/clip.m4a", fixtures / CLIP, bytes_per_second=8_000)
    server = Proc([sys.executable, "-m", "emulator"], env, port, tmp_path / "first.log")
    procs.append(server)
    server.wait_up()
    job = requests.post(f"{server.base}/transcribe", json={"url": url, "requestId": "kill-1"}, headers=AUTH, timeout=10).json()
    running = poll(server.base, job["id"], lambda d: d["status"] == "processing")
    server.kill9()

    again = Proc([sys.executable, "-m", "emulator"], env, port, tmp_path / "second.log")
    procs.append(again)
    again.wait_up()
    doc = poll(again.base, job["id"], lambda d: d["status"] in ("completed", "failed"))
    assert doc["status"] == "completed", doc
    assert doc["progress"] == 100 >= running["progress"]
    assert "dashwood" in doc["result"]["transcription"].lower()
    assert "re-queued 1 interrupted" in (tmp_path / "second.log").read_text()
    # by the caller's requestId too
    assert requests.get(f"{again.base}/status/kill-1", headers=AUTH, timeout=5).json()["id"] == job["id"]


FUNCTIONS = sorted(p.stem for p in (ROOT / "functions").glob("*.py") if not p.stem.startswith("_"))


def test_every_function_runs_alone(tmp_path: Path, procs: list[Proc]) -> None:
    assert {"index", "health", "ready", "transcribe", "estimate", "status"} <= set(FUNCTIONS)
    ff = Path(sys.executable).with_name("functions-framework")
    for name in FUNCTIONS:
        port = free_port()
        # Started from another folder: the handler must find core/ by itself.
        proc = Proc([str(ff), "--source", str(ROOT / "functions" / f"{name}.py"), "--target", name, "--port", str(port)],
                    service_env(tmp_path / "data", port), port, tmp_path / f"{name}.log", cwd=tmp_path)
        procs.append(proc)
    for proc, name in zip(procs, FUNCTIONS):
        proc.wait_up("/")
        answer = requests.request("DELETE", proc.base + "/", headers=AUTH, timeout=10)
        assert answer.status_code == 405 and answer.json()["error"] == "method_not_allowed", (name, answer.text)


def test_standalone_transcribe_processes_its_jobs(tmp_path: Path, media: Any, fixtures: Path, procs: list[Proc]) -> None:
    ff = Path(sys.executable).with_name("functions-framework")
    url = media.add_clip("alone/clip.m4a", fixtures / CLIP)
    servers = {}
    for name in ("transcribe", "status"):
        port = free_port()
        servers[name] = Proc([str(ff), "--source", f"functions/{name}.py", "--target", name, "--port", str(port)],
                             service_env(tmp_path / "data", port), port, tmp_path / f"{name}.log")
        procs.append(servers[name])
        servers[name].wait_up("/")
    answer = requests.post(servers["transcribe"].base + "/transcribe", json={"url": url}, headers=AUTH, timeout=10)
    assert answer.status_code == 202, answer.text
    doc = poll(servers["status"].base, answer.json()["id"], lambda d: d["status"] in ("completed", "failed"))
    assert doc["status"] == "completed", doc
    assert "dashwood" in doc["result"]["transcription"].lower()
