"""The built-in classes: their rule tables, and how a failure's text is matched against them.

Classes are tried in the order of docs/design.md §1: TestCodeError, AuthError,
ServiceUnavailable, ConnectionError, Timeout, ServerError, Assertion, Unknown (Dependent is
decided before, in :mod:`greenloop.core.classify_dependencies`). Within tiers 1-3 of the
text (:mod:`greenloop.core.classify_text`) a class other than Assertion wins over Assertion
wherever it appears; only then is the output searched.

HTTP status codes count only in an HTTP context (``HTTP 503``, ``status_code == 503``,
``503 Service Unavailable``, ``<Response [503]>``, ``got 503``, ``expected 200, got
503``), never as bare numbers: ``:5030``, ``/orders/503`` and ``took 503ms`` are not
statuses. Every pattern runs on RE2, which has no lookarounds; the two places that need
one say how they do without.
"""

from __future__ import annotations

from typing import Protocol

from greenloop.core import regex
from greenloop.core.classify_text import FailureText, clip
from greenloop.core.model import Diagnosis, FailureClass
from greenloop.core.regex import compile as _re

__all__ = ["builtin_diagnosis"]

_FC = FailureClass

# -- HTTP status codes ---------------------------------------------------------------------

# What follows a code that is no status (503.5, 503,000, 503ms, 503 items) is captured as
# ``not_status`` and the match skipped: RE2 has no negative lookahead. The group is optional
# and greedy, so it takes part whenever it can, just as the lookahead would have refused.
_STATUS_CODE = (
    r"(?P<code>[1-5]\d\d)\b(?P<not_status>[.,]\d|\s*(?:ms|s|sec|seconds|bytes|items|rows|%))?"
)
_STATUS_CONTEXTS = [
    # HTTP 503, HTTP/1.1 503, status 503, status: 503, status_code == 503, statusCode=503,
    # "status":503, status code <503>, response code 503, Request failed with status code 503
    _re(
        r"\b(?:https?(?:/\d(?:\.\d)?)?|status(?:[ _-]?code)?|response[ _-]?code)\b[\"']?"
        r"\s*(?:[:=]=?|\bis\b|\bwas\b|\bof\b)?\s*[<\[(]?\s*" + _STATUS_CODE,
        ignore_case=True,
    ),
    # 503 Service Unavailable, 401 Client Error, "too many 503 error responses"
    _re(
        r"\b(?P<code>[1-5]\d\d)\s+(?:service unavailable|bad gateway|gateway time-?out"
        r"|internal server error|unauthori[sz]ed|forbidden|server error|client error"
        r"|not implemented|error responses?)\b",
        ignore_case=True,
    ),
    # requests' <Response [503]>, httpx's <Response [503 Service Unavailable]>
    _re(r"<Response \[(?P<code>[1-5]\d\d)\b"),
    # got 503, returned 503, but was <503>, Received: 503, actual  : 503
    _re(
        r"\b(?:got|received|returned|responded with|actual|but was|but: was)\b\s*[:=]?\s*"
        r"[<\[(\"']?\s*(?:status\s*(?:code\s*)?)?(?:HTTP\s*)?" + _STATUS_CODE,
        ignore_case=True,
    ),
]
# assert 503 == 200, 200 != 503: a 2xx/3xx compared with another code
_STATUS_COMPARISON = _re(r"\b(?P<a>[1-5]\d\d)\s*(?:==|!=|is not|is)\s*(?P<b>[1-5]\d\d)\b")
# "expected 3 items, got 503": the expected value is no status, so neither is the actual
# (The first digit after "expected" does not start a three-digit 1xx-5xx code: written
# out, since RE2 has no lookahead.)
_EXPECTED_NON_STATUS = _re(
    r"\bexpected\b\W{0,4}(?:[06-9]|[1-5](?:\D|$)|[1-5]\d(?:\D|$)|[1-5]\d\d\w)",
    ignore_case=True,
)
_ACTUAL_LINE = _re(r"^(?:got|received|actual|but)\b", ignore_case=True)


def _status(line: str, previous: str) -> tuple[int, tuple[int, int]] | None:
    """The HTTP error status a line reports, with its span. A line may name two codes
    ("Expected status code <200> but was <503>"): the first that is an error wins."""
    last = len(_STATUS_CONTEXTS) - 1
    for index, pattern in enumerate(_STATUS_CONTEXTS):
        guarded = "not_status" in pattern.groupindex
        for match in pattern.finditer(line):
            if guarded and match.group("not_status") is not None:
                continue
            code = int(str(match.group("code")))  # the group always takes part
            if code < 400:
                continue
            if index == last and (
                _EXPECTED_NON_STATUS.search(line) or _EXPECTED_NON_STATUS.search(previous)
            ):
                break
            return code, match.span()
    comparison = _STATUS_COMPARISON.search(line)
    if comparison:
        a, b = int(str(comparison.group("a"))), int(str(comparison.group("b")))
        if a < 400 <= b:
            return b, comparison.span()
        if b < 400 <= a:
            return a, comparison.span()
    return None


