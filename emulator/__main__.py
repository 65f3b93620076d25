"""``python -m emulator``: serve every endpoint on PORT with waitress and run the worker pool.

``python -m emulator transcribe <tiktok-url | media-url | file> [--json]`` runs the same
pipeline in-process and prints the transcript.
"""
from __future__ import annotations

import argparse
import sys

from core.services import Services, configure_logging
from core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="TTTranscribe")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the HTTP API (default)")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 7860")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--threads", type=int, default=8, help="HTTP threads")
    run = sub.add_parser("transcribe", help="transcribe one link or file and print the transcript")
    run.add_argument("source", help="TikTok URL, media URL (MEDIA_HOST_ALLOWLIST) or a local audio/video file")
    run.add_argument("--json", action="store_true", help="print the full status document")
    sub.add_parser("fetch-model", help="download the configured Whisper model into the hub cache (Docker build)")
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging(settings.log_level)
    if args.command == "fetch-model":
        from core.asr import resolve_local_model

        choice = resolve_local_model(settings.whisper_model_size, settings.whisper_model_path)
        print(f"{choice.model_used}: {choice.path} ({choice.origin})")
        return 0 if choice.origin != "bundled" or settings.whisper_model_size == "tiny" else 1
    if args.command == "transcribe":
        from emulator.cli import transcribe_command

        return transcribe_command(settings, args.source, as_json=args.json)
    return serve_forever(settings, getattr(args, "host", "0.0.0.0"), getattr(args, "port", None), getattr(args, "threads", 8))


def serve_forever(settings: Settings, host: str, port: int | None, threads: int) -> int:
    import waitress

    from emulator.app import create_app

    services = Services(settings)
    services.start_workers()
    port = port or settings.port
    print(f"TTTranscribe {settings.api_version} listening on http://{host}:{port} (data in {settings.data_dir})", file=sys.stderr, flush=True)
    try:
        waitress.serve(create_app(services), host=host, port=port, threads=threads, ident="TTTranscribe")
    finally:
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
