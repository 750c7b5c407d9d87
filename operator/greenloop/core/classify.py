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

This module holds the user's rules and the order of the decision; the parts live beside
it: :mod:`~greenloop.core.classify_text` (the text in tiers, evidence),
:mod:`~greenloop.core.classify_dependencies` (Dependent and its root) and
:mod:`~greenloop.core.classify_builtin` (the built-in classes' rule tables).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from greenloop.core import regex
from greenloop.core.classify_builtin import builtin_diagnosis
from greenloop.core.classify_dependencies import (
    FailingIds,
    dependency_failure,
    dependency_skip,
    failing_dependency,
    skipped_for_dependency,
    subtest_failure,
)
from greenloop.core.classify_text import MAX_EVIDENCE, FailureText, clip
from greenloop.core.model import Diagnosis, FailureClass, Outcome, Rule, TestResult
from greenloop.core.regex import compile as _re

__all__ = [
    "MAX_EVIDENCE",
    "CompiledRules",
    "FailingIds",
    "RuleError",
    "compile_rule",
    "compile_rules",
    "diagnose",
    "diagnose_batch",
    "is_failing",
]

_FC = FailureClass


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
    return test.outcome is Outcome.SKIPPED and dependency_skip(test) is not None


def diagnose(
    test: TestResult,
    rules: CompiledRules | None = None,
    *,
    failing_ids: Collection[str] = (),
) -> Diagnosis | None:
    """Why ``test`` did not pass, or None when it passed or is an ordinary skip.

    ``failing_ids`` are the ids of the tests that failed in the same run: they turn a
    dependency named in a message (often a short name such as ``test_login``) into the
    root test's id, and make a test whose ``depends_on`` names one of them Dependent.
    Diagnosing a run's tests one by one, pass a :class:`FailingIds` (diagnose_batch
    does): its indexes are built once instead of once per test."""
    if test.outcome is Outcome.PASSED:
        return None
    failing = FailingIds.of(failing_ids)
    if test.outcome is Outcome.SKIPPED:
        return skipped_for_dependency(test, failing)
    if not test.is_failure:
        return None

    text = FailureText(test)
    if rules is not None:
        for pattern, failure_class in rules.rules:
            for line in text.all_lines():
                match = pattern.search(line)
                if match:
                    root = None
                    if failure_class is _FC.DEPENDENT:
                        root = failing_dependency(test, failing)
                    return Diagnosis(failure_class, clip(line, match.start()), root)

    dependency = dependency_failure(test, failing)
    if dependency is not None:
        return dependency
    subtests = subtest_failure(test, text, failing)
    if subtests is not None:
        return subtests
    return builtin_diagnosis(text)


def diagnose_batch(
    tests: Iterable[TestResult],
    rules: CompiledRules | None = None,
    *,
    failing_ids: Collection[str] = (),
) -> list[tuple[TestResult, Diagnosis | None]]:
    """Diagnose the results of one run together, so a Dependent finds its root among
    them (and among ``failing_ids``, the tests already known to fail)."""
    batch = list(tests)
    known = FailingIds([*failing_ids, *(t.id for t in batch if is_failing(t))])
    return [(t, diagnose(t, rules, failing_ids=known)) for t in batch]
