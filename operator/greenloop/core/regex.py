"""Linear-time regular expressions: every pattern greenloop runs on test output.

Failure text is outside input (a test can print anything), and classification rules are
user input, so a backtracking engine is one crafted line away from a hang:
``(a+)+$`` against 41 characters, or a chain of optional ``\\s*`` against 4,000 spaces.
RE2 (``google-re2``) matches in time linear in the text, for any pattern; its syntax is
also what CEL's ``matches()`` speaks on the API server, so a pattern the CRD accepts is
one greenloop can run. RE2 has no backreferences and no lookarounds: a pattern that uses
them is refused when it is compiled (``greenloop validate`` names the rule).

Differences from Python's ``re`` worth knowing: ``\\b``, ``\\w``, ``\\d`` and ``\\s`` are
ASCII-only, and ``$`` matches only at the very end of the text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import re2

__all__ = ["Match", "Pattern", "RegexError", "RegexTooLarge", "compile"]


class Match(Protocol):
    def span(self, group: int | str = 0) -> tuple[int, int]: ...
    def start(self, group: int | str = 0) -> int: ...
    def end(self, group: int | str = 0) -> int: ...
    def group(self, group: int | str = 0, /) -> str | None: ...


class Pattern(Protocol):
    @property
    def pattern(self) -> str: ...
    @property
    def groupindex(self) -> Mapping[str, int]: ...
    def search(self, text: str, pos: int | None = None) -> Match | None: ...
    def match(self, text: str, pos: int | None = None) -> Match | None: ...
    def fullmatch(self, text: str, pos: int | None = None) -> Match | None: ...
    def finditer(self, text: str, pos: int | None = None) -> Iterator[Match]: ...


class _AsciiMatch:
    """A match in ASCII text, where RE2's byte offsets are character offsets."""

    __slots__ = ("_groupindex", "_spans", "_text")

    def __init__(self, text: str, spans: Sequence[tuple[int, int]], groupindex: Mapping[str, int]):
        self._text, self._spans, self._groupindex = text, spans, groupindex

    def _index(self, group: int | str) -> int:
        return self._groupindex[group] if isinstance(group, str) else group

    def span(self, group: int | str = 0) -> tuple[int, int]:
        return self._spans[self._index(group)]

    def start(self, group: int | str = 0) -> int:
        return self._spans[self._index(group)][0]

    def end(self, group: int | str = 0) -> int:
        return self._spans[self._index(group)][1]

    def group(self, group: int | str = 0, /) -> str | None:
        start, end = self._spans[self._index(group)]
        return None if start == -1 else self._text[start:end]


class _Pattern:
    """google-re2's pattern with a fast path for ASCII text from the start: its Python
    wrapper spends ~6 µs a call mapping character offsets, more than the match itself,
    and the classifier asks several patterns about every line."""

    __slots__ = ("_regexp", "_wrapped", "groupindex", "pattern")

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped
        self._regexp = wrapped._regexp
        self.pattern: str = wrapped.pattern
        self.groupindex: Mapping[str, int] = dict(wrapped.groupindex)

    # Each method inlines the fast path: a call saved per line is measurable here.
    def search(self, text: str, pos: int | None = None) -> Match | None:
        if pos is None:
            try:
                data = text.encode("ascii")
            except UnicodeEncodeError:
                pass
            else:
                spans = self._regexp.Match(_UNANCHORED, data, 0, len(data))
                return None if spans[0][0] == -1 else _AsciiMatch(text, spans, self.groupindex)
        result: Match | None = self._wrapped.search(text, pos)
        return result

    def match(self, text: str, pos: int | None = None) -> Match | None:
        if pos is None:
            try:
                data = text.encode("ascii")
            except UnicodeEncodeError:
                pass
            else:
                spans = self._regexp.Match(_ANCHOR_START, data, 0, len(data))
                return None if spans[0][0] == -1 else _AsciiMatch(text, spans, self.groupindex)
        result: Match | None = self._wrapped.match(text, pos)
        return result

    def fullmatch(self, text: str, pos: int | None = None) -> Match | None:
        if pos is None:
            try:
                data = text.encode("ascii")
            except UnicodeEncodeError:
                pass
            else:
                spans = self._regexp.Match(_ANCHOR_BOTH, data, 0, len(data))
                return None if spans[0][0] == -1 else _AsciiMatch(text, spans, self.groupindex)
        result: Match | None = self._wrapped.fullmatch(text, pos)
        return result

    def finditer(self, text: str, pos: int | None = None) -> Iterator[Match]:
        if pos is None:
            try:
                data = text.encode("ascii")
            except UnicodeEncodeError:
                pass
            else:
                return self._ascii_finditer(text, data)
        result: Iterator[Match] = self._wrapped.finditer(text, pos)
        return result

    def _ascii_finditer(self, text: str, data: bytes) -> Iterator[Match]:
        # google-re2's own loop over bytes, step for step (an empty match moves on by one).
        pos, end = 0, len(data)
        while True:
            spans = self._regexp.Match(_UNANCHORED, data, pos, end)
            if spans[0][0] == -1:
                return
            yield _AsciiMatch(text, spans, self.groupindex)
            if pos == end:
                return
            pos = pos + 1 if pos == spans[0][1] else spans[0][1]


_ANCHOR = getattr(getattr(getattr(re2, "_re2", None), "RE2", None), "Anchor", None)
_UNANCHORED = getattr(_ANCHOR, "UNANCHORED", None)
_ANCHOR_START = getattr(_ANCHOR, "ANCHOR_START", None)
_ANCHOR_BOTH = getattr(_ANCHOR, "ANCHOR_BOTH", None)
# The fast path uses google-re2's internals; without them, its wrapper as it is.
_FAST = None not in (_UNANCHORED, _ANCHOR_START, _ANCHOR_BOTH)


class RegexError(ValueError):
    """A pattern RE2 cannot compile; ``str()`` is RE2's reason."""


class RegexTooLarge(RegexError):
    """A pattern whose compiled program needs more memory than its ``max_mem``."""


def compile(pattern: str, *, ignore_case: bool = False, max_mem: int | None = None) -> Pattern:
    """The pattern, compiled for RE2. Raises RegexError with RE2's reason, RegexTooLarge
    when it needs more than ``max_mem`` bytes (None: RE2's default, 8 MiB).

    ``max_mem`` bounds everything RE2 allocates for the pattern: the program (up to two
    thirds of it), the reversed program and the DFA caches it fills while matching (it
    falls back to its NFA, still linear, when they are full). Not cached here: google-re2's
    own ``re2.compile`` keeps the last 128 patterns, up to 1 GiB at RE2's default
    ``max_mem``, which is how 200 user rules once took the operator to 1.13 GiB; callers
    keep what they compile (``classify.compile_rules``: a cache bounded in bytes)."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.case_sensitive = not ignore_case
    if max_mem is not None:
        options.max_mem = max_mem
    make = getattr(re2, "_Regexp", None)  # the uncached constructor behind re2.compile
    try:
        compiled: Pattern = make(pattern, options) if make else re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        if "pattern too large" in str(reason):
            raise RegexTooLarge(str(reason)) from None
        raise RegexError(str(reason)) from None
    if _FAST and hasattr(compiled, "_regexp"):
        return _Pattern(compiled)
    return compiled
