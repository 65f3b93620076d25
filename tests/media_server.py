"""A media server on 127.0.0.1 for the tests: real speech served the way TikTok's CDN would.

``MediaServer`` is a threaded ``http.server`` on a random loopback port. Tests register routes
(clips, video pages, failing statuses, truncated bodies, plain HTML, redirects) and read back
which requests arrived in ``requests``. Clips are real recordings from ``../shared/fixtures/speech``
wrapped into m4a (AAC) or mp4 (H.264 + AAC) with PyAV; the encoded files are cached per process in
a temp folder (never in the repository) and removed at exit.

Nothing here touches the network beyond 127.0.0.1, and every response is bounded: a throttled
route sends ``bytes_per_second`` and stops as soon as the server is stopped.

Usage::

    with MediaServer() as media:
        url = media.add_clip("hello.m4a", fixtures_dir() / "asterisk-en/agent-user.wav")
        page = media.add_page("v/1", "hello.m4a", title="Hi", author="jane", duration=4.91)
"""
from __future__ import annotations

import atexit
import csv
import html
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np

__all__ = ["MediaServer", "fixtures_dir", "load_manifest", "encode_clip", "PNG_1PX"]

# The smallest valid PNG (1x1, transparent), served as a thumbnail.
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def fixtures_dir() -> Path:
    """The speech fixtures: ``$TTT_FIXTURES_DIR``, else ``../shared/fixtures/speech`` beside the repo.

    CI runs from a fresh clone with ``shared/`` as a sibling of the clone, so the default is
    resolved from this file, not from the working directory.
    """
    override = os.environ.get("TTT_FIXTURES_DIR")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "speech"


def load_manifest() -> dict[str, tuple[float, str]]:
    """``manifest.tsv`` as {relative file path: (duration in seconds, reference text)}."""
    rows: dict[str, tuple[float, str]] = {}
    with open(fixtures_dir() / "manifest.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows[row["file"]] = (float(row["duration_s"]), row["reference"])
    return rows


# --- encoding (cached per process) -------------------------------------------------------------

_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple[str, int, str], Path] = {}
_CACHE_DIR: Path | None = None


def _cache_dir() -> Path:
    global _CACHE_DIR
    if _CACHE_DIR is None:
        _CACHE_DIR = Path(tempfile.mkdtemp(prefix="ttt-media-"))
        atexit.register(shutil.rmtree, _CACHE_DIR, True)
    return _CACHE_DIR


def encode_clip(wav_path: Path, container: str = "m4a") -> Path:
    """Encode ``wav_path`` (any format PyAV reads) to ``m4a`` (AAC) or ``mp4`` (H.264 + AAC).

    The result is cached per process, keyed by path, mtime and container. ``mp4`` carries a tiny
    black video track so that the file looks like a TikTok video, whose audio must be demuxed.
    """
    if container not in ("m4a", "mp4"):
        raise ValueError(f"unsupported container {container!r} (m4a or mp4)")
    wav_path = Path(wav_path).resolve()
    key = (str(wav_path), wav_path.stat().st_mtime_ns, container)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.exists():
            return cached
        out = _cache_dir() / f"{len(_CACHE):03d}-{wav_path.stem}.{container}"
        _encode(wav_path, out, with_video=(container == "mp4"))
        _CACHE[key] = out
        return out


def _encode(src: Path, out: Path, *, with_video: bool) -> None:
    with av.open(str(src)) as inp:
        in_stream = inp.streams.audio[0]
        frames = [f for f in inp.decode(in_stream)]
        duration = sum(f.samples for f in frames) / (in_stream.rate or 16000)
    # 44.1 kHz as TikTok serves it. It also keeps AAC's priming and last-frame padding (2 x 1024
    # samples, which decoders do not all trim) near 46 ms; at the fixtures' 8 kHz it was 0.25 s.
    rate = 44100
    # faststart puts the moov atom first, as CDNs serve it, so a reader can stream the file.
    with av.open(str(out), "w", format="mp4" if with_video else "ipod", options={"movflags": "faststart"}) as dst:
        video = None
        if with_video:
            video = dst.add_stream("libx264", rate=2)
            video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
            video.options = {"preset": "ultrafast"}
        audio = dst.add_stream("aac", rate=rate)
        audio.layout = "mono"
        audio.bit_rate = 64000
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        written = 0
        for frame in [*frames, None]:  # None flushes the resampler
            for resampled in resampler.resample(frame):
                # Explicit, gapless timestamps: the resampler's own are missing for some inputs.
                resampled.pts, resampled.time_base = written, Fraction(1, rate)
                written += resampled.samples
                dst.mux(audio.encode(resampled))
        dst.mux(audio.encode(None))
        if video is not None:
            black = np.zeros((64, 64, 3), dtype=np.uint8)
            for i in range(max(1, int(duration * 2) + 1)):
                vf = av.VideoFrame.from_ndarray(black, format="rgb24").reformat(format="yuv420p")
                vf.pts, vf.time_base = i, Fraction(1, 2)
                dst.mux(video.encode(vf))
            dst.mux(video.encode(None))


