"""Fetch a video's metadata and media with yt-dlp's Python API, within size and duration limits.

Contracts:

- ``Downloader.probe(url)`` returns contract ``metadata`` keys plus ``"duration"`` (float or None)
  without fetching the media file itself. ``Downloader.download(url, workdir)`` extracts and
  downloads in ONE ``YoutubeDL`` instance, because TikTok's CDN answers 403 unless the request
  carries the cookies the page set.
- Limits: a known duration above ``max_seconds`` fails with ``media_too_long`` before any media
  byte is requested; a known size above ``max_bytes`` (format metadata, then Content-Length) and a
  body growing past ``max_bytes`` fail with ``unsupported_content`` ("media file too large").
  An unknown duration is not checked here: the pipeline compares the decoded duration.
- Every failure is a ``JobFailure`` with a contract code and a message safe to show; yt-dlp's own
  text goes to the ``tttranscribe.download`` log only. On failure no ``media.*`` file (nor
  ``.part``) is left in ``workdir``; on success exactly the returned file is.
- A body cut short WITH a Content-Length makes yt-dlp retry and then give up
  (``download_network``, retryable). Cut short WITHOUT one, yt-dlp reports success with a short
  file; ``Download.duration`` carries the metadata duration so the pipeline can notice.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yt_dlp

from core.errors import JobFailure
from core.metadata import as_float, metadata_from_info
from core.ytdlp_errors import chain_has, map_download_error

logger = logging.getLogger("tttranscribe.download")

ProgressCallback = Callable[[int, "int | None"], None]

# Audio-only first, but never a format TikTok calls "audio": that is the post's *sound* (music.playUrl),
# which for most posts is a song laid over the video, not the speech. Else a single file with video and
# audio (no ffmpeg merge is available or wanted). `format_sort` makes yt-dlp pick the smallest such file
# among the formats the extractor prefers (its own `preference` still ranks first, so TikTok's
# watermarked and unplayable bytevc2 variants are never chosen while a normal one exists).
FORMAT = "ba[format_id!=audio]/b"
FORMAT_SORT = ["+size", "+br", "+res", "+fps"]
OUTPUT_STEM = "media"
_RETRIES = 2
_TIKTOK_HOSTS = ("tiktok.com", "tiktokv.com")


@dataclass
class Download:
    path: Path  # the downloaded media file inside workdir
    metadata: dict[str, Any]  # contract `metadata` keys that are known (plus "duration")
    duration: float | None  # seconds, from the extractor's metadata (None if unknown)
    size: int  # bytes on disk


class _TooLarge(Exception):
    """Raised from the progress hook; yt-dlp lets it through and we turn it into a JobFailure."""


class _CallbackFailed(Exception):
    """The caller's on_progress raised; its own exception is re-raised unchanged."""


class _YtdlpLogger:
    """yt-dlp's ``logger`` param: its screen output becomes debug lines, never stdout."""

    def __init__(self) -> None:
        self.saw_max_filesize = False

    @staticmethod
    def _clean(msg: str) -> str:
        msg = msg.strip("\r\n ")
        return "[download] " + (msg[len("[download] "):] if msg.startswith("[download] ") else msg)

    def debug(self, msg: str) -> None:
        # yt-dlp aborts a too-large Content-Length silently (returns "not downloaded"): only this line says why.
        if "larger than max-filesize" in msg:
            self.saw_max_filesize = True
        logger.debug("%s", self._clean(msg))

    def info(self, msg: str) -> None:
        logger.debug("%s", self._clean(msg))

    def warning(self, msg: str) -> None:
        logger.warning("%s", self._clean(msg))

    def error(self, msg: str) -> None:
        # A yt-dlp error ends the job, which the pipeline logs as the error; here it is the detail.
        logger.warning("%s", self._clean(msg))


