"""HTTP for the local shell (health probes, the redeploy webhook): every call ends by a
wall-clock deadline and reads a bounded body, whatever the server does.

httpx's ``timeout=`` applies to each socket operation, so a server that sends one byte
a second keeps a call alive for as long as it likes, and ``resp.text`` reads a body of
any size. Here each socket read and write gets only the time left until the call's
deadline, and the body is streamed and cut at ``max_body`` bytes.
"""

from __future__ import annotations

import functools
import ssl
import time
import typing
from dataclasses import dataclass

import httpcore
import httpx

__all__ = ["Answer", "HttpFailed", "request"]

MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
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


def request(
    method: str,
    url: str,
    *,
    seconds: float,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    max_body: int = MAX_BODY,
) -> Answer:
    """One HTTP call that is over after ``seconds``, answer or not."""
    started = time.monotonic()
    deadline = started + max(seconds, 0.001)
    transport = _DeadlineTransport(deadline)
    try:
        with (
            httpx.Client(transport=transport, timeout=seconds, follow_redirects=False) as client,
            client.stream(method, url, headers=headers, content=content) as resp,
        ):
            body = bytearray()
            cut = False
            for chunk in resp.iter_raw(16 * 1024) if max_body > 0 else ():
                body += chunk
                if len(body) >= max_body:
                    cut = len(body) > max_body or _more(resp)
                    del body[max_body:]
                    break
            return Answer(resp.status_code, bytes(body), cut, (time.monotonic() - started) * 1000)
    except _DeadlinePassed:
        raise HttpFailed(f"no complete answer within {seconds:g} s") from None
    except httpx.TimeoutException as err:
        if time.monotonic() >= deadline - 0.01:
            raise HttpFailed(f"no complete answer within {seconds:g} s") from None
        raise HttpFailed(f"{type(err).__name__}: {err}") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as err:
        raise HttpFailed(f"{type(err).__name__}: {err}") from None
    except UnicodeError as err:
        raise HttpFailed(f"not ASCII where HTTP needs it: {err}") from None


def _more(resp: httpx.Response) -> bool:
    length = resp.headers.get("content-length", "")
    return not length.isdigit() or int(length) > 0


class _DeadlinePassed(httpx.TimeoutException):
    def __init__(self) -> None:
        super().__init__("deadline passed")


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlinePassed()
    return left


def _bounded(timeout: float | None, deadline: float) -> float:
    left = _left(deadline)
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, self._deadline))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, self._deadline))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._stream.start_tls(
            ssl_context, server_hostname, _bounded(timeout, self._deadline)
        )
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: float) -> None:
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _bounded(timeout, self._deadline), local_address, socket_options
        )
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(
            path, _bounded(timeout, self._deadline), socket_options
        )
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, max(self._deadline - time.monotonic(), 0.0)))


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~80 ms: once per process, not once per probe.
    return httpx.create_ssl_context()


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport with a network backend that enforces the call's deadline.
    (httpx does not take a backend; the pool is rebuilt as HTTPTransport builds it.)"""

    def __init__(self, deadline: float) -> None:
        context = _ssl_context()
        super().__init__(verify=context, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=1,
            retries=0,
            network_backend=_DeadlineBackend(deadline),
        )