# --- routes ------------------------------------------------------------------------------------

@dataclass
class _Route:
    kind: str  # file | status | truncated | truncated_no_length | redirect
    body: bytes = b""
    content_type: str = "application/octet-stream"
    status: int = 200
    bytes_per_second: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True


_CONTENT_TYPES = {"m4a": "audio/mp4", "mp4": "video/mp4", "mp3": "audio/mpeg", "wav": "audio/wav"}


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        owner = self.server.owner
        owner._record(self.command, self.path)
        route = owner._route(self.path.split("?", 1)[0].split("#", 1)[0])
        try:
            if route is None:
                self._plain(404, b"not found")
            elif route.kind == "status":
                self._plain(route.status, route.body or f"status {route.status}".encode(), route.headers)
            elif route.kind == "redirect":
                self._plain(route.status, b"", {"Location": route.headers["Location"]})
            elif route.kind == "file":
                self._file(route, head)
            elif route.kind == "truncated":
                # Promises the whole file, sends half, then closes: a connection cut mid-body.
                self.send_response(200)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if not head:
                    self._write(route.body[: len(route.body) // 2], route.bytes_per_second)
                self.close_connection = True
            elif route.kind == "truncated_no_length":
                # No Content-Length: the client can only see the end of the connection.
                self.send_response(200)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Connection", "close")
                self.end_headers()
                if not head:
                    self._write(route.body[: len(route.body) // 2], route.bytes_per_second)
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        extra = dict(headers or {})
        self.send_header("Content-Type", extra.pop("Content-Type", "text/plain; charset=utf-8"))
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _file(self, route: _Route, head: bool) -> None:
        if not route.send_length:
            # Close-delimited body, as some CDNs stream: the client cannot know the size in advance.
            self.send_response(200)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self._write(route.body, route.bytes_per_second)
            self.close_connection = True
            return
        body, start, end = route.body, 0, len(route.body) - 1
        rng = self.headers.get("Range", "")
        partial = rng.startswith("bytes=") and "," not in rng
        if partial:
            first, _, last = rng[6:].partition("-")
            try:
                if first:
                    start, end = int(first), min(int(last) if last else end, end)
                else:  # suffix range: the last N bytes
                    start = max(0, len(body) - int(last))
            except ValueError:
                partial = False
            if partial and start > end:
                self._plain(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                return
        self.send_response(206 if partial else 200)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self._write(body[start : end + 1], route.bytes_per_second)

    def _write(self, data: bytes, bytes_per_second: int | None) -> None:
        if not bytes_per_second:
            self.wfile.write(data)
            return
        # ~20 writes a second so that progress is visible and a stop is noticed quickly.
        chunk = max(1, bytes_per_second // 20)
        stopping = self.server.owner._stopping
        for offset in range(0, len(data), chunk):
            if stopping.is_set():
                return
            self.wfile.write(data[offset : offset + chunk])
            self.wfile.flush()
            time.sleep(chunk / bytes_per_second)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "MediaServer"


class MediaServer:
    """A loopback media server for tests; ``start()``/``stop()`` or use it as a context manager.

    Every ``add_*`` method returns the absolute URL of the route it made; names are paths
    relative to ``base_url`` (``"clip.m4a"``, ``"@jane/video/1"``). ``requests`` is a snapshot
    of ``(method, path)`` pairs received so far, paths with their query string.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._routes: dict[str, _Route] = {}
        self._requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # lifecycle
    def start(self) -> "MediaServer":
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self._host, 0), _Handler)
        self._server.owner = self
        self.base_url = f"http://{self._host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="media-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "MediaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # introspection
    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._requests)

    def requested(self, name: str, method: str | None = None) -> int:
        """How many requests arrived for route ``name`` (any query), optionally of one method."""
        path = self._path(name)
        return sum(1 for m, p in self.requests
                   if p.split("?", 1)[0] == path and (method is None or m == method))

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def url(self, name: str) -> str:
        assert self.base_url, "start() the MediaServer before adding routes"
        return self.base_url + self._path(name)

    # routes
    def add_clip(self, name: str, wav_path: Path, *, container: str = "m4a",
                 bytes_per_second: int | None = None, send_length: bool = True) -> str:
        """Serve real audio from ``wav_path`` wrapped in ``container`` (m4a or mp4).

        With Range support and a Content-Length, unless ``send_length=False`` (whole body, then close).
        ``bytes_per_second`` throttles the body so a test can watch progress or stop mid-download.
        """
        data = encode_clip(Path(wav_path), container).read_bytes()
        return self.add_bytes(name, data, content_type=_CONTENT_TYPES[container],
                              bytes_per_second=bytes_per_second, send_length=send_length)

    def add_bytes(self, name: str, data: bytes, *, content_type: str = "application/octet-stream",
                  bytes_per_second: int | None = None, headers: dict[str, str] | None = None,
                  send_length: bool = True) -> str:
        return self._add(name, _Route("file", data, content_type, bytes_per_second=bytes_per_second,
                                      headers=dict(headers or {}), send_length=send_length))

    def size(self, name: str) -> int:
        """Byte size of the body served at ``name``."""
        route = self._route(self._path(name))
        assert route is not None, f"no route {name!r}"
        return len(route.body)

    def add_page(self, name: str, media_name: str, *, title: str, author: str, duration: float,
                 description: str = "", author_name: str | None = None, upload_date: str = "2024-05-17",
                 view_count: int | None = 1234, like_count: int | None = 56, comment_count: int | None = 7,
                 keywords: list[str] | None = None, thumbnail: bool = True, video_tag: bool = False,
                 encoding_format: str = "audio/mp4") -> str:
        """A video page: ``<video src>`` plus a schema.org ``VideoObject`` in JSON-LD.

        ``author`` is the handle (with or without ``@``); ``author_name`` an optional display name
        (JSON-LD has one ``name``, so a display name replaces the handle there and the handle goes
        to ``alternateName``; yt-dlp reads only ``name``, as ``uploader``). ``duration`` is written
        as ``PT<seconds>S``. Name the page like TikTok (``"@jane/video/123"``) and the handle can
        also be read from its URL.

        ``video_tag`` is off by default: yt-dlp's generic extractor looks for embeds (its ``html5``
        extractor takes any ``<video src>``) *before* JSON-LD, and then ignores the JSON-LD entirely,
        leaving no duration, uploader or counts (verified with yt-dlp 2026.10.26). The player is then
        a ``<div data-src>`` that no extractor reads. Pass ``video_tag=True`` to test that path.
        """
        media_url = self.url(media_name)
        thumb_url = self.add_bytes(f"{name}.thumb.png", PNG_1PX, content_type="image/png") if thumbnail else None
        handle = author.lstrip("@")
        video_object: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "VideoObject",
            "name": title,
            "description": description,
            "duration": f"PT{duration:g}S",
            "contentUrl": media_url,
            "encodingFormat": encoding_format,
            "uploadDate": upload_date,
            "author": {"@type": "Person", "name": author_name or handle, "alternateName": "@" + handle,
                       "url": f"{self.base_url}/@{handle}"},
        }
        if thumb_url:
            video_object["thumbnailUrl"] = [thumb_url]
        if keywords:
            video_object["keywords"] = ",".join(keywords)
        stats = [("WatchAction", view_count), ("LikeAction", like_count), ("CommentAction", comment_count)]
        video_object["interactionStatistic"] = [
            {"@type": "InteractionCounter", "interactionType": {"@type": f"https://schema.org/{kind}"},
             "userInteractionCount": count}
            for kind, count in stats if count is not None
        ]
        # "</" must not appear inside <script>; JSON allows the escaped slash.
        ld = json.dumps(video_object, ensure_ascii=False).replace("</", "<\\/")
        video = (f'<video controls src="{html.escape(media_url)}" type="{html.escape(encoding_format)}"></video>'
                 if video_tag else f'<div class="player" data-src="{html.escape(media_url)}"></div>')
        page = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            f'<script type="application/ld+json">{ld}</script>'
            f"</head><body><h1>{html.escape(title)}</h1>{video}"
            f"<p>{html.escape(description)}</p></body></html>"
        )
        return self.add_html(name, page)

    def add_html(self, name: str, page: str) -> str:
        """A plain HTML page (e.g. one with no media at all)."""
        return self._add(name, _Route("file", page.encode("utf-8"), "text/html; charset=utf-8"))

    def add_status(self, name: str, status: int, body: str = "", headers: dict[str, str] | None = None) -> str:
        """Answer every request for ``name`` with ``status`` (403, 404, 410, 429, 500, ...)."""
        return self._add(name, _Route("status", body.encode("utf-8"), status=status, headers=dict(headers or {})))

    def add_redirect(self, name: str, location: str, status: int = 302) -> str:
        return self._add(name, _Route("redirect", status=status, headers={"Location": location}))

    def add_truncated(self, name: str, media_name: str, *, bytes_per_second: int | None = None) -> str:
        """Send ``media_name``'s full Content-Length but only half its bytes, then close (ignores Range)."""
        src = self._route(self._path(media_name))
        assert src is not None and src.kind == "file", f"no media route {media_name!r}"
        return self._add(name, _Route("truncated", src.body, src.content_type, bytes_per_second=bytes_per_second))

    def add_truncated_no_length(self, name: str, media_name: str, *, bytes_per_second: int | None = None) -> str:
        """Send half of ``media_name`` with no Content-Length, then close."""
        src = self._route(self._path(media_name))
        assert src is not None and src.kind == "file", f"no media route {media_name!r}"
        return self._add(name, _Route("truncated_no_length", src.body, src.content_type,
                                      bytes_per_second=bytes_per_second))

    # internals
    @staticmethod
    def _path(name: str) -> str:
        return "/" + name.lstrip("/")

    def _add(self, name: str, route: _Route) -> str:
        with self._lock:
            self._routes[self._path(name)] = route
        return self.url(name)

    def _route(self, path: str) -> _Route | None:
        with self._lock:
            return self._routes.get(path)

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append((method, path))
