"""``python -m emulator transcribe``: the same pipeline for people, in a real subprocess."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.procs import ROOT, service_env
from tests.wer import wer


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = service_env(tmp_path / "data", 0)
    return subprocess.run([sys.executable, "-m", "emulator", "transcribe", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_local_file_prints_the_transcript(tmp_path: Path, fixtures: Path, manifest: dict) -> None:
    clip = "pocketsphinx-librivox/sense_and_sensibility_01_austen_64kb-0890.wav"
    done = run([str(fixtures / clip)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert wer(manifest[clip][1], done.stdout) <= 0.15


def test_media_url_with_json_status_document(tmp_path: Path, media: Any, fixtures: Path) -> None:
    import json

    url = media.add_clip("cli/a.m4a", fixtures / "asterisk-en/conf-waitforleader.wav")
    done = run([url, "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "completed" and "leader" in doc["result"]["transcription"].lower()


def test_refused_link_says_why_and_fails(tmp_path: Path) -> None:
    done = run(["https://www.tiktok.com/@a/photo/1"], tmp_path)
    assert done.returncode == 2 and "[unsupported_content]" in done.stderr and done.stdout == ""
