"""yt-dlp's failures, mapped to the contract's job error codes (design.md, "What yt-dlp does
with TikTok"). The cause's type decides first, then yt-dlp's message; the user-facing text never
carries yt-dlp's own (it may hold signed URLs), which goes to the log instead."""
from __future__ import annotations

from typing import Any

from yt_dlp.networking.exceptions import HTTPError, IncompleteRead, TransportError
from yt_dlp.utils import ContentTooShortError, GeoRestrictedError, UnsupportedError

from core.errors import JobFailure


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it: DownloadError.exc_info[1], ExtractorError.cause, RequestError.cause."""
    out: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        cur = todo.pop(0)
        if not isinstance(cur, BaseException) or any(cur is seen for seen in out):
            continue
        out.append(cur)
        info = getattr(cur, "exc_info", None)
        if isinstance(info, tuple) and len(info) > 1:
            todo.append(info[1])
        todo += [getattr(cur, "cause", None), cur.__cause__]
    return out


def chain_has(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(e, kind) for e in _chain(exc))


_AUTH = JobFailure("download_auth", "This video is private or needs a logged-in account.")
_AGE = JobFailure("download_auth", "This video is age-restricted and needs a logged-in account.")
_BOT = JobFailure("download_blocked", "TikTok answered with a bot check this server could not pass; try again later.")
_FORBIDDEN = JobFailure("download_blocked", "The video host refused the download (HTTP 403).")
_RATE = JobFailure("download_blocked", "The video host is limiting requests (HTTP 429); try again later.", retryable=True)
_GEO = JobFailure("download_blocked", "This video is not available from the server's region.", retryable=False)
_NOT_FOUND = JobFailure("download_not_found", "The video was not found: it may have been deleted, or the link is wrong.")
# TikTok answers 10204 ("Your IP address is blocked") for deleted and wrong ids too, so it alone does not
# prove a block: say what it may mean, and let a retry (perhaps from another address) try again.
_MAYBE_BLOCKED = JobFailure(
    "download_not_found",
    "TikTok did not serve this video: it may have been deleted, be private or unavailable in this region, "
    "or TikTok may be blocking this server.", retryable=True)
_UNSUPPORTED = JobFailure("unsupported_content", "This link is not a video that can be transcribed.")
_NO_FORMAT = JobFailure("unsupported_content", "This video has no downloadable media with audio.")
_NETWORK = JobFailure("download_network", "The download failed because of a network error; try again later.")
_CUT_SHORT = JobFailure("download_network", "The download was cut short before the end of the file; try again later.")
_INTERNAL = JobFailure("internal_error", "The video could not be downloaded because of an unexpected error.")

# Checked in order against yt-dlp's messages (lower case) when the cause's type did not decide.
_MESSAGES: list[tuple[tuple[str, ...], JobFailure]] = [
    (("unsupported url",), _UNSUPPORTED),
    # Age first: TikTok's age-gate message also says "Log in for access".
    (("not be comfortable for some audiences", "age-restricted", "age restricted", "confirm your age"), _AGE),
    (("do not have permission to view", "requiring login", "log in for access", "login required",
      "only available for registered users", "private video", "this video is private"), _AUTH),
    (("ip address is blocked",), _MAYBE_BLOCKED),
    (("unable to extract challenge data", "unable to solve js challenge", "universal data for rehydration",
      "unexpected response from webpage request", "anti-bot challenge", "captcha"), _BOT),
    (("http error 403",), _FORBIDDEN),
    (("http error 429",), _RATE),
    (("http error 404", "http error 410", "video not available"), _NOT_FOUND),
    (("requested format is not available", "no video formats found"), _NO_FORMAT),
    (("content too short", "bytes read,", "more expected", "bytes, expected", "did not get any data blocks"), _CUT_SHORT),
    (("timed out", "connection reset", "connection refused", "connection aborted", "remote end closed",
      "name or service not known", "temporary failure in name resolution", "network is unreachable",
      "certificate verify failed", "ssl:", "proxyerror", "proxy error", "unable to connect to proxy",
      "tunnel connection failed"), _NETWORK),
]


def _copy(failure: JobFailure) -> JobFailure:
    return JobFailure(failure.code, failure.message, failure.retryable)


def map_download_error(exc: BaseException) -> JobFailure:
    """Turn a yt-dlp exception (usually ``DownloadError``) into a contract ``JobFailure``.

    The cause's type decides first (HTTP status, transport, truncation, unsupported, geo), then
    yt-dlp's message; anything unrecognised is ``internal_error``. The message never includes
    yt-dlp's text (it may carry signed URLs); log that separately.
    """
    if isinstance(exc, JobFailure):
        return exc
    chain = _chain(exc)
    for err in chain:
        if isinstance(err, HTTPError):
            if err.status == 403:
                return _copy(_FORBIDDEN)
            if err.status in (404, 410):
                return _copy(_NOT_FOUND)
            if err.status == 429:
                return _copy(_RATE)
            if err.status == 401:
                return _copy(_AUTH)
            return JobFailure("download_network", f"The video host answered HTTP {err.status}; try again later.")
        if isinstance(err, (ContentTooShortError, IncompleteRead)):
            return _copy(_CUT_SHORT)
        if isinstance(err, TransportError):  # ProxyError, SSLError, CertificateVerifyError, timeouts
            return _copy(_NETWORK)
        if isinstance(err, UnsupportedError):
            return _copy(_UNSUPPORTED)
        if isinstance(err, GeoRestrictedError):
            return _copy(_GEO)
    text = " | ".join(str(e) for e in chain).lower()
    for needles, failure in _MESSAGES:
        if any(n in text for n in needles):
            return _copy(failure)
    return _copy(_INTERNAL)


