"""core/tiktok.py: URL rules of contract.md and the SSRF rule of design.md, on loopback only."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from core.errors import InvalidUrl, ServiceUnavailable, UnsupportedContent
from core.tiktok import EXPECTED_FORMAT, TIKTOK_HOSTS, LinkResolver, VideoRef, is_tiktok_host, parse_url
from tests.fake_tiktok import FakeShortLinkServer, LoopbackRouter

pytestmark = pytest.mark.timeout(30)

VIDEO_ID = "7234567890123456789"
CANONICAL = f"https://www.tiktok.com/@some.user_1/video/{VIDEO_ID}"
VIDEO_LOCATION = f"https://www.tiktok.com/@some.user_1/video/{VIDEO_ID}?_t=ZM-8abc&_r=1"


# --- parse_url: accepted forms -------------------------------------------------------------------

VIDEO_FORMS = [
    CANONICAL,
    f"https://tiktok.com/@some.user_1/video/{VIDEO_ID}",
    f"https://m.tiktok.com/@some.user_1/video/{VIDEO_ID}",
    f"https://www.tiktok.com/@some.user_1/video/{VIDEO_ID}/",
    f"https://www.tiktok.com/@some.user_1/video/{VIDEO_ID}?is_from_webapp=1&sender_device=pc",
    f"https://www.tiktok.com/@some.user_1/video/{VIDEO_ID}#comments",
    f"https://www.tiktok.com/@some.user_1/video/{VIDEO_ID}/?lang=en#x",
    f"https://WWW.TikTok.COM/@some.user_1/video/{VIDEO_ID}",
    f"HTTPS://www.tiktok.com/@some.user_1/video/{VIDEO_ID}",
    f"http://www.tiktok.com/@some.user_1/video/{VIDEO_ID}",
    f"https://www.tiktok.com:443/@some.user_1/video/{VIDEO_ID}",
    f"http://www.tiktok.com:80/@some.user_1/video/{VIDEO_ID}",
    f"  \t{CANONICAL}\n ",
]

SHORT_FORMS = [
    "https://vm.tiktok.com/ZMabc123/",
    "https://vm.tiktok.com/ZMabc123",
    "https://vt.tiktok.com/ZSxyz-_9/?k=1",
    "https://VT.TIKTOK.COM/ZSxyz/#frag",
    "https://www.tiktok.com/t/ZTabc/",
    "https://tiktok.com/t/ZTabc",
    "http://vm.tiktok.com/ZMabc123/",
]


@pytest.mark.parametrize("url", VIDEO_FORMS)
def test_video_forms_give_the_same_id_and_canonical_url(url: str) -> None:
    ref = parse_url(url)
    assert ref == VideoRef(url.strip(), "video", VIDEO_ID, CANONICAL, "@some.user_1")


@pytest.mark.parametrize("url", SHORT_FORMS)
def test_short_forms_are_short_and_unresolved(url: str) -> None:
    assert parse_url(url) == VideoRef(url, "short", None, None, None)


def test_author_keeps_the_case_of_the_link() -> None:
    ref = parse_url("https://www.tiktok.com/@Mixed.Case/video/42")
    assert ref.author == "@Mixed.Case"
    assert (ref.canonical_url, ref.video_id) == ("https://www.tiktok.com/@Mixed.Case/video/42", "42")


# --- parse_url: refused --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://www.tiktok.com/@some.user/photo/7234567890123456789",
        "https://tiktok.com/@some.user/photo/7234567890123456789/?lang=en#top",
        "http://m.tiktok.com/@some.user/photo/1",
    ],
)
def test_photo_post_is_unsupported_content(url: str) -> None:
    with pytest.raises(UnsupportedContent) as caught:
        parse_url(url)
    assert caught.value.details == {"providedUrl": url, "reason": "photo_post"}
    assert "photo" in caught.value.message.lower() and "audio" in caught.value.message.lower()
    assert caught.value.status == 422


HOSTILE_OR_INVALID = [
    "",
    "   ",
    "http://127.0.0.1/x",
    "http://[::1]/",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://2130706433/",
    "https://tiktok.com.evil.example/@a/video/1",
    "https://vm.tiktok.com.evil.example/ZMabc/",
    "https://eviltiktok.com/@a/video/1",
    "https://www.tiktok.com./@a/video/1",
    "https://evil.example/tiktok.com/@a/video/1",
    "https://evil.example/@a/video/1",
    "https://tiktok.com@evil.example/@a/video/1",
    "https://user:pw@www.tiktok.com/@a/video/1",
    "https://www.tiktok.com:8443/@a/video/1",
    "http://www.tiktok.com:443/@a/video/1",
    "https://www.tiktok.com:/@a/video/1",
    "file:///etc/passwd",
    "ftp://tiktok.com/x",
    "javascript:alert(1)",
    "data:text/html,<b>x</b>",
    "www.tiktok.com/@a/video/1",
    "//www.tiktok.com/@a/video/1",
    "https:/www.tiktok.com/@a/video/1",
    "https://www.tiktok.com\\@evil.example/@a/video/1",
    "https://www.tiktok.com/@a\\video/1",
    "https://www.tik%74ok.com/@a/video/1",
    "https://www.tiktok.com%2eevil.example/@a/video/1",
    "https://www.tiktok.com%40evil.example/@a/video/1",
    "https://www.tіktok.com/@a/video/1",  # Cyrillic i
    "https://www.tiktok.com/@a/vi deo/1",
    "https://www.tiktok.com/@a/\tvideo/1",
    "https://www.tiktok.com/@a/video/1\x00",
    "https://www.tiktok.com/@a/video/1\r\nX: y",
    "https://www.tiktok.com/",
    "https://www.tiktok.com/@a",
    "https://www.tiktok.com/@a/video/",
    "https://www.tiktok.com/@a/video/abc",
    "https://www.tiktok.com/@a/video/%31",
    "https://www.tiktok.com/%40a/video/1",
    "https://www.tiktok.com/@a/video/1/extra",
    "https://www.tiktok.com/@a/live",
    "https://vm.tiktok.com/",
    "https://vm.tiktok.com/a/b",
    "https://vm.tiktok.com/t/ZTabc/",
    "https://www.tiktok.com/ZMabc/",
    "https://www.youtube.com/watch?v=abc",
    "https://www.tiktok.com/@a/video/1?" + "x" * 2100,
]


@pytest.mark.parametrize("url", HOSTILE_OR_INVALID)
def test_hostile_or_invalid_string_is_invalid_url(url: str) -> None:
    with pytest.raises(InvalidUrl) as caught:
        parse_url(url)
    assert caught.value.details == {"providedUrl": url[:2048], "expectedFormat": EXPECTED_FORMAT}
    assert caught.value.status == 400


@pytest.mark.parametrize("value", [None, 123, {"a": 1}, ["https://vm.tiktok.com/ZMa/"], b"https://vm.tiktok.com/ZMa/"])
def test_non_string_is_invalid_url(value: object) -> None:
    with pytest.raises(InvalidUrl) as caught:
        parse_url(value)
    assert caught.value.details == {"providedUrl": repr(value), "expectedFormat": EXPECTED_FORMAT}


def test_overlong_string_is_invalid_and_echoed_truncated() -> None:
    url = "https://www.tiktok.com/@a/video/" + "1" * 5000
    with pytest.raises(InvalidUrl) as caught:
        parse_url(url)
    assert caught.value.details["providedUrl"] == url[:2048]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("tiktok.com", True),
        ("www.tiktok.com", True),
        ("M.TikTok.com", True),
        ("vm.tiktok.com", True),
        ("vt.tiktok.com", True),
        ("evil.tiktok.com", False),
        ("tiktok.com.evil.example", False),
        ("eviltiktok.com", False),
        ("tiktok.com.", False),
        ("127.0.0.1", False),
        ("", False),
    ],
)
def test_is_tiktok_host(host: str, expected: bool) -> None:
    assert is_tiktok_host(host) is expected


# --- parse_url: the test-only media allowance ----------------------------------------------------


def test_media_host_refused_by_default_and_accepted_when_allowed() -> None:
    url = "http://127.0.0.1:8000/clip.m4a"
    with pytest.raises(InvalidUrl):
        parse_url(url)
    ref = parse_url(f" {url}#t=3 ", media_hosts=["127.0.0.1"])
    assert ref.kind == "media" and ref.url == f"{url}#t=3" and ref.author is None
    assert ref.canonical_url == url
    assert ref.video_id == "media-" + hashlib.sha256(url.encode()).hexdigest()[:20]
    other = parse_url("HTTP://LOCALHOST:9/page?x=1", media_hosts=["LocalHost"])
    assert other.canonical_url == "http://localhost:9/page?x=1"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8000/clip.m4a",
        "ftp://127.0.0.1/clip.m4a",
        "file://127.0.0.1/etc/passwd",
        "http://user@127.0.0.1:8000/clip.m4a",
        "http://127.0.0.1.evil.example/clip.m4a",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_media_allowance_is_exact(url: str) -> None:
    with pytest.raises(InvalidUrl):
        parse_url(url, media_hosts=["127.0.0.1"])


# --- LinkResolver against a loopback fake of the short-link service ------------------------------



@pytest.fixture
def private_target() -> Iterator[FakeShortLinkServer]:
    with FakeShortLinkServer() as server:
        yield server


@pytest.fixture
def router(tiktok: FakeShortLinkServer, private_target: FakeShortLinkServer) -> LoopbackRouter:
    # The private target is routable on purpose: were the resolver to follow a forbidden
    # redirect to it, the request would arrive and the test would see it.
    return LoopbackRouter({**{host: tiktok.port for host in TIKTOK_HOSTS}, "127.0.0.1": private_target.port})


@pytest.fixture
def resolver(router: LoopbackRouter) -> LinkResolver:
    return LinkResolver(session=router.session(), max_hops=3, timeout=5)


def test_vm_link_resolves_in_one_hop(tiktok: FakeShortLinkServer, resolver: LinkResolver) -> None:
    tiktok.route("/ZMabc123/", 301, VIDEO_LOCATION)
    ref = resolver.resolve(parse_url(" https://vm.tiktok.com/ZMabc123/ "))
    assert ref == VideoRef("https://vm.tiktok.com/ZMabc123/", "video", VIDEO_ID, CANONICAL, "@some.user_1")
    assert [(s.path, s.host) for s in tiktok.seen] == [("/ZMabc123/", "vm.tiktok.com")]
    assert "Mozilla/5.0" in tiktok.seen[0].user_agent


def test_vt_link_resolves_in_two_hops_with_relative_location(
    tiktok: FakeShortLinkServer, router: LoopbackRouter, resolver: LinkResolver
) -> None:
    tiktok.route("/ZSxyz/", 302, "https://www.tiktok.com/t/ZTabc/")
    tiktok.route("/t/ZTabc/", 301, f"/@some.user_1/video/{VIDEO_ID}?_r=1")
    ref = resolver.resolve(parse_url("http://vt.tiktok.com/ZSxyz/"))
    assert (ref.kind, ref.video_id, ref.canonical_url) == ("video", VIDEO_ID, CANONICAL)
    assert ref.url == "http://vt.tiktok.com/ZSxyz/"
    assert [(s.path, s.host) for s in tiktok.seen] == [("/ZSxyz/", "vt.tiktok.com"), ("/t/ZTabc/", "www.tiktok.com")]
    # http:// TikTok links are fetched over https.
    assert router.sent == ["https://vt.tiktok.com/ZSxyz/", "https://www.tiktok.com/t/ZTabc/"]


def test_t_link_resolves(tiktok: FakeShortLinkServer, resolver: LinkResolver) -> None:
    tiktok.route("/t/ZT9/", 301, VIDEO_LOCATION)
    assert resolver.resolve(parse_url("https://www.tiktok.com/t/ZT9/")).video_id == VIDEO_ID


def test_non_short_ref_is_returned_unchanged(tiktok: FakeShortLinkServer, resolver: LinkResolver) -> None:
    ref = parse_url(CANONICAL)
    assert resolver.resolve(ref) is ref
    assert tiktok.seen == []


FORBIDDEN_LOCATIONS = [
    "http://127.0.0.1:{private}/",
    "http://127.0.0.1:{private}/@a/video/1",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/",
    "https://evil.example/@a/video/1",
    "https://tiktok.com.evil.example/@a/video/1",
    "//evil.example/@a/video/1",
    "https://tiktok.com@127.0.0.1:{private}/@a/video/1",
    "https://vm.tiktok.com:{private}/ZMnext/",
    "file:///etc/passwd",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("location", FORBIDDEN_LOCATIONS)
def test_redirect_outside_tiktok_is_refused_without_connecting(
    location: str,
    tiktok: FakeShortLinkServer,
    private_target: FakeShortLinkServer,
    router: LoopbackRouter,
    resolver: LinkResolver,
) -> None:
    tiktok.route("/ZMevil/", 301, location.format(private=private_target.port))
    with pytest.raises(InvalidUrl) as caught:
        resolver.resolve(parse_url("https://vm.tiktok.com/ZMevil/"))
    assert caught.value.details["reason"] == "redirect_not_allowed"
    assert caught.value.details["providedUrl"] == "https://vm.tiktok.com/ZMevil/"
    assert private_target.seen == []
    assert router.refused == []
    assert len(tiktok.seen) == 1


def test_media_allowance_lets_the_resolver_reach_the_loopback_target(
    tiktok: FakeShortLinkServer, private_target: FakeShortLinkServer, router: LoopbackRouter
) -> None:
    # Proves the refusal test above could fail: with the allowance, the same redirect does arrive.
    tiktok.route("/ZMevil/", 301, f"http://127.0.0.1:{private_target.port}/page")
    resolver = LinkResolver(session=router.session(), media_hosts=["127.0.0.1"], max_hops=3, timeout=5)
    with pytest.raises(InvalidUrl) as caught:
        resolver.resolve(parse_url("https://vm.tiktok.com/ZMevil/"))
    assert caught.value.details["reason"] == "short_link_not_found"
    assert [s.path for s in private_target.seen] == ["/page"]


def test_redirect_loop_stops_after_max_hops(tiktok: FakeShortLinkServer, resolver: LinkResolver) -> None:
    tiktok.route("/ZMa/", 302, "https://vm.tiktok.com/ZMb/")
    tiktok.route("/ZMb/", 302, "/ZMa/")
    with pytest.raises(InvalidUrl) as caught:
        resolver.resolve(parse_url("https://vm.tiktok.com/ZMa/"))
    assert caught.value.details["reason"] == "too_many_redirects"
    assert len(tiktok.seen) == 3


@pytest.mark.parametrize(
    ("status", "location", "reason"),
    [
        (404, None, "short_link_not_found"),
        (410, None, "short_link_not_found"),
        (200, None, "not_a_video"),
        (301, None, "not_a_video"),
        (301, "https://www.tiktok.com/", "not_a_video"),
        (302, "https://www.tiktok.com/login?redirect_url=x", "not_a_video"),
    ],
)
def test_dead_end_is_invalid_url(
    status: int, location: str | None, reason: str, tiktok: FakeShortLinkServer, resolver: LinkResolver
) -> None:
    tiktok.route("/ZMdead/", status, location)
    with pytest.raises(InvalidUrl) as caught:
        resolver.resolve(parse_url("https://vm.tiktok.com/ZMdead/"))
    assert caught.value.details == {
        "providedUrl": "https://vm.tiktok.com/ZMdead/",
        "reason": reason,
        "expectedFormat": EXPECTED_FORMAT,
    }
    assert len(tiktok.seen) == 1


def test_unknown_short_code_gets_404_from_the_fake(tiktok: FakeShortLinkServer, resolver: LinkResolver) -> None:
    with pytest.raises(InvalidUrl) as caught:
        resolver.resolve(parse_url("https://vm.tiktok.com/ZMnope/"))
    assert caught.value.details["reason"] == "short_link_not_found"


def test_redirect_to_photo_post_is_unsupported_content(tiktok: FakeShortLinkServer, resolver: LinkResolver) -> None:
    tiktok.route("/ZMphoto/", 301, "https://www.tiktok.com/@a/photo/7234567890123456789?_r=1")
    with pytest.raises(UnsupportedContent) as caught:
        resolver.resolve(parse_url("https://vm.tiktok.com/ZMphoto/"))
    assert caught.value.details == {"providedUrl": "https://vm.tiktok.com/ZMphoto/", "reason": "photo_post"}


@pytest.mark.parametrize("status", [429, 500, 503])
def test_busy_short_link_service_is_service_unavailable(
    status: int, tiktok: FakeShortLinkServer, resolver: LinkResolver
) -> None:
    tiktok.route("/ZMbusy/", status)
    with pytest.raises(ServiceUnavailable) as caught:
        resolver.resolve(parse_url("https://vm.tiktok.com/ZMbusy/"))
    assert caught.value.details == {"providedUrl": "https://vm.tiktok.com/ZMbusy/", "reason": "resolver_unreachable"}


def test_network_error_is_service_unavailable() -> None:
    router = LoopbackRouter({})  # every connection fails
    resolver = LinkResolver(session=router.session(), timeout=1)
    with pytest.raises(ServiceUnavailable) as caught:
        resolver.resolve(parse_url("https://vm.tiktok.com/ZMabc/"))
    assert caught.value.details == {"providedUrl": "https://vm.tiktok.com/ZMabc/", "reason": "resolver_unreachable"}
    assert caught.value.status == 503
    assert router.refused == ["https://vm.tiktok.com/ZMabc/"]
