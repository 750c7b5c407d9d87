"""Why a test failed: the user's rules first, then the built-in classes.

Built-in classes are tried in the order of docs/design.md §1: Dependent, TestCodeError, AuthError,
ServiceUnavailable, ConnectionError, Timeout, ServerError, Assertion, Unknown.

Where the evidence comes from matters as much as the class order. A failure's text is
read in tiers, most decisive first:

1. the failure message (the raised exception, summarised by the runner);
2. the exception lines of the details, last first: pytest's ``E   `` lines, a Python
   traceback's unindented lines, Java's exception and ``Caused by:`` lines, every line
   of Go and jest output that is not a stack frame;
3. other non-source lines of the details (pytest's ``file.py:12: ExcName``);
4. the captured output, last first.

Source lines (pytest prints the test's code), stack frames and jest code frames are never
evidence: ``timeout=5`` in a call or ``assert`` in a helper says nothing about the
failure. Within tiers 1-3 a class other than Assertion wins over Assertion wherever it
appears: ``assert resp.status_code == 200`` failing with 503 is the service's doing, an
assertion is usually the symptom. Only then is the output searched, because logs are full
of retried errors that did not cause the failure.

HTTP status codes count only in an HTTP context (``HTTP 503``, ``status_code == 503``,
``503 Service Unavailable``, ``<Response [503]>``, ``got 503``, ``expected 200, got
503``), never as bare numbers: ``:5030``, ``/orders/503`` and ``took 503ms`` are not
statuses.

Every pattern, built-in or user, runs on RE2 (:mod:`greenloop.core.regex`), so matching
takes time linear in the line whatever the line or the rule. RE2 has no lookarounds; the
two places that need one say how they do without.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from greenloop.core import regex
from greenloop.core.model import Diagnosis, FailureClass, Outcome, Rule, TestResult

__all__ = [
    "CompiledRules",
    "RuleError",
    "compile_rule",
    "compile_rules",
    "diagnose",
    "diagnose_batch",
    "is_failing",
]

MAX_EVIDENCE = 200

_FC = FailureClass


def _re(pattern: str, *, ignore_case: bool = False) -> regex.Pattern:
    return regex.compile(pattern, ignore_case=ignore_case)


class RuleError(ValueError):
    """A user classification rule that cannot be used; the message names the rule.

    ``field`` is the rule's field at fault (``pattern`` or ``class``), so that
    ``greenloop validate`` can name ``spec.classification[i].<field>``."""

    def __init__(self, message: str, field: str = "pattern") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CompiledRules:
    rules: tuple[tuple[regex.Pattern, FailureClass], ...] = ()


def compile_rule(rule: Rule) -> tuple[regex.Pattern, FailureClass]:
    """One user rule, compiled the way :func:`diagnose` runs it. Raises RuleError with a
    message that does not name the rule (the caller knows where it is)."""
    try:
        failure_class = FailureClass(rule.failure_class)
    except ValueError:
        raise RuleError(f"unknown class {rule.failure_class!r}", "class") from None
    if failure_class is FailureClass.RUNNER_ERROR:
        raise RuleError("RunnerError describes a suite, not a test failure", "class")
    if not rule.pattern:
        raise RuleError("the pattern is empty")
    try:
        pattern = _re(rule.pattern, ignore_case=True)
    except regex.RegexError as err:
        raise RuleError(
            f"{rule.pattern!r} is not a regular expression RE2 accepts ({err}); RE2 has no"
            " backreferences or lookarounds (syntax: https://github.com/google/re2/wiki/Syntax)"
        ) from None
    if pattern.search("") is not None:
        raise RuleError(
            f"pattern {rule.pattern!r} matches an empty line, so it would match every failure"
        )
    return pattern, failure_class


def compile_rules(rules: Sequence[Rule]) -> CompiledRules:
    """The user's rules, compiled once per distinct list (the engine asks on every batch)."""
    return _compile_rules(tuple(rules))


@lru_cache(maxsize=64)
def _compile_rules(rules: tuple[Rule, ...]) -> CompiledRules:
    compiled: list[tuple[regex.Pattern, FailureClass]] = []
    for index, rule in enumerate(rules):
        try:
            compiled.append(compile_rule(rule))
        except RuleError as err:
            raise RuleError(f"classification[{index}]: {err}", err.field) from None
    return CompiledRules(tuple(compiled))


def is_failing(test: TestResult) -> bool:
    """Failed or errored, or skipped because a test it depends on did not pass."""
    if test.is_failure:
        return True
    return test.outcome is Outcome.SKIPPED and _dependency_skip(test) is not None