class Downloader:
    """yt-dlp with the service's limits. Thread-safe: each call builds its own ``YoutubeDL``.

    ``proxy=None`` lets yt-dlp honour ``HTTPS_PROXY``; ``proxy=""`` forces a direct connection.
    ``cookies_file`` is copied per call, because yt-dlp writes the jar back into the file on close
    (a read-only secret mount would fail, and concurrent jobs would race on one file).
    """

    def __init__(self, *, max_bytes: int, max_seconds: float, cookies_file: str | None = None,
                 proxy: str | None = None, impersonate: bool = True, socket_timeout: float = 20.0) -> None:
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.cookies_file = cookies_file
        self.proxy = proxy
        self.impersonate = impersonate
        self.socket_timeout = socket_timeout

    def probe(self, url: str) -> dict[str, Any]:
        """Metadata keys of the contract plus ``"duration"``; reads the page only, never the media."""
        ylog = _YtdlpLogger()
        try:
            # check_formats=False: yt-dlp would otherwise test-download TikTok formats marked __needs_testing.
            with self._ydl(url, ylog, None, check_formats=False, ignore_no_formats_error=True) as ydl:
                info = _single_video(ydl.extract_info(url, download=False))
        except JobFailure:
            raise
        except Exception as exc:
            raise _logged(map_download_error(exc), exc) from exc
        meta = metadata_from_info(info)
        meta.setdefault("duration", None)
        return meta

    def download(self, url: str, workdir: Path, on_progress: ProgressCallback | None = None) -> Download:
        """Download the smallest single file with audio into ``workdir`` (see the module contracts).

        ``on_progress(downloaded_bytes, total_bytes_or_None)`` runs on yt-dlp's thread after each block
        and once at the end with ``downloaded == total``; an exception it raises aborts the download and
        propagates unchanged.
        """
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        ylog = _YtdlpLogger()
        state: dict[str, Any] = {}

        def hook(d: dict[str, Any]) -> None:
            done = int(d.get("downloaded_bytes") or 0)
            exact = d.get("total_bytes")
            # An estimate (fragmented downloads) can be far off, so only bytes seen or a Content-Length refuse.
            if done > self.max_bytes or (exact and int(exact) > self.max_bytes):
                raise _TooLarge(done)
            total = exact or d.get("total_bytes_estimate")
            total = int(total) if total else None
            # yt-dlp reports the last block and then "finished" with the same numbers.
            if on_progress is not None and state.get("last") != (done, total):
                state["last"] = (done, total)
                try:
                    on_progress(done, total)
                except BaseException as exc:  # noqa: BLE001 - handed back to the caller unchanged
                    state["callback_error"] = exc
                    raise _CallbackFailed() from exc

        ok = False
        try:
            with self._ydl(url, ylog, workdir, progress_hooks=[hook]) as ydl:
                info = _single_video(ydl.extract_info(url, download=False))
                self._check_limits(info)
                result = ydl.process_ie_result(info, download=True)
            path = _output_file(result, workdir)
            if path is None:
                if ylog.saw_max_filesize:
                    raise self._too_large()
                raise JobFailure("internal_error", "The video could not be downloaded: no media file was written.")
            ok = True
        except JobFailure:
            raise
        except Exception as exc:
            if "callback_error" in state:
                raise state["callback_error"] from None
            if chain_has(exc, _TooLarge):
                raise self._too_large() from None
            raise _logged(map_download_error(exc), exc) from exc
        finally:
            if not ok:
                _remove_outputs(workdir)
        duration = as_float(info.get("duration"))
        meta = metadata_from_info(info)
        size = path.stat().st_size
        logger.info("[download] %s: %d bytes, duration %s s", meta.get("videoId", "?"), size, duration)
        return Download(path=path, metadata=meta, duration=duration, size=size)

    # --- internals ---

    def _too_large(self) -> JobFailure:
        limit = f"{self.max_bytes / 1048576:.0f} MB" if self.max_bytes >= 1048576 else f"{self.max_bytes} bytes"
        return JobFailure("unsupported_content", f"media file too large (limit {limit})")

    def _check_limits(self, info: dict[str, Any]) -> None:
        duration = as_float(info.get("duration"))
        if duration is not None and duration > self.max_seconds:
            raise JobFailure("media_too_long",
                             f"The video is {duration:.0f} s long; the limit is {self.max_seconds:.0f} s.")
        formats = info.get("requested_formats") or [info]
        sizes = [f.get("filesize") or f.get("filesize_approx") for f in formats]
        if all(sizes) and sum(sizes) > self.max_bytes:
            raise self._too_large()

    @contextmanager
    def _ydl(self, url: str, ylog: _YtdlpLogger, workdir: Path | None, **extra: Any) -> Iterator[yt_dlp.YoutubeDL]:
        with _private_copy(self.cookies_file) as cookies:
            opts: dict[str, Any] = {
                "format": FORMAT,
                "format_sort": FORMAT_SORT,
                "quiet": True,
                "noprogress": True,
                "color": "no_color",
                "logger": ylog,
                "noplaylist": True,
                "cachedir": False,
                "socket_timeout": self.socket_timeout,
                "retries": _RETRIES,
                "fragment_retries": _RETRIES,
                "extractor_retries": 1,
                "max_filesize": self.max_bytes,
                "overwrites": True,  # a stale file must not count as "already downloaded"
                "continuedl": False,
                "fixup": "never",  # no ffmpeg here; the pipeline decodes with PyAV
                "updatetime": False,
                **extra,
            }
            if workdir is not None:
                # Absolute, so .part files live in workdir too (yt-dlp ignores `paths` then).
                opts["outtmpl"] = {"default": str(workdir.resolve() / f"{OUTPUT_STEM}.%(ext)s")}
            if cookies:
                opts["cookiefile"] = cookies
            if self.proxy is not None:
                opts["proxy"] = self.proxy
            target = _chrome_target() if self.impersonate and _is_tiktok(url) else None
            if target is not None:
                opts["impersonate"] = target
            with yt_dlp.YoutubeDL(opts) as ydl:
                yield ydl


