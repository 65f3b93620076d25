"""End to end, side by side, in one run: a real ``python -m emulator`` (waitress) transcribing a
~97 s speech clip served as m4a from 127.0.0.1, against bare faster-whisper on the same file,
model and machine; identical words; cache hit; 20 concurrent submissions; optionally a peer.

    python bench/e2e.py [--runs 3] [--peer http://127.0.0.1:8000 --peer-model Systran/faster-whisper-tiny.en]

Job time is submit → ``completed`` seen by polling /status every 20 ms, each run on a new URL (a
new query string: a new video id, no cache). Bare times are in this process on the same m4a file,
decoding included, model warm (median of ``--runs``). The service is warmed with one short job.
``--peer`` points at a running OpenAI-compatible server (speaches: POST /v1/audio/transcriptions,
multipart ``file`` + ``model``); without it the peer line says "not measured".
"""
from __future__ import annotations

import argparse
import statistics
import threading
from pathlib import Path

import requests

from common import (Client, MediaServer, decode, deletions, emulator, encode_clip, fixtures_dir, median_time,
                    model_path, speech_clip, table, tempdir, transcribe_once, word_errors, words)

JOB_START = "[job-processing] start"


def bare_engines(cores: int) -> dict[str, object]:
    """Bare faster-whisper as a user would call it on the file, and the service's own engine."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from core.asr import LocalWhisper, ModelChoice

    path = model_path()
    one = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1)
    many = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=cores)
    batched = BatchedInferencePipeline(many)
    ours = LocalWhisper(lambda: ModelChoice(path, "bench", "path"), num_workers=cores, cpu_threads=1, mode="windowed")

    def text(segments) -> str:  # type: ignore[no-untyped-def]
        return " ".join(s.text.strip() for s in segments)

    return {
        "bare sequential beam5, 1 thread (fastest sequential)": lambda f: text(one.transcribe(str(f), beam_size=5, vad_filter=True)[0]),
        f"bare batched beam5 no-timestamps, {cores} threads (fastest at any WER)": lambda f: text(batched.transcribe(
            str(f), batch_size=8, beam_size=5, temperature=0.0, without_timestamps=True, vad_filter=True)[0]),
        "service engine in-process (windowed beam5), same file": lambda f: ours.transcribe(decode(f)).text,
    }


def peer_call(peer: str, model: str, m4a: Path) -> str:
    with open(m4a, "rb") as fh:
        answer = requests.post(f"{peer.rstrip('/')}/v1/audio/transcriptions", files={"file": (m4a.name, fh, "audio/mp4")},
                               data={"model": model, "response_format": "json"}, timeout=600)
    answer.raise_for_status()
    return answer.json()["text"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer", help="base URL of a running speaches (or other OpenAI-compatible) server")
    parser.add_argument("--peer-model", default="Systran/faster-whisper-tiny.en")
    args = parser.parse_args()

    from core.settings import Settings

    cores = Settings().cpu_count
    with tempdir("ttt-e2e-") as tmp, MediaServer() as media, emulator(Path(tmp)) as svc:
        work = Path(tmp)
        clip = speech_clip(work)
        m4a = encode_clip(clip.path, "m4a")
        media.add_clip("clip.m4a", clip.path)
        client = Client(svc.base)
        transcribe_once(client, media.add_clip("warm.m4a", fixtures_dir() / "asterisk-en/agent-user.wav"))

        # -- bare, in this process, while the service idles
        bare: dict[str, tuple[float, str]] = {}
        for name, engine in bare_engines(cores).items():
            engine(m4a)  # warm-up
            bare[name] = median_time(lambda: engine(m4a), args.runs)

        # -- end to end
        times, doc = [], None
        for i in range(args.runs):
            seconds, doc = transcribe_once(client, f"{media.url('clip.m4a')}?run={i}")
            times.append(seconds)
        e2e = statistics.median(times)
        solo_gets = media.requested("clip.m4a", "GET") / args.runs
        service_text = doc["result"]["transcription"]

        rows = [["service end to end (submit → completed)", round(e2e, 2), *quality(clip.reference, service_text), "1.00"]]
        for name, (seconds, text) in bare.items():
            rows.append([name, round(seconds, 2), *quality(clip.reference, text), f"{e2e / seconds:.2f}"])
        peer_line = "peer: not measured (pass --peer URL)"
        if args.peer:
            peer_call(args.peer, args.peer_model, m4a)  # warm-up
            seconds, text = median_time(lambda: peer_call(args.peer, args.peer_model, m4a), args.runs)
            rows.append([f"peer {args.peer} ({args.peer_model})", round(seconds, 2), *quality(clip.reference, text),
                         f"{e2e / seconds:.2f}"])
            peer_line = f"peer: end to end ÷ peer = {e2e / seconds:.2f}"
        print(f"clip {clip.duration:.1f} s of speech; service runs {[round(t, 2) for t in times]}\n")
        print(table(["what", "seconds", "WER", "lost words", "service ÷ this"], rows))
        print(peer_line)

        in_process = bare["service engine in-process (windowed beam5), same file"][1]
        sequential = bare["bare sequential beam5, 1 thread (fastest sequential)"][1]
        print(f"\nidentical words, service vs its engine in-process on the same file: {words(service_text) == words(in_process)}")
        print(f"identical words, service vs bare WhisperModel.transcribe(file, beam_size=5, vad_filter=True): "
              f"{words(service_text) == words(sequential)}")

        # -- cache hit: the same video in another URL form
        runs_before = svc.log_count(JOB_START)
        hits_before = client.call("GET", "/health")[1]["cache"]["hitCount"]
        hit_times = []
        for i in range(5):
            seconds, hit = transcribe_once(client, f"{media.url('clip.m4a')}?run=0#again-{i}")
            assert hit["cacheHit"] is True, hit
            hit_times.append(seconds)
        hits = client.call("GET", "/health")[1]["cache"]["hitCount"] - hits_before
        print(f"cache hit (URL + #fragment): submit → completed median {1000 * statistics.median(hit_times):.1f} ms, "
              f"max {1000 * max(hit_times):.1f} ms; cache hits +{hits}; ASR runs {svc.log_count(JOB_START) - runs_before}")

        # -- 20 concurrent submissions of one uncached video
        url = f"{media.url('clip.m4a')}?run=flood"
        runs_before, gets_before = svc.log_count(JOB_START), media.requested("clip.m4a", "GET")
        barrier, docs = threading.Barrier(20), []

        def one() -> None:
            own = Client(svc.base)
            barrier.wait()
            docs.append(transcribe_once(own, url, interval=0.1)[1])
            own.close()

        threads = [threading.Thread(target=one) for _ in range(20)]
        [t.start() for t in threads]
        [t.join(120) for t in threads]
        same = len({d["result"]["transcription"] for d in docs}) == 1
        print(f"20 concurrent submissions: {len(docs)} completed, {len({d['id'] for d in docs})} job ids, "
              f"same transcript {same}; media GETs {media.requested('clip.m4a', 'GET') - gets_before} "
              f"(one solo download: {solo_gets:g}); transcriptions {svc.log_count(JOB_START) - runs_before}")

def quality(reference: str, text: str) -> list[str | int]:
    errors, n = word_errors(reference, text)
    return [f"{100 * errors / n:.1f}%", deletions(reference, text)]


if __name__ == "__main__":
    main()
