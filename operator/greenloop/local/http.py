"""HTTP for the local shell (health probes, the redeploy webhook): every call ends by a
wall-clock deadline and reads a bounded body, whatever the server does.

httpx's ``timeout=`` applies to each socket operation, so a server that sends one byte
a second keeps a call alive for as long as it likes, and ``resp.text`` reads a body of
any size. Here a watchdog shuts the call's sockets down at its deadline (it learns of
each socket through the ``trace`` request extension, httpx's and httpcore's public
hook), which ends whatever read or write is waiting; the body is streamed and cut at
``max_body`` bytes. Only public httpx/httpcore API is used, and httpx's own transport,
so the environment's proxy settings (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) are
honoured as httpx honours them by default.

Where the call may go is the outbound policy's (core/outbound.py): under a policy that
denies anything, the host is resolved once and every address checked before the call,
and the address the connection reached is checked again at connect, before a byte is
sent (so a name that answers differently the second time, DNS rebinding, is caught; with
a proxy, that address is the proxy's).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import threading
import time
import typing
from dataclasses import dataclass

import httpx

from greenloop.core import outbound

__all__ = ["Answer", "HttpFailed", "Refused", "request"]

MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    body: bytes  # at most max_body bytes
    cut: bool  # the server sent more than max_body
    ms: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self, limit: int = 200) -> str:
        return self.body[:limit].decode("utf-8", "replace")


class HttpFailed(Exception):
    """No answer: the URL, the connection, the protocol or the deadline. ``str()`` is
    a short explanation (the exception type and what it said)."""


class Refused(HttpFailed):
    """The outbound policy does not allow the URL: nothing was sent. ``str()`` names
    the policy and the rule."""


class _Denied(Exception):
    # Raised from the connect trace: ends the call before the request is written.
    pass


def check(url: str, policy: outbound.Policy, what: str) -> None:
    """Refused when ``policy`` does not allow ``url`` (its host resolved here, every
    address checked); a policy that denies nothing resolves nothing."""
    if not policy.denied:
        return
    host = outbound.host_of(url)
    addresses: list[str] = []
    if host is not None:
        try:
            infos = socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            infos = []
        addresses = [str(info[4][0]) for info in infos]
    why = outbound.refusal(policy, what, url, addresses)
    if why is not None:
        raise Refused(why)


def request(
    method: str,
    url: str,
    *,
    seconds: float,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    max_body: int = MAX_BODY,
    policy: outbound.Policy = outbound.LOCAL_DEFAULT,
    what: str = "url",
) -> Answer:
    """One HTTP call that is over after ``seconds``, answer or not; Refused, with
    nothing sent, when ``policy`` does not allow where it goes (``what`` names the
    field in the message)."""
    started = time.monotonic()
    deadline = started + max(seconds, 0.001)
    check(url, policy, what)
    host = outbound.host_of(url) or ""
    watchdog = _Watchdog(deadline, policy, what, host)
    try:
        with (
            watchdog,
            httpx.Client(verify=_ssl_context(), timeout=seconds, follow_redirects=False) as client,
            client.stream(
                method, url, headers=headers, content=content, extensions={"trace": watchdog.trace}
            ) as resp,
        ):
            body = bytearray()
            cut = False
            for chunk in resp.iter_raw(16 * 1024) if max_body > 0 else ():
                body += chunk
                if len(body) >= max_body:
                    cut = len(body) > max_body or _more(resp)
                    del body[max_body:]
                    break
            if watchdog.fired:
                # The body may have ended only because its socket was shut down.
                raise HttpFailed(f"no complete answer within {seconds:g} s")
            return Answer(
                resp.status_code,
                resp.reason_phrase,
                bytes(body),
                cut,
                (time.monotonic() - started) * 1000,
            )
    except _Denied as err:
        raise Refused(str(err)) from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as err:
        if watchdog.fired or time.monotonic() >= deadline - 0.01:
            raise HttpFailed(f"no complete answer within {seconds:g} s") from None
        raise HttpFailed(f"{type(err).__name__}: {err}") from None
    except UnicodeError as err:
        raise HttpFailed(f"not ASCII where HTTP needs it: {err}") from None


def _more(resp: httpx.Response) -> bool:
    length = resp.headers.get("content-length", "")
    return not length.isdigit() or int(length) > 0


class _Watchdog:
    """Shuts down every socket the call opened once its deadline passes: a read or write
    waiting on one returns at once, and httpx raises (or the body ends) right there.

    Sockets are learned from httpcore's ``connection.connect_tcp.complete`` trace event
    (for a proxy too: that is the connection to the proxy, under any TLS). A connect
    still in progress at the deadline ends by httpx's connect timeout, ``seconds``, which
    started with the call."""

    def __init__(self, deadline: float, policy: outbound.Policy, what: str, host: str) -> None:
        self._deadline = deadline
        self._policy, self._what, self._host = policy, what, host
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.fired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, typing.Any]) -> None:
        if not event.endswith("connect_tcp.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if self._policy.denied:
            # Fails closed: a connection whose peer cannot be read is refused too.
            why = _peer_refusal(sock, self._policy, self._what, self._host)
            if why is not None:
                if stream is not None:
                    stream.close()  # httpcore never got it: closing it is ours
                raise _Denied(why)
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _peer_refusal(sock: object, policy: outbound.Policy, what: str, host: str) -> str | None:
    try:
        peer = sock.getpeername() if isinstance(sock, socket.socket) else None
    except OSError:
        peer = None
    if not isinstance(peer, tuple) or not peer:
        return f"{what}: the connection has no peer address"
    return outbound.address_refusal(policy, what, str(peer[0]), host)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~80 ms: once per process, not once per probe.
    return httpx.create_ssl_context()
