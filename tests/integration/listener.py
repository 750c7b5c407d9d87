"""A webhook listener for the outbound-call tests (test_operator_outbound.py,
test_tenancy.py): an HTTP server on a loopback address that records the headers of every
POST it gets and answers 202, so a test can say "the listener received nothing".

    with listening("127.0.0.2") as (url, calls):
        ...                      # url: http://127.0.0.2:<port>/deploy
        assert calls == []

A test that needs one per test uses the `listener` fixture of its module, which wraps
`listening()`; the real-node tenancy matrix keeps two for its module (an allowed one and
an "internal" one the operator's policy denies). `gate()` is a server a pod waits on
until the test opens it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Calls", "gate", "listening"]

#: The headers of each request the listener got, in order.
Calls = list[dict[str, str]]


@contextlib.contextmanager
def _serving(address: str, handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve `handler` on `address` (a free port) in a thread; its port. Stopped, and its
    socket closed, when the block ends."""
    server = ThreadingHTTPServer((address, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass  # the test reads what was asked of it, not stderr


@contextlib.contextmanager
def listening(address: str = "127.0.0.1") -> Iterator[tuple[str, Calls]]:
    """(its URL, the calls it got) while it serves on `address` (a free port)."""
    calls: Calls = []

    class Handler(_Quiet):
        def do_POST(self) -> None:
            calls.append(dict(self.headers))
            self.send_response(202)
            self.end_headers()

    with _serving(address, Handler) as port:
        yield f"http://{address}:{port}/deploy", calls


@contextlib.contextmanager
def gate(address: str) -> Iterator[tuple[str, threading.Event]]:
    """(its URL, the event that opens it): a server on `address` that answers GET with 503
    until the event is set and 200 after, for a pod that must wait for the test (the
    pod polls the URL: it has no API token to watch anything with)."""
    opened = threading.Event()

    class Handler(_Quiet):
        def do_GET(self) -> None:
            self.send_response(200 if opened.is_set() else 503)
            self.end_headers()

    with _serving(address, Handler) as port:
        try:
            yield f"http://{address}:{port}/go", opened
        finally:
            opened.set()
