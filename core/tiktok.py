"""TikTok links: what a submitted URL is (``parse_url``) and where a short link leads (``LinkResolver``).

Contracts (contract.md "URL rules", design.md "SSRF"):

- ``parse_url`` never touches the network. It accepts TikTok video links and short links only,
  plus, test-only, any http(s) URL whose host is named in ``media_hosts`` (MEDIA_HOST_ALLOWLIST).
  Photo posts raise ``UnsupportedContent``; everything else raises ``InvalidUrl``.
- ``LinkResolver`` follows short-link redirects itself, one request per hop, and checks every
  target (scheme, host, port) *before* connecting to it: nothing but TikTok hosts (or
  ``media_hosts``) is ever requested. TikTok hosts are always requested over https.

Parsing is deliberately stricter than ``urllib.parse``: the whole string must be printable ASCII
without backslashes, and it is split by our own anchored pattern whose host part admits only
``[A-Za-z0-9.-]``. So userinfo (``tiktok.com@evil``), IPv6 literals, percent-encoded or non-ASCII
hosts and parser-differential tricks are refused outright, and the host is then compared with an
exact allow-list (which also refuses IP literals and look-alikes such as ``tiktok.com.evil.example``).
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urljoin

import requests

from core.errors import InvalidUrl, ServiceUnavailable, UnsupportedContent

logger = logging.getLogger("tttranscribe.tiktok")

MAX_URL_LENGTH = 2048
EXPECTED_FORMAT = "https://www.tiktok.com/@user/video/1234567890 or https://vm.tiktok.com/CODE"
TIKTOK_HOSTS = frozenset({"tiktok.com", "www.tiktok.com", "m.tiktok.com", "vm.tiktok.com", "vt.tiktok.com"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# Short-link hosts answer 301 to plain clients; a browser User-Agent keeps answers like a browser's.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)

_PAGE_HOSTS = frozenset({"tiktok.com", "www.tiktok.com", "m.tiktok.com"})
_SHORT_HOSTS = frozenset({"vm.tiktok.com", "vt.tiktok.com"})
_T_HOSTS = frozenset({"tiktok.com", "www.tiktok.com"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

# Printable ASCII except backslash (0x5c): no whitespace, control or non-ASCII characters anywhere.
_CLEAN = re.compile(r"[\x21-\x5b\x5d-\x7e]+")
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/[^?#]*)?(?:\?(?P<query>[^#]*))?(?:#.*)?"
)
_POST_PATH = re.compile(r"/@(?P<user>[A-Za-z0-9_.-]{1,64})/(?P<what>video|photo)/(?P<id>[0-9]{1,32})/?")
_SHORT_PATH = re.compile(r"/[A-Za-z0-9_-]{1,64}/?")
_T_PATH = re.compile(r"/t/[A-Za-z0-9_-]{1,64}/?")


@dataclass(frozen=True)
class VideoRef:
    """A submitted link, classified. ``video_id`` is the cache / single-flight key."""

    url: str
    """Exactly as submitted, surrounding whitespace stripped."""
    kind: Literal["video", "short", "media"]
    video_id: str | None
    """TikTok's numeric id; None for an unresolved short link; ``media-<sha256(canonical)[:20]>`` for media."""
    canonical_url: str | None
    """``https://www.tiktok.com/@<user>/video/<id>``; for media the normalised URL; None for a short link."""
    author: str | None
    """``@user`` when the link names it."""


@dataclass(frozen=True)
class _Parts:
    scheme: str
    host: str
    port: int | None
    path: str
    query: str | None

    def url(self, scheme: str | None = None) -> str:
        """The URL without fragment, scheme and host lowercased, empty path as ``/``."""
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query is not None else ""
        return f"{scheme or self.scheme}://{self.host}{port}{self.path or '/'}{query}"


def is_tiktok_host(host: str) -> bool:
    """True for tiktok.com and its www, m, vm and vt subdomains (case-insensitive, no port)."""
    return host.lower() in TIKTOK_HOSTS


def parse_url(url: object, media_hosts: Sequence[str] = ()) -> VideoRef:
    """Classify a submitted link without any network access.

    Raises ``InvalidUrl`` (details ``providedUrl``, ``expectedFormat``) for anything that is not a
    TikTok video or short link, and ``UnsupportedContent`` (reason ``photo_post``) for photo posts.
    """
    if not isinstance(url, str):
        raise _invalid(repr(url))
    text = url.strip()
    if not text or len(text) > MAX_URL_LENGTH:
        raise _invalid(url)
    return _classify(text, media_hosts, provided=url)


