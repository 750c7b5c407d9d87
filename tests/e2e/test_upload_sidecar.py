"""The results sidecar's retries (`greenloop.k8s.upload.upload`) against a scripted
endpoint on 127.0.0.1: what it retries, that it waits out Retry-After, when it is done,
and that it stops at its deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from greenloop.k8s.upload import Upload, UploadResult, upload

XML = b'<testsuite name="s" tests="1"><testcase classname="t" name="ok"/></testsuite>\n'


@dataclass
class Script:
    """The answers to give, in order (the last one repeats), and when each request came."""

    answers: list[tuple[int, dict[str, str]]]
    seen: list[float] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)  # each request's bearer token
    after_first: Callable[[], None] | None = None


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Script]]:
    script = Script(answers=[(200, {})])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            script.seen.append(time.monotonic())
            script.tokens.append(self.headers.get("Authorization", "").removeprefix("Bearer "))
            if len(script.seen) == 1 and script.after_first is not None:
                script.after_first()
            status, headers = script.answers[min(len(script.seen), len(script.answers)) - 1]
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def send(url: str, tmp_path: Path, deadline: float = 30.0) -> UploadResult:
    junit = tmp_path / "junit.xml"
    junit.write_bytes(XML)
    token = tmp_path / "token"
    if not token.exists():
        token.write_text("token-1\n")
    job = Upload(junit, url, "ns", "job", token_file=token, deadline_seconds=deadline)
    with (tmp_path / "log").open("w") as log:
        return upload(job, log=log)


def test_a_busy_endpoints_retry_after_is_waited_out_before_the_next_attempt(
    endpoint: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = endpoint
    script.answers = [(503, {"Retry-After": "1"}), (429, {"Retry-After": "1"}), (200, {})]
    result = send(url, tmp_path)
    assert (result.ok, result.attempts) == (True, 3)
    gaps = [b - a for a, b in zip(script.seen, script.seen[1:], strict=False)]
    assert all(gap >= 1.0 for gap in gaps), gaps


ANSWERS = [
    # (id, answers, ok, attempts)
    ("stored-first-time", [(200, {})], True, 1),
    ("408-then-stored", [(408, {}), (200, {})], True, 2),
    ("lost-answer-then-409-is-done", [(503, {}), (409, {})], True, 2),
    ("409-on-the-first-attempt-is-not-ours", [(409, {})], False, 1),
    ("forbidden-is-final", [(403, {})], False, 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "ok", "attempts"), [pytest.param(a, o, n, id=i) for i, a, o, n in ANSWERS]
)
def test_what_the_sidecar_retries_and_when_it_is_done(
    endpoint: tuple[str, Script],
    tmp_path: Path,
    answers: list[tuple[int, dict[str, str]]],
    ok: bool,
    attempts: int,
) -> None:
    url, script = endpoint
    script.answers = answers
    result = send(url, tmp_path)
    assert (result.ok, result.attempts) == (ok, attempts), result.message


def test_an_endpoint_that_stays_busy_is_given_up_at_the_deadline(
    endpoint: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = endpoint
    script.answers = [(503, {"Retry-After": "0"})]
    result = send(url, tmp_path, deadline=2.0)
    assert not result.ok and "gave up at the deadline" in result.message
    assert "HTTP 503" in result.message and 1 < result.attempts == len(script.seen)


def test_the_token_is_read_again_on_each_attempt_as_the_kubelet_renews_it(
    endpoint: tuple[str, Script], tmp_path: Path
) -> None:
    """The projected token is renewed in place: a retry sends the file's current token,
    not the one the sidecar started with (which may have expired by then)."""
    url, script = endpoint
    token = tmp_path / "token"
    token.write_text("token-1\n")
    script.answers = [(503, {"Retry-After": "1"}), (200, {})]
    script.after_first = lambda: token.write_text("token-2\n")
    result = send(url, tmp_path)
    assert (result.ok, result.attempts) == (True, 2)
    assert script.tokens == ["token-1", "token-2"]


def test_no_token_file_sends_nothing(endpoint: tuple[str, Script], tmp_path: Path) -> None:
    url, script = endpoint
    junit = tmp_path / "junit.xml"
    junit.write_bytes(XML)
    job = Upload(junit, url, "ns", "job", token_file=tmp_path / "absent")
    result = upload(job)
    assert (result.ok, result.attempts) == (False, 0) and "no token" in result.message
    assert script.seen == []
