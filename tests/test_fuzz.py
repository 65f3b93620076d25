"""schemathesis fuzzes the running service from its own /openapi.json: no 5xx, and every answer
(status code, content type, headers, body) conforms to the document.

The service is the emulator's app under waitress on 127.0.0.1, with a real Services in tmp_path.
Nothing fuzzed can leave the machine: MEDIA_HOST_ALLOWLIST is empty (only TikTok hosts are
accepted), short links are resolved through a ``LoopbackRouter`` that sends TikTok's hosts to a
fake short-link service on loopback and refuses every other host, and yt-dlp's proxy is a
loopback port that hangs up (so a fuzzed TikTok video link fails its probe or download at once
instead of going online).

Bounded: ``MAX_EXAMPLES`` generated cases per operation and generation mode (positive and
negative), plus the document's explicit examples; no deadline; each call times out after 10 s.
"""
from __future__ import annotations

import socket
from collections import Counter
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from waitress.server import create_server

from core.openapi import document
from core.services import Services
from core.tiktok import TIKTOK_HOSTS
from tests.conftest import AUTH, CountingAsr, make_settings
from tests.fake_tiktok import FakeShortLinkServer, LoopbackRouter
from tests.test_openapi import mounted_app

# schemathesis' own strategies trip this Hypothesis warning; nothing in this file uses `random`.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


class HangUp:
    """A loopback port that accepts and closes every connection (yt-dlp's proxy here)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def tiktok() -> Iterator[FakeShortLinkServer]:
    """TikTok's short-link service on loopback: the document's example link leads to a video."""
    with FakeShortLinkServer() as server:
        server.route("/ZMabc123/", 301, "https://www.tiktok.com/@scout2015/video/6718335390845095173?_r=1")
        yield server


@pytest.fixture
def live(tmp_path: Path, whisper: Any, tiktok: FakeShortLinkServer) -> Iterator[tuple[str, Services, LoopbackRouter]]:
    """The emulator under waitress on 127.0.0.1; yields (base URL, services, router)."""
    holder: list[Any] = []
    server = create_server(lambda environ, start: holder[0](environ, start), host="127.0.0.1", port=0, threads=4)
    base = f"http://127.0.0.1:{server.effective_port}"
    proxy, router = HangUp(), LoopbackRouter({host: tiktok.port for host in TIKTOK_HOSTS})
    # process_jobs=False: the fuzzer checks answers, not transcripts. Running yt-dlp beside it
    # tripped CPython 3.11.7's thread-unsafe AST recursion counter (gh-106905): yt-dlp formats
    # tracebacks (traceback calls ast.parse for its carets) while hypothesis parses code.
    settings_ = make_settings(tmp_path / "data", media_host_allowlist="", base_url=base, ytdlp_proxy=proxy.url,
                              process_jobs=False,
                              rate_limit_capacity=1_000_000)
    services = Services(settings_, asr=CountingAsr(whisper), http=router.session(), announce=lambda _: None)
    holder.append(mounted_app(services))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield base, services, router
    finally:
        server.task_dispatcher.shutdown()
        server.close()
        thread.join(timeout=5)
        services.close()
        proxy.close()


def run_cases(strategy: Any, max_examples: int, codes: Counter[int]) -> int:
    """Call the service with up to ``max_examples`` cases and check each answer; returns the count."""
    calls = [0]

    @given(case=strategy)
    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    def run(case: schemathesis.Case) -> None:
        calls[0] += 1
        response = case.call(headers=AUTH, timeout=10)
        codes[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=AUTH)

    run()
    return calls[0]


def fuzz(operations: list[schemathesis.APIOperation]) -> tuple[dict[str, int], dict[str, str], Counter[int]]:
    """Per operation: the document's examples once each, then positive and negative generated cases.

    Returns (requests per operation and stage, failures per operation and stage, status codes seen).
    A stage with nothing to generate (no parameters, body or credentials to make invalid) is left out.
    """
    ran: dict[str, int] = {}
    failures: dict[str, str] = {}
    codes: Counter[int] = Counter()
    for operation in operations:
        stages = [("examples", s, 1) for s in operation.get_strategies_from_examples()]
        stages += [(mode.value, operation.as_strategy(generation_mode=mode), MAX_EXAMPLES)
                   for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)]
        for stage, strategy, count in stages:
            label = f"{operation.label} [{stage}]"
            try:
                ran[label] = ran.get(label, 0) + run_cases(strategy, count, codes)
            except Unsatisfiable:
                continue
            # schemathesis reports failures as a BaseExceptionGroup, which is no Exception.
            except (Exception, BaseExceptionGroup) as exc:  # collect every failure, not just the first
                inner = "; ".join(f"{type(e).__name__}: {e}" for e in getattr(exc, "exceptions", ()))
                failures[label] = f"{type(exc).__name__}: {exc} {inner}"[:3000]
    return ran, failures, codes


def test_fuzz_every_operation(live: tuple[str, Services, LoopbackRouter]) -> None:
    base, services, router = live
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")  # the document as served
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis leaves out the document's own path (GET /openapi.json); test_openapi.py covers it.
    assert {op.label for op in operations} == {
        f"{method.upper()} {path}" for path, item in document(base, "1.0.0")["paths"].items() for method in item
    } - {"GET /openapi.json"}

    ran, failures, codes = fuzz(operations)
    total = sum(ran.values())
    print(f"\n[fuzz] {total} requests; status codes {dict(sorted(codes.items()))}")
    for label, count in ran.items():
        print(f"[fuzz]   {count:3d} {label}")
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
    negative = {label.rsplit(" [", 1)[0] for label in ran if label.endswith("[negative]")}
    assert negative == {op.label for op in operations} - {"GET /", "GET /health", "GET /ready"}
    assert total >= MAX_EXAMPLES * len(negative)
    # The examples reached the real paths: jobs accepted, estimates made, short links resolved.
    assert {200, 202, 400, 404} <= set(codes) and not any(code >= 500 for code in codes)
    assert services.store.keys("job") and "https://vm.tiktok.com/ZMabc123/" in router.sent
    # Nothing tried to leave: every request of the resolver went to the loopback fake.
    assert router.refused == []


@pytest.mark.parametrize("drift", ["undocumented_status", "undocumented_key"])
def test_fuzzing_catches_a_document_that_is_not_true(live: tuple[str, Services, LoopbackRouter], drift: str) -> None:
    # Controls for the test above: the same run against a subtly wrong document must fail.
    base, _, _ = live
    doc = document(base, "1.0.0")
    if drift == "undocumented_status":
        del doc["paths"]["/estimate"]["post"]["responses"]["400"]
        path = "/estimate"
    else:
        del doc["components"]["schemas"]["SubmitAnswer"]["properties"]["cacheHit"]
        doc["components"]["schemas"]["SubmitAnswer"]["required"].remove("cacheHit")
        path = "/transcribe"
    schema = schemathesis.openapi.from_dict(doc)
    schema.config.update(base_url=base)
    operations = [r.ok() for r in schema.get_all_operations() if r.ok().path == path]
    _, failures, _ = fuzz(operations)
    expected = "Undocumented status code" if drift == "undocumented_status" else "Response violates schema"
    assert failures and all(expected in text for text in failures.values()), failures
