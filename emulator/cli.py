"""``python -m emulator transcribe``: one link or file through the real pipeline, for people."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import JobFailure, ServiceError
from core.services import Services
from core.settings import Settings


def _bar(percent: int, note: str) -> None:
    if sys.stderr.isatty():
        filled = percent * 30 // 100
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {percent:3d}% {note[:40]:<40}")
        sys.stderr.flush()


def transcribe_command(settings: Settings, source: str, *, as_json: bool = False) -> int:
    services = Services(settings)
    try:
        doc = _run_file(services, Path(source)) if Path(source).is_file() else _run_url(services, source)
    except ServiceError as exc:
        print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
    except JobFailure as exc:
        print(f"error: {exc.message} [code: {exc.code}]", file=sys.stderr)
        return 1
    finally:
        services.close()
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    if as_json:
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    elif doc.get("status") == "failed":
        print(f"error: {doc['error']}", file=sys.stderr)
    else:
        print(doc["result"]["transcription"])
    return 1 if doc.get("status") == "failed" else 0


def _run_file(services: Services, path: Path) -> dict[str, Any]:
    result = services.pipeline.transcribe_file(path, lambda f: _bar(30 + int(65 * f), "Transcribing"))
    return {"status": "completed", "source": str(path), "result": result}


def _run_url(services: Services, url: str) -> dict[str, Any]:
    job = services.submit(services.video(url), None, None)
    while True:
        doc = services.jobs.status(job["id"])
        _bar(doc["progress"], doc["note"])
        if doc["status"] in ("completed", "failed"):
            return doc
        time.sleep(0.2)