_STATUS_CLASS: dict[int, FailureClass] = {
    401: _FC.AUTH_ERROR,
    403: _FC.AUTH_ERROR,
    407: _FC.AUTH_ERROR,
    408: _FC.TIMEOUT,
    502: _FC.SERVICE_UNAVAILABLE,
    503: _FC.SERVICE_UNAVAILABLE,
    504: _FC.SERVICE_UNAVAILABLE,
    500: _FC.SERVER_ERROR,
    501: _FC.SERVER_ERROR,
    **{code: _FC.SERVER_ERROR for code in range(505, 600)},
}


# -- the built-in classes ------------------------------------------------------------------


class _Searcher(Protocol):
    def search(self, text: str) -> regex.Match | None: ...


class _Unless:
    """A pattern whose matches in which ``group`` took part count only when ``later`` is
    not found after them: the negative lookahead ``(?!.*later)`` that RE2 lacks."""

    def __init__(self, pattern: regex.Pattern, group: str, later: regex.Pattern) -> None:
        self.pattern, self.group, self.later = pattern, group, later

    def search(self, text: str) -> regex.Match | None:
        last_later: int | None = None
        for match in self.pattern.finditer(text):
            if match.group(self.group) is None:
                return match
            if last_later is None:
                last_later = max((m.start() for m in self.later.finditer(text)), default=-1)
            if last_later < match.end():
                return match
        return None


_PATTERNS: dict[FailureClass, _Searcher] = {
    # A SyntaxError about JSON is a response that did not parse, not broken test code.
    _FC.TEST_CODE_ERROR: _Unless(
        _re(
            r"\b(?P<syntax>SyntaxError|IndentationError|TabError)\b"
            r"|\b(?:ModuleNotFoundError|ImportError)\b|\bNo module named\b"
            r"|\bNameError\b|\bReferenceError: \S+ is not defined"
            r"|\bAttributeError: (?:module|type object) '[^']+' has no attribute"
            r"|\bfixture '[^']+' not found"
            r"|\bERROR collecting\b|(?i:\bcollection failure\b)|\berrors? during collection\b"
            r"|\bTypeError: \S+\(\) (?:missing \d+ required|got an unexpected keyword argument"
            r"|takes \d+ positional arguments? but \d+ (?:was|were) given"
            r"|got multiple values for argument)"
            r"|\b(?:NoClassDefFoundError|ClassNotFoundException|NoSuchMethodError|NoSuchFieldError"
            r"|ParameterResolutionException)\b|\bCOMPILATION ERROR\b|\bcannot find symbol\b"
            r"|\[(?:build|setup) failed\]|^\S+\.go:\d+:\d+: (?:undefined: |.* declared and not used"
            r"|.* imported and not used)"
            r"|\bTest suite failed to run\b|\bCannot find module\b"
            r"|\bJest encountered an unexpected token\b|\berror TS\d{4}:"
        ),
        "syntax",
        _re("json", ignore_case=True),
    ),
    _FC.AUTH_ERROR: _re(
        r"\b(?:unauthori[sz]ed|forbidden|unauthenticated|permission[ _]?denied"
        r"|access[ _]?denied(?:exception)?|authentication (?:failed|required)"
        r"|invalid (?:api[ _-]?key|token|credentials)|(?:token|credentials) (?:has |have )?expired"
        r"|not authori[sz]ed)\b",
        ignore_case=True,
    ),
    _FC.SERVICE_UNAVAILABLE: _re(
        r"\b(?:service ?unavailable\w*|bad ?gateway\w*|gateway ?time-?out\w*)\b"
        r"|\bcode = Unavailable\b|\bStatusCode\.UNAVAILABLE\b|\bUNAVAILABLE:",
        ignore_case=True,
    ),
    _FC.CONNECTION_ERROR: _re(
        r"\bconnection (?:refused|reset|aborted|closed by (?:peer|remote host))\b"
        r"|\b(?:ECONNREFUSED|ECONNRESET|ECONNABORTED|EHOSTUNREACH|ENETUNREACH|EPIPE|EAI_AGAIN"
        r"|ENOTFOUND)\b"
        r"|\bcannot connect to host\b|\bconnect call failed\b|\bServerDisconnectedError\b"
        r"|\bother side closed\b|\bUND_ERR_SOCKET\b"
        r"|\b(?:ConnectError|ConnectionError|Connection(?:Refused|Reset|Aborted)Error"
        r"|ConnectException|NewConnectionError|RemoteDisconnected|UnknownHostException"
        r"|NoRouteToHostException)\b"
        r"|name or service not known|nodename nor servname|temporary failure in name resolution"
        r"|\bgetaddrinfo\b|\bno such host\b|name does not resolve|could not resolve host"
        r"|\bDNS\b|no route to host|network is unreachable|max retries exceeded"
        r"|failed to establish a new connection|socket hang up|remote end closed connection"
        r"|server disconnected without sending a response|broken pipe"
        r"|net::ERR_(?:CONNECTION_\w+|NAME_NOT_RESOLVED|ADDRESS_UNREACHABLE|EMPTY_RESPONSE)",
        ignore_case=True,
    ),
    _FC.TIMEOUT: _re(
        r"timed? ?out|timeout|deadline[ _]?exceeded|\bETIMEDOUT\b|\bESOCKETTIMEDOUT\b",
        ignore_case=True,
    ),
    _FC.SERVER_ERROR: _re(
        r"\binternal ?server ?error\w*\b|\bcode = Internal\b|\bStatusCode\.INTERNAL\b",
        ignore_case=True,
    ),
    _FC.ASSERTION: _re(
        r"\bAssertionError\b|\bAssertionFailedError\b|\bComparisonFailure\b|\bassert\b"
        r"|\bexpect\("
        r"|\bexpected\b.*\b(?:but (?:was|got|found)|got|received|actual|to (?:be|equal))\b"
        r"|^(?:expected|received|actual)\s*:|\bError Trace:|\bNot equal:"
        r"|\bwant(?:ed)?\b.*\bgot\b|\bgot\b.*\bwant(?:ed)?\b"
        r"|\bExpecting (?:actual:|value to be)"
        r"|\b\d+ expectations? failed\b|\bshould (?:be|have|contain|equal)\b"
        r"|\.(?:toBe|toEqual|toStrictEqual|toContain|toMatch|toHaveBeenCalled\w*|toHaveLength)\b",
        ignore_case=True,
    ),
}
# Playwright's web-first assertions time out while waiting for a condition: that is the
# assertion failing, not a slow service.
_EXPECT_TIMEOUT = _re(
    r"waiting for expect\(|expect\.(?:poll|toPass)\b|\bexpect\([^)]*\)\.\w+",
    ignore_case=True,
)
_STRONG = (
    _FC.TEST_CODE_ERROR,
    _FC.AUTH_ERROR,
    _FC.SERVICE_UNAVAILABLE,
    _FC.CONNECTION_ERROR,
    _FC.TIMEOUT,
    _FC.SERVER_ERROR,
)
_ORDER = {cls: rank for rank, cls in enumerate(_STRONG)}


