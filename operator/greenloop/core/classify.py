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

import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

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
    "OBJECT_RULES_BYTES",
    "RULES_TOO_LARGE",
    "RULE_MAX_MEM",
    "RULE_MEM_STEPS",
    "TOTAL_RULES_BYTES",
    "CompiledRules",
    "FailingIds",
    "RuleError",
    "compile_rule",
    "compile_rules",
    "diagnose",
    "diagnose_batch",
    "is_failing",
    "rule_errors",
]

_FC = FailureClass


# Memory of compiled user rules (docs/design.md §1, "Classification rules"). RE2's
# ``max_mem`` bounds all one pattern allocates (program, reversed program, DFA caches);
# a rule is compiled with the smallest step that fits it and charged that step, so a
# set's charge is an upper bound on its memory, not an estimate.
# Below 256 KiB RE2's DFA cache fills and resets on ordinary patterns (a search took 6x
# as long at 64 KiB); above 1 MiB a pattern is a program per counted repetition.
RULE_MEM_STEPS = (256 << 10, 1 << 20)
RULE_MAX_MEM = RULE_MEM_STEPS[-1]  # a pattern that needs more is refused
OBJECT_RULES_BYTES = 32 << 20  # one object's rules, summed (the CRD's 100 plain: 25 MiB)
TOTAL_RULES_BYTES = 128 << 20  # every rule set kept compiled; least recently used out
#: The stall reason of a rule or a set of rules over these limits.
RULES_TOO_LARGE = "RulesTooLarge"