def diagnose(
    test: TestResult,
    rules: CompiledRules | None = None,
    *,
    failing_ids: Collection[str] = (),
) -> Diagnosis | None:
    """Why ``test`` did not pass, or None when it passed or is an ordinary skip.

    ``failing_ids`` are the ids of the tests that failed in the same run: they turn a
    dependency named in a message (often a short name such as ``test_login``) into the
    root test's id, and make a test whose ``depends_on`` names one of them Dependent."""
    if test.outcome is Outcome.PASSED:
        return None
    if test.outcome is Outcome.SKIPPED:
        found = _dependency_skip(test)
        if found is None:
            return None
        line, name = found
        return Diagnosis(_FC.DEPENDENT, _clip(line), _root(test, name, failing_ids))
    if not test.is_failure:
        return None

    text = _FailureText(test)
    if rules is not None:
        for pattern, failure_class in rules.rules:
            for line in text.all_lines():
                match = pattern.search(line)
                if match:
                    root = None
                    if failure_class is _FC.DEPENDENT:
                        root = _failing_dependency(test, failing_ids)
                    return Diagnosis(failure_class, _clip(line, match.start()), root)

    dependency = _dependency_failure(test, failing_ids)
    if dependency is not None:
        return dependency
    subtests = _subtest_failure(test, text, failing_ids)
    if subtests is not None:
        return subtests
    return _builtin(text)


def diagnose_batch(
    tests: Iterable[TestResult],
    rules: CompiledRules | None = None,
    *,
    failing_ids: Collection[str] = (),
) -> list[tuple[TestResult, Diagnosis | None]]:
    """Diagnose the results of one run together, so a Dependent finds its root among
    them (and among ``failing_ids``, the tests already known to fail)."""
    batch = list(tests)
    known = set(failing_ids) | {t.id for t in batch if is_failing(t)}
    return [(t, diagnose(t, rules, failing_ids=known)) for t in batch]


# -- dependencies --------------------------------------------------------------------------

# greenloop's pytest plugin: "greenloop: depends on <id>, which did not pass".
_GREENLOOP_DEPENDENCY = _re(r"greenloop: depends on (?P<id>.+?), which did not pass")
# pytest-dependency skips with "<nodeid> depends on <name>", the whole message.
_PYTEST_DEPENDENCY = _re(r"(?P<test>\S+) depends on (?P<id>\S+)")
# TestNG, through Surefire: the method is skipped, the dependency is not named.
_TESTNG_DEPENDENCY = _re(r"depends on not successfully finished methods", ignore_case=True)


def _dependency_skip(test: TestResult) -> tuple[str, str] | None:
    """The message line that says ``test`` was skipped for a dependency, and the
    dependency's name ("" when the runner does not say)."""
    for line in _lines(test.message):
        # Each pattern below needs "depends on" (TestNG's in any case): skip the three
        # regex calls on the lines without it. Only ASCII lines: RE2 folds more cases.
        if line.isascii() and "depends on" not in line.lower():
            continue
        match = _GREENLOOP_DEPENDENCY.search(line)
        if match:
            return line, str(match.group("id")).strip()  # the group always takes part
        match = _PYTEST_DEPENDENCY.fullmatch(line)
        if match:
            return line, str(match.group("id")).strip("'\"")
        if _TESTNG_DEPENDENCY.search(line):
            return line, ""
    return None


def _dependency_failure(test: TestResult, failing_ids: Collection[str]) -> Diagnosis | None:
    """A failed (not skipped) test is Dependent when its message says so, or when a test
    it declares it depends on failed in the same run."""
    found = _dependency_skip(test)
    if found is not None:
        line, name = found
        return Diagnosis(_FC.DEPENDENT, _clip(line), _root(test, name, failing_ids))
    root = _failing_dependency(test, failing_ids)
    if root is not None:
        return Diagnosis(_FC.DEPENDENT, _clip(f"depends on {root}, which failed"), root)
    return None


def _root(test: TestResult, name: str, failing_ids: Collection[str]) -> str | None:
    """The test a dependency line names (as written when no failing test matches it);
    when the line names none (TestNG), the declared dependency that failed."""
    if name:
        return _resolve(name, test.id, failing_ids)
    return _failing_dependency(test, failing_ids)


def _failing_dependency(test: TestResult, failing_ids: Collection[str]) -> str | None:
    for name in test.depends_on:
        root = _resolve(name, test.id, failing_ids)
        if root in failing_ids and root != test.id:
            return root
    return None