@cache
def _chrome_target() -> Any:
    """A Chrome ``ImpersonateTarget`` when yt-dlp can use curl_cffi (installed and a supported version)."""
    try:
        import yt_dlp.networking._curlcffi  # noqa: F401 - raises ImportError when missing or unsupported
        from yt_dlp.networking.impersonate import ImpersonateTarget
    except ImportError:
        return None
    return ImpersonateTarget("chrome")


def _is_tiktok(url: str) -> bool:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in _TIKTOK_HOSTS)


@contextmanager
def _private_copy(path: str | None) -> Iterator[str | None]:
    if not path:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ttt-cookies-") as tmp:
        copy = Path(tmp) / "cookies.txt"
        shutil.copyfile(path, copy)
        yield str(copy)


def _single_video(info: dict[str, Any] | None) -> dict[str, Any]:
    if not info:
        raise JobFailure("internal_error", "The video could not be read: no metadata was returned.")
    if info.get("_type") == "playlist":
        entries = [e for e in info.get("entries") or [] if e]
        if len(entries) != 1:
            raise JobFailure("unsupported_content", "The link points to several videos, not one.")
        return entries[0]
    return info


def _output_file(result: dict[str, Any] | None, workdir: Path) -> Path | None:
    for item in (result or {}).get("requested_downloads") or []:
        path = Path(item.get("filepath") or "")
        if path.name and path.is_file() and path.parent.resolve() == workdir.resolve():
            return path
    return None


def _remove_outputs(workdir: Path) -> None:
    for leftover in workdir.glob(f"{OUTPUT_STEM}.*"):
        leftover.unlink(missing_ok=True)


def _logged(failure: JobFailure, exc: BaseException) -> JobFailure:
    logger.warning("[download] failed (%s): %s", failure.code, str(exc).strip())
    return failure


