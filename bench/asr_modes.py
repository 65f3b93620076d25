"""Decoding modes side by side: time (median of 3) on a ~97 s speech clip, WER and lost words
(reference words missing from the transcript) on that clip and on every fixture wav. DECODE_MODE and BEAM_SIZE defaults are chosen from this table.

    python bench/asr_modes.py [--runs 3] [--gap 0.3]

Same model as the service (bundled tiny.en offline), CPU int8, VAD on, in this one process.
Bare faster-whisper rows: ``WhisperModel.transcribe`` (sequential) and ``BatchedInferencePipeline``
(batch 8, temperature 0, with or without timestamps), cpu_threads = the core count (what one
worker gets). ``windowed`` rows: the service's engine (core.asr.LocalWhisper, DECODE_MODE=windowed:
≤ 30 s speech windows, one single-threaded CTranslate2 worker per core). Times are of the engine
on decoded 16 kHz audio; decoding the clip is timed once on its own line.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import common
from common import (decode, deletions, fixture_sets, fixtures_dir, load_manifest, median_time, model_path, speech_clip, table,
                    tempdir, word_errors)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gap", type=float, default=common.GAP_SECONDS, help="silence between the clip's recordings")
    args = parser.parse_args()
    common.GAP_SECONDS = args.gap

    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from core.asr import LocalWhisper, ModelChoice
    from core.settings import Settings

    cores = Settings().cpu_count
    path = model_path()
    model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=cores)
    one_thread = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1)
    batched = {m: BatchedInferencePipeline(m) for m in (model, one_thread)}
    windowed = {beam: LocalWhisper(lambda: ModelChoice(path, "bench", "path"), num_workers=cores, cpu_threads=1,
                                   beam_size=beam, mode="windowed") for beam in (5, 1)}

    def sequential(m: WhisperModel, beam: int):
        return lambda audio: " ".join(s.text.strip() for s in m.transcribe(audio, beam_size=beam, vad_filter=True)[0])

    def batch(m: WhisperModel, beam: int, timestamps: bool):
        return lambda audio: " ".join(s.text.strip() for s in batched[m].transcribe(
            audio, batch_size=8, beam_size=beam, temperature=0.0, without_timestamps=not timestamps, vad_filter=True)[0])

    def ours(beam: int):
        return lambda audio: windowed[beam].transcribe(audio).text

    # (name, engine, WER on the fixture sets too: thread count changes speed, not words)
    modes = [
        ("sequential beam5 (1 thread)", sequential(one_thread, 5), True),
        (f"sequential beam5 ({cores} threads)", sequential(model, 5), False),
        ("sequential beam1 (1 thread)", sequential(one_thread, 1), True),
        (f"batched beam5 no-timestamps ({cores} threads)", batch(model, 5, False), True),
        ("batched beam5 no-timestamps (1 thread)", batch(one_thread, 5, False), False),
        (f"batched beam5 timestamps ({cores} threads)", batch(model, 5, True), True),
        (f"batched beam1 no-timestamps ({cores} threads)", batch(model, 1, False), True),
        (f"windowed beam5 ({cores} workers x 1 thread)", ours(5), True),
        (f"windowed beam1 ({cores} workers x 1 thread)", ours(1), True),
    ]
    refs = load_manifest()
    sets = [(decode(fixtures_dir() / f), refs[f][1]) for files in fixture_sets().values() for f in files]
    with tempdir("ttt-bench-") as tmp:
        clip = speech_clip(Path(tmp))
        t0 = time.perf_counter()
        audio = decode(clip.path)
        print(f"model {path}\ncores {cores}; clip {clip.duration:.1f} s of speech ({len(common.SPEECH_CLIP)} recordings, "
              f"{common.GAP_SECONDS} s apart); decode {time.perf_counter() - t0:.3f} s\n")
        for _, engine, _ in modes:
            engine(audio[: 16000 * 10])  # warm-up (first calls allocate)
        rows = []
        for name, engine, on_sets in modes:
            seconds, text = median_time(lambda: engine(audio), args.runs)
            errors, n = word_errors(clip.reference, text)
            row = [name, round(seconds, 2), round(clip.duration / seconds, 1), f"{100 * errors / n:.1f}%",
                   deletions(clip.reference, text)]
            e = n = lost = 0
            for samples, reference in sets if on_sets else ():
                text = engine(samples)
                ee, nn = word_errors(reference, text)
                e, n, lost = e + ee, n + nn, lost + deletions(reference, text)
            row += [f"{100 * e / n:.1f}%", lost] if n else ["-", "-"]
            rows.append(row)
            print(f"  {name}: {seconds:.2f} s", flush=True)
        print()
        print(table(["mode", "seconds", "x realtime", "WER clip", "lost words clip",
                     f"WER fixtures ({len(sets)} clips)", "lost words fixtures"], rows))

if __name__ == "__main__":
    main()