def _subtest_failure(
    test: TestResult, text: _FailureText, failing_ids: Collection[str]
) -> Diagnosis | None:
    """A Go parent test that says nothing of its own failed only because its subtests did
    (``pkg::TestOrders`` with ``pkg::TestOrders/create`` failing): Dependent on the
    deepest failing subtest, which is where the evidence is."""
    if any(text.tiers()):
        return None
    prefix = test.id + "/"
    below = [other for other in failing_ids if other.startswith(prefix)]
    leaves = sorted(
        (other for other in below if not any(b.startswith(other + "/") for b in below)),
        key=lambda other: (-other.count("/"), other),
    )
    if not leaves:
        return None
    more = f", and {len(leaves) - 1} more" if len(leaves) > 1 else ""
    return Diagnosis(_FC.DEPENDENT, _clip(f"its subtest {leaves[0]} failed{more}"), leaves[0])


def _resolve(name: str, own_id: str, failing_ids: Collection[str]) -> str:
    """The failing test ``name`` refers to: itself if it is a full id, else the one
    failing id it is a suffix of (``test_login`` -> ``tests/e2e/test_auth.py::test_login``),
    preferring the dependent test's own module. Unresolvable names stay as written."""
    if name in failing_ids:
        return name
    suffixes = ("::" + name, "/" + name, "." + name)
    candidates = [
        other
        for other in failing_ids
        if other != own_id
        and (other.endswith(suffixes) or other.partition("[")[0].endswith(suffixes))
    ]
    if len(candidates) > 1:  # ambiguous: only one in the dependent's own module will do
        module = own_id.rsplit("::", 1)[0] + "::"
        candidates = [c for c in candidates if c.startswith(module)]
    return candidates[0] if len(candidates) == 1 else name


# -- the failure's text, in tiers ----------------------------------------------------------


def _lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line.strip()
        if line:
            yield line


# pytest's exception lines start "E   " (a plain prefix: str.startswith, not a regex call
# per line, which was half the classification time of a 5,000-failure report).
_PYTEST_EXCEPTION = "E   "
_FRAME = _re(
    r"^\s*(?:"
    r"at\s+\S.*(?:\(.*\)|:\d+)\s*$"  # Java and JavaScript stack frames
    r"|\.\.\.\s*\d+\s+(?:more|common frames omitted)"
    r'|File\s+"[^"]*",\s+line\s+\d+'  # Python frames
    r"|goroutine\s+\d+\s+\["
    r"|>?\s*\d+\s*\|"  # jest and Playwright code frames
    r"|\|\s"
    r")"
)
_GO_FRAME = _re(r"^\s+\S+\.go:\d+ \+0x[0-9a-f]+$")
# Go's own lines around a test's output: they say which test ran, not why it failed.
_GO_NOISE = _re(
    r"^\s*(?:=== (?:RUN|PAUSE|CONT|NAME)\s|--- (?:FAIL|PASS|SKIP):|(?:FAIL|PASS|ok)(?:\s|$))"
)
_GO_STACK = _re(r"^goroutine \d+ \[")
# A Go panic's message and node's "[cause]:" are the failure itself.
_GO_PANIC = _re(r"^\s*panic: ")
_NODE_CAUSE = _re(r"^\s*\[cause\]: ")
# pytest's location line under a frame: "tests/test_x.py:12: ConnectError".
_PYTEST_LOCATION = _re(r"^\S+:\d+: \S")
# A message that is only a word ("Failed", gotestsum's; "failure") says nothing: the body does.
_BARE_WORD = _re(r"^\w+[.!:]?$")
_TRACEBACK_HEADER = (
    "Traceback (most recent call last):",
    "During handling of the above exception",
    "The above exception was the direct cause",
)


class _FailureText:
    """A failure's lines, sorted into tiers (see the module docstring). Each entry is the
    line and the line before it, which may hold the other half of an expected/actual pair."""

    def __init__(self, test: TestResult) -> None:
        self.test = test
        self.message = [(line, "") for line in _lines(test.message)]
        if (
            test.details.strip()
            and len(self.message) == 1
            and _BARE_WORD.match(test.message.strip())
        ):
            self.message = []
        self.decisive, self.rest = _split_details(test.details)
        raw_output = [line.strip() for line in test.output.splitlines()]
        self.output = [
            (line, _previous(raw_output, i))
            for i, line in reversed(list(enumerate(raw_output)))
            if line and not _is_frame(line)
        ]

    def tiers(self) -> tuple[list[tuple[str, str]], ...]:
        return self.message, self.decisive, self.rest

    def all_lines(self) -> Iterator[str]:
        """Every line, for user rules: the message, then the details and the output from
        their ends. Frames included: a rule may well be about a frame."""
        yield from _lines(self.test.message)
        yield from reversed(list(_lines(self.test.details)))
        yield from reversed(list(_lines(self.test.output)))


