"""A failure's text sorted into the tiers of evidence :mod:`greenloop.core.classify`
lists, most decisive first: the message, the exception lines of the details, their other
non-source lines, then the captured output. Source lines, stack frames and jest code
frames are never evidence. Evidence is at most MAX_EVIDENCE characters of a line
(:func:`clip`).
"""

from __future__ import annotations

from collections.abc import Iterator

from greenloop.core.model import TestResult
from greenloop.core.regex import compile as _re

__all__ = ["MAX_EVIDENCE", "FailureText", "clip", "nonblank_lines"]

MAX_EVIDENCE = 200


def nonblank_lines(text: str) -> Iterator[str]:
    """The lines of ``text``, stripped, blank ones left out."""
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


class FailureText:
    """A failure's lines, sorted into tiers (see the module docstring). Each entry is the
    line and the line before it, which may hold the other half of an expected/actual pair."""

    def __init__(self, test: TestResult) -> None:
        self.test = test
        self.message = [(line, "") for line in nonblank_lines(test.message)]
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
        yield from nonblank_lines(self.test.message)
        yield from reversed(list(nonblank_lines(self.test.details)))
        yield from reversed(list(nonblank_lines(self.test.output)))


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


def clip(line: str, at: int | None = None) -> str:
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