class LinkResolver:
    """Turns a short link into the video it redirects to, without ever leaving TikTok.

    At most ``max_hops`` GET requests per ``resolve`` (redirects off, body not read, each bounded
    by ``timeout``). Each ``Location`` is joined against the current URL and checked before it is
    requested. The answer keeps ``url`` = the submitted link. Failures:
    ``InvalidUrl`` with ``details.reason`` ``redirect_not_allowed`` / ``not_a_video`` /
    ``short_link_not_found`` (a 4xx) / ``too_many_redirects``; ``UnsupportedContent``
    (``photo_post``); ``ServiceUnavailable`` (``resolver_unreachable``: network error, 429 or 5xx).
    """

    def __init__(
        self,
        session: requests.Session | None = None,
        media_hosts: Sequence[str] = (),
        max_hops: int = 5,
        timeout: float = 5.0,
    ) -> None:
        self._session = session if session is not None else requests.Session()
        self._media_hosts = tuple(media_hosts)
        self._max_hops = max_hops
        self._timeout = timeout

    def resolve(self, ref: VideoRef) -> VideoRef:
        """Return ``ref`` unchanged unless it is a short link; then the video it leads to."""
        if ref.kind != "short":
            return ref
        target = _split(ref.url)
        if target is None:
            raise _invalid(ref.url)
        logger.info("[download] resolving short link %r", _loggable(ref.url))
        for _ in range(self._max_hops):
            current = target.url("https" if target.host in TIKTOK_HOSTS else None)
            status, location = self._get(current, ref.url)
            if status not in _REDIRECTS or not location:
                raise _dead_end(status, ref.url)
            following = urljoin(current, location)
            target, hop = self._check_hop(following, ref.url)
            if hop.kind == "video":
                logger.info("[download] short link %r is video %s", _loggable(ref.url), hop.video_id)
                return replace(hop, url=ref.url)
        raise InvalidUrl("The short link redirects too many times.", details=_why(ref.url, "too_many_redirects", True))

    def _get(self, url: str, provided: str) -> tuple[int, str | None]:
        try:
            with self._session.get(
                url, allow_redirects=False, timeout=self._timeout, stream=True, headers={"User-Agent": USER_AGENT}
            ) as response:
                return response.status_code, response.headers.get("Location")
        except requests.RequestException as exc:
            logger.warning("[download] short link host unreachable for %r: %s", _loggable(url), exc)
            raise ServiceUnavailable(
                "Could not resolve the short link right now.", details=_why(provided, "resolver_unreachable")
            ) from exc

    def _check_hop(self, url: str, provided: str) -> tuple[_Parts, VideoRef]:
        parts = _split(url)
        if parts is None or _host_kind(parts, self._media_hosts) is None:
            logger.warning("[download] refused redirect of %r to %r", _loggable(provided), _loggable(url))
            raise InvalidUrl(
                "The short link redirects outside TikTok.", details=_why(provided, "redirect_not_allowed", True)
            )
        try:
            return parts, _classify(url, self._media_hosts, provided)
        except InvalidUrl:
            # An allowed host but no video or short-link form (TikTok sends unknown codes to its home page).
            raise _not_a_video(provided) from None


def _classify(text: str, media_hosts: Sequence[str], provided: str) -> VideoRef:
    parts = _split(text)
    kind = _host_kind(parts, media_hosts) if parts is not None else None
    if parts is None or kind is None:
        raise _invalid(provided)
    if kind == "media":
        canonical = parts.url()
        media_id = "media-" + hashlib.sha256(canonical.encode()).hexdigest()[:20]
        return VideoRef(text, "media", media_id, canonical, None)
    post = _POST_PATH.fullmatch(parts.path) if parts.host in _PAGE_HOSTS else None
    if post is not None:
        if post["what"] == "photo":
            raise UnsupportedContent(
                "Photo posts have no audio to transcribe; submit a TikTok video link.",
                details={"providedUrl": provided[:MAX_URL_LENGTH], "reason": "photo_post"},
            )
        user, video_id = post["user"], post["id"]
        return VideoRef(text, "video", video_id, f"https://www.tiktok.com/@{user}/video/{video_id}", f"@{user}")
    if (parts.host in _SHORT_HOSTS and _SHORT_PATH.fullmatch(parts.path)) or (
        parts.host in _T_HOSTS and _T_PATH.fullmatch(parts.path)
    ):
        return VideoRef(text, "short", None, None, None)
    raise _invalid(provided)


def _split(text: str) -> _Parts | None:
    if not _CLEAN.fullmatch(text):
        return None
    match = _URL.fullmatch(text)
    if match is None:
        return None
    port = int(match["port"]) if match["port"] else None
    return _Parts(match["scheme"].lower(), match["host"].lower(), port, match["path"] or "", match["query"])


def _host_kind(parts: _Parts, media_hosts: Sequence[str]) -> Literal["tiktok", "media"] | None:
    if parts.scheme not in DEFAULT_PORTS:
        return None
    if parts.host in TIKTOK_HOSTS:
        return "tiktok" if parts.port in (None, DEFAULT_PORTS[parts.scheme]) else None
    if parts.host in {host.strip().lower() for host in media_hosts}:
        return "media"
    return None


def _why(provided: str, reason: str, with_format: bool = False) -> dict[str, Any]:
    details: dict[str, Any] = {"providedUrl": provided[:MAX_URL_LENGTH], "reason": reason}
    if with_format:  # contract.md: every invalid_url answer names the expected format
        details["expectedFormat"] = EXPECTED_FORMAT
    return details


def _invalid(provided: str) -> InvalidUrl:
    return InvalidUrl(details={"providedUrl": provided[:MAX_URL_LENGTH], "expectedFormat": EXPECTED_FORMAT})


def _not_a_video(provided: str) -> InvalidUrl:
    return InvalidUrl("The short link does not lead to a TikTok video.", details=_why(provided, "not_a_video", True))


def _dead_end(status: int, provided: str) -> Exception:
    """The error for a hop that answered without a usable redirect."""
    if status == 429 or status >= 500:
        # TikTok being busy says nothing about the link: let the caller try again later.
        return ServiceUnavailable(
            "Could not resolve the short link right now.", details=_why(provided, "resolver_unreachable")
        )
    if status >= 400:
        details = _why(provided, "short_link_not_found", True)
        return InvalidUrl("The short link was not found on TikTok.", details=details)
    return _not_a_video(provided)


def _loggable(url: str) -> str:
    # Share links carry tracking parameters in the query; they help no one reading the log.
    return url.split("?", 1)[0][:200]
