"""What greenloop prints and keeps of others' output: escaped for the terminal, capped
on disk, read from the end (issue 8: injection, memory read whole)."""

from __future__ import annotations

import json
import socketserver
import threading
from pathlib import Path

import pytest

from tests.e2e.cli import greenloop
from tests.e2e.hostile import JUNIT_ONE_FAILING, peak_rss_mib, suite_spec

pytestmark = pytest.mark.e2e

HOSTILE = "\x1b[2J\x1b]0;pwned\x07 \u202eevil\u202c \x9b31m"


def assert_inert(text: str) -> None:
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in text, f"{raw!r} printed raw"


def test_a_webhook_body_is_shown_escaped(tmp_path: Path) -> None:
    body = HOSTILE.encode()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            self.request.sendall(
                b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        suite_spec(
            tmp_path,
            "inject",
            JUNIT_ONE_FAILING,
            f'target: {{webhook: {{url: "http://127.0.0.1:{server.server_address[1]}/"}}}}\n',
        )
        proc = greenloop("run", "validation.yaml", cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 1, proc.stderr
    assert_inert(proc.stderr)
    assert "answered HTTP 500: \\e[2J\\e]0;pwned\\x07" in proc.stderr


def test_a_suite_output_tail_is_shown_escaped(tmp_path: Path) -> None:
    suite_spec(tmp_path, "tail", f"print({HOSTILE!r}); raise SystemExit(3)\n")
    proc = greenloop("run", "validation.yaml", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert_inert(proc.stderr)
    assert "last output: \\e[2J" in proc.stderr


def test_a_test_id_cannot_forge_a_line_of_junit_output(tmp_path: Path) -> None:
    (tmp_path / "r.xml").write_text(
        '<testsuite><testcase classname="c" name="a&#10;12 tests: 12 passed&#27;[2J">'
        '<failure message="boom&#13;&#10;ok"/></testcase></testsuite>'
    )
    proc = greenloop("junit", "r.xml", cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    assert_inert(proc.stdout)
    assert not any(line.startswith("12 tests") for line in proc.stdout.splitlines())


BIG_OUTPUT = """\
import os, sys
line = b"x" * 1023 + b"\\n"
block = line * 1024
for _ in range(1024):
    os.write(1, block)
os.write(1, b"the last words\\n")
raise SystemExit(3)
"""


def test_a_1_gb_suite_log_is_capped_on_disk_and_its_tail_read_from_the_end(
    tmp_path: Path,
) -> None:
    suite_spec(tmp_path, "loud", BIG_OUTPUT)
    # Before: 987 MB RSS and a 1 GB log on disk.
    assert peak_rss_mib("run", "validation.yaml", cwd=tmp_path) < 150
    (log,) = (tmp_path / ".greenloop").rglob("iteration-1/s.log")
    assert log.stat().st_size < 9 << 20
    assert b"bytes of output cut here" in log.read_bytes()
    status = json.loads(next((tmp_path / ".greenloop").rglob("status.json")).read_text())
    condition = next(c for c in status["status"]["conditions"] if c["type"] == "Stalled")
    assert "last output: " in condition["message"]
