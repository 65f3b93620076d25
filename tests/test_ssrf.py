"""SSRF probes through the real HTTP surface: every hostile URL is refused on /transcribe and
/estimate, nothing is connected to, and no job is made.

The probe service runs with MEDIA_HOST_ALLOWLIST empty (127.0.0.1 is hostile here, unlike in the
other tests), a requests Session whose TikTok hosts go to a fake short-link service on loopback
(``LoopbackRouter``), and yt-dlp's proxy set to a loopback *trap*. Private and loopback addresses
that the router or yt-dlp might be led to are routed to the same trap, so a request that got
through would arrive there instead of leaving the machine, and the test would see it. The trap
records every TCP connection, whatever protocol is spoken (GET, CONNECT, anything).
"""
from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.services import Services
from core.tiktok import TIKTOK_HOSTS
from emulator.app import create_app
from tests.conftest import AUTH, CountingAsr, make_settings
from tests.fake_tiktok import FakeShortLinkServer, LoopbackRouter

PATHS = ("/transcribe", "/estimate", "/ttt/transcribe", "/ttt/estimate")
HOSTILE_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "169.254.169.254", "10.0.0.1", "172.16.0.1",
                 "192.168.0.1", "evil.example", "tiktok.com.evil.example")


class Trap:
    """A loopback TCP server that records the first line of every connection, then hangs up."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        trap = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.connection.settimeout(2)
                try:
                    line = self.rfile.readline(200).decode("latin-1").strip()
                except OSError:
                    line = ""
                trap.seen.append(line or "<connection>")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    yield t
    t.close()



@pytest.fixture
def router(tiktok: FakeShortLinkServer, trap: Trap) -> LoopbackRouter:
    return LoopbackRouter({**{h: tiktok.port for h in TIKTOK_HOSTS}, **{h: trap.port for h in HOSTILE_HOSTS}})


def probe_services(tmp_path: Path, whisper: Any, router: LoopbackRouter, trap: Trap, allow: str = "") -> Services:
    # Built here rather than with conftest's make_services, which passes its overrides to Settings
    # only and so cannot inject the router's Session.
    settings = make_settings(tmp_path / "data", media_host_allowlist=allow, ytdlp_proxy=f"http://127.0.0.1:{trap.port}")
    return Services(settings, asr=CountingAsr(whisper), http=router.session(), announce=lambda _: None)


@pytest.fixture
def probe(tmp_path: Path, whisper: Any, router: LoopbackRouter, trap: Trap) -> Iterator[tuple[Services, Any]]:
    services = probe_services(tmp_path, whisper, router, trap)
    yield services, create_app(services).test_client()
    services.close()


DIRECT = [
    "http://127.0.0.1/",
    "http://127.0.0.1:{trap}/clip.m4a",
    "https://127.0.0.1:{trap}/@a/video/1",
    "http://localhost:{trap}/clip.m4a",
    "http://[::1]/",
    "http://[::1]:{trap}/clip.m4a",
    "http://0.0.0.0:{trap}/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/",
    "http://127.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "file:///etc/passwd",
    "file://127.0.0.1/etc/passwd",
    "ftp://127.0.0.1:{trap}/clip.m4a",
    "ftp://www.tiktok.com/@a/video/1",
    "gopher://127.0.0.1:{trap}/_GET",
    "javascript:alert(1)",
    "data:text/plain,https://www.tiktok.com/@a/video/1",
    "https://tiktok.com.evil.example/@a/video/1",
    "https://www.tiktok.com.evil.example/@a/video/1",
    "https://evil.example/tiktok.com/",
    "https://evil.example/tiktok.com/@a/video/1",
    "https://evil.example/@a/video/1?next=https://www.tiktok.com/@a/video/1",
    "https://tiktok.com@evil.example/@a/video/1",
    "https://www.tiktok.com@127.0.0.1:{trap}/@a/video/1",
    "https://www.tiktok.com:{trap}/@a/video/1",
    "https://www.tiktok.com\\@evil.example/@a/video/1",
    "https://www.tiktok.com%2F@evil.example/@a/video/1",
    "https://www.tiktok.com%00.evil.example/@a/video/1",
    "https://www.tíktok.com/@a/video/1",
    "https://www.tiktok.com\t.evil.example/@a/video/1",
    "//127.0.0.1:{trap}/@a/video/1",
    "127.0.0.1:{trap}/@a/video/1",
    "http://vm.tiktok.com.127.0.0.1.nip.io/ZMabc/",
]


def refused(answer: Any, provided: str) -> None:
    assert answer.status_code in (400, 422), (answer.status_code, answer.get_json())
    body = answer.get_json()
    if answer.status_code == 400:
        assert body["error"] == "invalid_url"
        assert body["details"]["providedUrl"] == provided[:2048]
        assert body["details"]["expectedFormat"]
    else:
        assert body["error"] == "unsupported_content"


def nothing_happened(services: Services, trap: Trap, router: LoopbackRouter) -> None:
    assert trap.seen == []
    assert router.refused == []
    assert services.store.keys("job") == [] and services.store.keys("work") == []
    assert services.jobs.counts()["missCount"] == 0


@pytest.mark.parametrize("template", DIRECT)
def test_direct_probe_is_refused_everywhere(template: str, probe: tuple[Services, Any], trap: Trap,
                                            tiktok: FakeShortLinkServer, router: LoopbackRouter) -> None:
    services, client = probe
    url = template.format(trap=trap.port)
    for path in PATHS:
        refused(client.post(path, json={"url": url, "requestId": "ssrf-1"}, headers=AUTH), url)
    nothing_happened(services, trap, router)
    assert tiktok.seen == [] and router.sent == []


# (short link, [(path on the fake, status, Location)]) — every chain ends somewhere hostile.
REDIRECTS = [
    ("https://vm.tiktok.com/ZMa/", [("/ZMa/", 301, "http://10.0.0.1/@a/video/1")]),
    ("https://vm.tiktok.com/ZMb/", [("/ZMb/", 302, "http://127.0.0.1:{trap}/@a/video/1")]),
    ("https://vm.tiktok.com/ZMc/", [("/ZMc/", 301, "http://169.254.169.254/latest/meta-data/")]),
    ("https://vm.tiktok.com/ZMd/", [("/ZMd/", 307, "http://[::1]:{trap}/")]),
    ("https://vm.tiktok.com/ZMe/", [("/ZMe/", 301, "https://tiktok.com@127.0.0.1:{trap}/@a/video/1")]),
    ("https://vm.tiktok.com/ZMf/", [("/ZMf/", 301, "//localhost:{trap}/@a/video/1")]),
    ("https://vm.tiktok.com/ZMg/", [("/ZMg/", 301, "https://vm.tiktok.com:{trap}/ZMnext/")]),
    ("https://vm.tiktok.com/ZMh/", [("/ZMh/", 301, "file:///etc/passwd")]),
    ("https://vm.tiktok.com/ZMi/", [("/ZMi/", 308, "https://tiktok.com.evil.example/@a/video/1")]),
    ("https://vt.tiktok.com/ZSj/", [("/ZSj/", 302, "https://www.tiktok.com/t/ZTj/"),
                                    ("/t/ZTj/", 301, "http://192.168.0.1/@a/video/1")]),
    ("https://www.tiktok.com/t/ZTk/", [("/t/ZTk/", 301, "https://vm.tiktok.com/ZMk2/"),
                                       ("/ZMk2/", 302, "http://172.16.0.1/")]),
    ("https://vm.tiktok.com/ZMl/", [("/ZMl/", 301, "http://0x7f000001:{trap}/@a/video/1")]),
]


@pytest.mark.parametrize(("short", "hops"), REDIRECTS, ids=[r[0].rsplit("/", 2)[-2] for r in REDIRECTS])
def test_short_link_redirect_to_a_hostile_target_is_refused(short: str, hops: list[tuple[str, int, str]],
                                                             probe: tuple[Services, Any], trap: Trap,
                                                             tiktok: FakeShortLinkServer, router: LoopbackRouter) -> None:
    services, client = probe
    for path, status, location in hops:
        tiktok.route(path, status, location.format(trap=trap.port))
    for n, path in enumerate(PATHS, start=1):
        answer = client.post(path, json={"url": short}, headers=AUTH)
        refused(answer, short)
        assert answer.get_json()["details"]["reason"] == "redirect_not_allowed"
        # Only the fake TikTok was asked, one request per hop, and never the hostile target.
        assert [s.path for s in tiktok.seen] == [h[0] for h in hops] * n
    nothing_happened(services, trap, router)


def test_the_trap_would_see_a_redirect_that_got_through(tmp_path: Path, whisper: Any, router: LoopbackRouter,
                                                        trap: Trap, tiktok: FakeShortLinkServer) -> None:
    # Controls for the tests above: with 127.0.0.1 allowed, the same set-up does reach the trap.
    services = probe_services(tmp_path, whisper, router, trap, allow="127.0.0.1")
    try:
        client = create_app(services).test_client()
        tiktok.route("/ZMcontrol/", 301, f"http://127.0.0.1:{trap.port}/page")
        answer = client.post("/estimate", json={"url": "https://vm.tiktok.com/ZMcontrol/"}, headers=AUTH)
        assert answer.status_code == 503  # the trap hangs up: the hop failed, but it was made
        assert trap.seen == ["GET /page HTTP/1.1"]
        # And a direct media URL is fetched by yt-dlp through its proxy, which is the trap too.
        answer = client.post("/estimate", json={"url": f"http://127.0.0.1:{trap.port}/clip.m4a"}, headers=AUTH)
        assert answer.status_code == 200 and answer.get_json()["durationSource"] == "default"
        assert len(trap.seen) > 1
    finally:
        services.close()


PRIVATE_LITERALS = ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254")


@pytest.mark.parametrize("template", [t for t in DIRECT if not any(ip in t for ip in PRIVATE_LITERALS)])
def test_stock_test_service_refuses_all_but_its_one_test_host(template: str, client: Any, services: Services,
                                                               trap: Trap) -> None:
    # The stock test service allows 127.0.0.1 (exactly that host) for the media server; every other
    # probe is as hostile there. It fetches for real, so private-range literals are probed only
    # on the trapped service above: were one accepted, nothing may leave the machine.
    url = template.format(trap=trap.port)
    for path in ("/transcribe", "/estimate"):
        refused(client.post(path, json={"url": url}, headers=AUTH), url)
    assert trap.seen == [] and services.store.keys("job") == []