def _strong_class(line: str, previous: str) -> tuple[FailureClass, tuple[int, int]] | None:
    """The first class in built-in order, other than Assertion, this line shows."""
    best: tuple[FailureClass, tuple[int, int]] | None = None
    status = _status(line, previous)
    if status is not None and status[0] in _STATUS_CLASS:
        best = (_STATUS_CLASS[status[0]], status[1])
    for failure_class in _STRONG:
        if best is not None and _ORDER[failure_class] >= _ORDER[best[0]]:
            break
        match = _PATTERNS[failure_class].search(line)
        if match is None:
            continue
        if failure_class is _FC.TIMEOUT and _EXPECT_TIMEOUT.search(line):
            continue
        return failure_class, match.span()
    return best


def builtin_diagnosis(text: FailureText) -> Diagnosis:
    tiers = text.tiers()
    for tier in tiers:
        for line, previous in tier:
            found = _strong_class(line, previous)
            if found is not None:
                return Diagnosis(found[0], _evidence(line, previous, found[1]))
    for tier in tiers:
        for line, previous in tier:
            match = _PATTERNS[_FC.ASSERTION].search(line)
            if match is not None:
                return Diagnosis(_FC.ASSERTION, _evidence(line, previous, match.span()))
    for line, previous in text.output:
        found = _strong_class(line, previous)
        if found is not None:
            return Diagnosis(found[0], _evidence(line, previous, found[1]))
    for line, previous in text.output:
        match = _PATTERNS[_FC.ASSERTION].search(line)
        if match is not None:
            return Diagnosis(_FC.ASSERTION, _evidence(line, previous, match.span()))
    for tier in tiers:
        if tier:
            # The first message line, else the last exception line: the best summary.
            return Diagnosis(_FC.UNKNOWN, clip(tier[0][0]))
    return Diagnosis(_FC.UNKNOWN, clip(text.test.outcome.value))


def _evidence(line: str, previous: str, span: tuple[int, int]) -> str:
    """The line, with its other half when it is the actual value of an expected/actual
    pair ("Expected: 200 Received: 503")."""
    if previous and len(line) < 60 and _ACTUAL_LINE.match(line) and "expect" in previous.lower():
        return clip(f"{previous} {line}", len(previous) + 1 + span[0])
    return clip(line, span[0])
