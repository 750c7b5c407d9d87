"""Dependent failures: a test that failed or was skipped because another test did not pass.

Three ways to tell: the runner's skip message names the dependency (greenloop's pytest
plugin, pytest-dependency, TestNG); the test declares ``depends_on`` and one of those
failed in the same run; or a Go parent test says nothing of its own while its subtests
failed. The root is a failing test's id: a name as written (often a short name such as
``test_login``) is resolved among the ids that failed in the same run.
"""

from __future__ import annotations

from collections.abc import Collection

from greenloop.core.classify_text import FailureText, clip, nonblank_lines
from greenloop.core.model import Diagnosis, FailureClass, TestResult
from greenloop.core.regex import compile as _re

__all__ = [
    "dependency_failure",
    "dependency_skip",
    "failing_dependency",
    "skipped_for_dependency",
    "subtest_failure",
]

_FC = FailureClass

# greenloop's pytest plugin: "greenloop: depends on <id>, which did not pass".
_GREENLOOP_DEPENDENCY = _re(r"greenloop: depends on (?P<id>.+?), which did not pass")
# pytest-dependency skips with "<nodeid> depends on <name>", the whole message.
_PYTEST_DEPENDENCY = _re(r"(?P<test>\S+) depends on (?P<id>\S+)")
# TestNG, through Surefire: the method is skipped, the dependency is not named.
_TESTNG_DEPENDENCY = _re(r"depends on not successfully finished methods", ignore_case=True)


def dependency_skip(test: TestResult) -> tuple[str, str] | None:
    """The message line that says ``test`` was skipped for a dependency, and the
    dependency's name ("" when the runner does not say)."""
    for line in nonblank_lines(test.message):
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


def skipped_for_dependency(test: TestResult, failing_ids: Collection[str]) -> Diagnosis | None:
    """Dependent, when the test's message says it did not run for a dependency."""
    found = dependency_skip(test)
    if found is None:
        return None
    line, name = found
    return Diagnosis(_FC.DEPENDENT, clip(line), _root(test, name, failing_ids))


def dependency_failure(test: TestResult, failing_ids: Collection[str]) -> Diagnosis | None:
    """A failed (not skipped) test is Dependent when its message says so, or when a test
    it declares it depends on failed in the same run."""
    skipped = skipped_for_dependency(test, failing_ids)
    if skipped is not None:
        return skipped
    root = failing_dependency(test, failing_ids)
    if root is not None:
        return Diagnosis(_FC.DEPENDENT, clip(f"depends on {root}, which failed"), root)
    return None


def _root(test: TestResult, name: str, failing_ids: Collection[str]) -> str | None:
    """The test a dependency line names (as written when no failing test matches it);
    when the line names none (TestNG), the declared dependency that failed."""
    if name:
        return _resolve(name, test.id, failing_ids)
    return failing_dependency(test, failing_ids)


def failing_dependency(test: TestResult, failing_ids: Collection[str]) -> str | None:
    for name in test.depends_on:
        root = _resolve(name, test.id, failing_ids)
        if root in failing_ids and root != test.id:
            return root
    return None


def subtest_failure(
    test: TestResult, text: FailureText, failing_ids: Collection[str]
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
    return Diagnosis(_FC.DEPENDENT, clip(f"its subtest {leaves[0]} failed{more}"), leaves[0])


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