# The characters a _FRAME match can start with after its leading spaces (RE2's \s).
_FRAME_START = frozenset("a.Fg>|0123456789")
_CODE_FRAME_START = frozenset(">0123456789")
_RE2_SPACE = " \t\n\f\r"


def _is_frame(line: str) -> bool:
    """_FRAME or _GO_FRAME matches; the string tests only skip the regex calls on lines
    that cannot match (most lines), so the answer is the patterns' own."""
    first = line.lstrip(_RE2_SPACE)[:1]
    # A frame that starts with a digit or ">" is a code frame, which holds a "|".
    possible = first in _FRAME_START and (first not in _CODE_FRAME_START or "|" in line)
    if possible and _FRAME.match(line):
        return True
    return ".go:" in line and _GO_FRAME.match(line) is not None


def _previous(lines: list[str], index: int) -> str:
    for i in range(index - 1, max(-1, index - 3), -1):
        if lines[i]:
            return lines[i]
    return ""


def _split_details(details: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(decisive lines, other lines), each last first; source lines and frames dropped."""
    raw = details.splitlines()
    decisive: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    stripped = [line.strip() for line in raw]
    if any(line.startswith(_PYTEST_EXCEPTION) for line in raw):
        # pytest: "E   " lines are the exception; indented and ">" lines are source.
        exception_lines = [
            line[4:].strip() if line.startswith(_PYTEST_EXCEPTION) else "" for line in raw
        ]
        for i, line in enumerate(raw):
            if line.startswith(_PYTEST_EXCEPTION):
                if exception_lines[i]:
                    decisive.append((exception_lines[i], _previous(exception_lines, i)))
            elif ": " in line and _PYTEST_LOCATION.match(line):
                # Not the unindented "name = value" lines: those are a frame's arguments.
                rest.append((stripped[i], ""))
    elif any(line.startswith(_TRACEBACK_HEADER) for line in raw):
        # A plain Python traceback: indented lines are frames and source.
        for i, line in enumerate(raw):
            if line and not line[0].isspace() and not line.startswith(_TRACEBACK_HEADER):
                decisive.append((stripped[i], _previous(stripped, i)))
    else:
        panics: list[tuple[str, str]] = []
        causes: list[tuple[str, str]] = []
        for i, line in enumerate(raw):
            if line.startswith("goroutine ") and _GO_STACK.match(line):
                break  # a Go panic's goroutine dump: frames only from here on
            if "panic: " in line and _GO_PANIC.match(line):
                panics.append((stripped[i], ""))
            elif "[cause]: " in line and _NODE_CAUSE.match(line):
                causes.append((stripped[i], ""))
            elif stripped[i] and not _is_frame(line) and not _GO_NOISE.match(line):
                decisive.append((stripped[i], _previous(stripped, i)))
        # A panic's message is the failure; what the test logged before it is context.
        decisive.extend(causes)
        decisive.extend(reversed(panics))
    decisive.reverse()
    rest.reverse()
    return decisive, rest


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


def _builtin(text: _FailureText) -> Diagnosis:
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
            return Diagnosis(_FC.UNKNOWN, _clip(tier[0][0]))
    return Diagnosis(_FC.UNKNOWN, _clip(text.test.outcome.value))


def _evidence(line: str, previous: str, span: tuple[int, int]) -> str:
    """The line, with its other half when it is the actual value of an expected/actual
    pair ("Expected: 200 Received: 503")."""
    if previous and len(line) < 60 and _ACTUAL_LINE.match(line) and "expect" in previous.lower():
        return _clip(f"{previous} {line}", len(previous) + 1 + span[0])
    return _clip(line, span[0])


def _clip(line: str, at: int | None = None) -> str:
    """At most MAX_EVIDENCE characters of the line, keeping the part that matched from
    ``at`` on."""
    line = line.strip()
    if len(line) <= MAX_EVIDENCE:
        return line
    start = 0
    if at is not None:
        start = max(0, min(at - MAX_EVIDENCE // 4, len(line) - MAX_EVIDENCE + 2))
    clipped = line[start : start + MAX_EVIDENCE - 2]
    return ("…" if start else "") + clipped + ("…" if start + len(clipped) < len(line) else "")
