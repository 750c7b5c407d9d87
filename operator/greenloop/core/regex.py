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

from collections.abc import Iterator, Mapping
from typing import Protocol

import re2

__all__ = ["Match", "Pattern", "RegexError", "compile"]


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


class RegexError(ValueError):
    """A pattern RE2 cannot compile; ``str()`` is RE2's reason."""


def compile(pattern: str, *, ignore_case: bool = False) -> Pattern:
    """The pattern, compiled for RE2. Raises RegexError with RE2's reason."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.case_sensitive = not ignore_case
    try:
        compiled: Pattern = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None
    return compiled