class RuleError(ValueError):
    """A user classification rule that cannot be used; the message names the rule.

    ``field`` is the rule's field at fault (``pattern`` or ``class``), so that
    ``greenloop validate`` can name ``spec.classification[i].<field>``; ``index`` is
    the rule's place in its list (None: the set as a whole); ``too_large`` marks a
    memory limit rather than a mistake in the rule (reason ``RulesTooLarge``)."""

    def __init__(
        self, message: str, field: str = "pattern", *, index: int | None = None,
        too_large: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.field = field
        self.index = index
        self.too_large = too_large


@dataclass(frozen=True)
class CompiledRules:
    rules: tuple[tuple[regex.Pattern, FailureClass], ...] = ()
    bytes: int = 0  # the RE2 max_mem granted its patterns, summed: a bound on its memory


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def compile_rule(rule: Rule) -> tuple[regex.Pattern, FailureClass]:
    """One user rule, compiled the way :func:`diagnose` runs it. Raises RuleError with a
    message that does not name the rule (the caller knows where it is)."""
    pattern, failure_class, _ = _compile_rule(rule)
    return pattern, failure_class


def _compile_rule(rule: Rule) -> tuple[regex.Pattern, FailureClass, int]:
    """The rule compiled with the smallest ``max_mem`` step it fits in, and that step."""
    try:
        failure_class = FailureClass(rule.failure_class)
    except ValueError:
        raise RuleError(f"unknown class {rule.failure_class!r}", "class") from None
    if failure_class is FailureClass.RUNNER_ERROR:
        raise RuleError("RunnerError describes a suite, not a test failure", "class")
    if not rule.pattern:
        raise RuleError("the pattern is empty")
    for max_mem in RULE_MEM_STEPS:
        try:
            pattern = _re(rule.pattern, ignore_case=True, max_mem=max_mem)
            break
        except regex.RegexTooLarge:
            continue
        except regex.RegexError as err:
            raise RuleError(
                f"{rule.pattern!r} is not a regular expression RE2 accepts ({err}); RE2 has no"
                " backreferences or lookarounds (syntax: https://github.com/google/re2/wiki/Syntax)"
            ) from None
    else:
        shown = rule.pattern if len(rule.pattern) <= 60 else rule.pattern[:57] + "..."
        raise RuleError(
            f"pattern {shown!r} needs more memory compiled than a rule may take (RE2 max_mem"
            f" {_mib(RULE_MAX_MEM)}): large counted repetitions such as \\pL{{150}} compile to"
            " a program per repetition",
            too_large=True,
        )
    if pattern.search("") is not None:
        raise RuleError(
            f"pattern {rule.pattern!r} matches an empty line, so it would match every failure"
        )
    return pattern, failure_class, max_mem


def compile_rules(rules: Sequence[Rule]) -> CompiledRules:
    """The user's rules, compiled once per distinct list (the engine asks on every batch,
    spec validation on every tick). Raises the first rule's RuleError, its message
    naming ``classification[i]``."""
    compiled = _SETS.get(tuple(rules))
    if isinstance(compiled, CompiledRules):
        return compiled
    first = compiled[0]
    where = f"classification[{first.index}]: " if first.index is not None else "classification: "
    raise RuleError(f"{where}{first}", first.field, index=first.index, too_large=first.too_large)


def rule_errors(rules: Sequence[Rule]) -> tuple[RuleError, ...]:
    """Every problem with the rules (each naming its ``index``), or the set's charge
    over ``OBJECT_RULES_BYTES``; () when they compile. Cached as compile_rules is."""
    compiled = _SETS.get(tuple(rules))
    return () if isinstance(compiled, CompiledRules) else compiled


def _compile_set(rules: tuple[Rule, ...]) -> CompiledRules | tuple[RuleError, ...]:
    """The rules compiled, or every rule's problem; compiling stops as soon as the set
    takes more than ``OBJECT_RULES_BYTES``, so a set over it costs no more memory or
    time than the budget does."""
    compiled: list[tuple[regex.Pattern, FailureClass]] = []
    errors: list[RuleError] = []
    charge = 0
    for index, rule in enumerate(rules):
        try:
            pattern, failure_class, max_mem = _compile_rule(rule)
        except RuleError as err:
            errors.append(RuleError(str(err), err.field, index=index, too_large=err.too_large))
            continue
        compiled.append((pattern, failure_class))
        charge += max_mem
        if charge > OBJECT_RULES_BYTES:
            message = (
                f"the first {index + 1} of {len(rules)} rules take {_mib(charge)} compiled"
                f" (RE2 max_mem, summed); an object's rules may take at most"
                f" {_mib(OBJECT_RULES_BYTES)}: use fewer or simpler patterns"
            )
            return (*errors, RuleError(message, "", too_large=True))
    if errors:
        return tuple(errors)
    return CompiledRules(tuple(compiled), charge)


class _RuleSets:
    """Compiled rule sets by their rules, least recently used out first once the sets
    kept take more than ``limit`` bytes (their ``CompiledRules.bytes``). A set evicted
    while a classification still holds it is freed when that ends; the next use
    compiles it again (in a worker thread in the operator: k8s/offload.py)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._sets: OrderedDict[tuple[Rule, ...], CompiledRules | tuple[RuleError, ...]]
        self._sets = OrderedDict()
        self._lock = threading.Lock()  # two worker threads and the loop may ask at once

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()
            self.held = 0

    @staticmethod
    def _cost(entry: CompiledRules | tuple[RuleError, ...]) -> int:
        return entry.bytes if isinstance(entry, CompiledRules) else 1024

    def get(self, rules: tuple[Rule, ...]) -> CompiledRules | tuple[RuleError, ...]:
        with self._lock:
            entry = self._sets.get(rules)
            if entry is not None:
                self._sets.move_to_end(rules)
                return entry
        entry = _compile_set(rules)  # outside the lock: compiling may take a second
        with self._lock:
            if rules not in self._sets:
                self._sets[rules] = entry
                self.held += self._cost(entry)
            while self.held > self.limit and len(self._sets) > 1:
                _, old = self._sets.popitem(last=False)
                self.held -= self._cost(old)
        return entry


_SETS = _RuleSets(TOTAL_RULES_BYTES)


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
