"""Dependent failures: a test that failed or was skipped because another test did not pass.

Three ways to tell: the runner's skip message names the dependency (greenloop's pytest
plugin, pytest-dependency, TestNG); the test declares ``depends_on`` and one of those
failed in the same run; or a Go parent test says nothing of its own while its subtests
failed. The root is a failing test's id: a name as written (often a short name such as
``test_login``) is resolved among the ids that failed in the same run.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Iterable, Iterator

from greenloop.core.classify_text import FailureText, clip, nonblank_lines
from greenloop.core.model import Diagnosis, FailureClass, TestResult
from greenloop.core.regex import compile as _re

__all__ = [
    "FailingIds",
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


def skipped_for_dependency(test: TestResult, failing_ids: FailingIds) -> Diagnosis | None:
    """Dependent, when the test's message says it did not run for a dependency."""
    found = dependency_skip(test)
    if found is None:
        return None
    line, name = found
    return Diagnosis(_FC.DEPENDENT, clip(line), _root(test, name, failing_ids))


def dependency_failure(test: TestResult, failing_ids: FailingIds) -> Diagnosis | None:
    """A failed (not skipped) test is Dependent when its message says so, or when a test
    it declares it depends on failed in the same run."""
    skipped = skipped_for_dependency(test, failing_ids)
    if skipped is not None:
        return skipped
    root = failing_dependency(test, failing_ids)
    if root is not None:
        return Diagnosis(_FC.DEPENDENT, clip(f"depends on {root}, which failed"), root)
    return None


def _root(test: TestResult, name: str, failing_ids: FailingIds) -> str | None:
    """The test a dependency line names (as written when no failing test matches it);
    when the line names none (TestNG), the declared dependency that failed."""
    if name:
        return failing_ids.resolve(name, test.id)
    return failing_dependency(test, failing_ids)


def failing_dependency(test: TestResult, failing_ids: FailingIds) -> str | None:
    for name in test.depends_on:
        root = failing_ids.resolve(name, test.id)
        if root in failing_ids and root != test.id:
            return root
    return None


def subtest_failure(
    test: TestResult, text: FailureText, failing_ids: FailingIds
) -> Diagnosis | None:
    """A Go parent test that says nothing of its own failed only because its subtests did
    (``pkg::TestOrders`` with ``pkg::TestOrders/create`` failing): Dependent on the
    deepest failing subtest, which is where the evidence is."""
    if any(text.tiers()):
        return None
    leaves = failing_ids.leaves_below(test.id)
    if not leaves:
        return None
    deepest = min(leaves, key=lambda other: (-other.count("/"), other))
    more = f", and {len(leaves) - 1} more" if len(leaves) > 1 else ""
    return Diagnosis(_FC.DEPENDENT, clip(f"its subtest {deepest} failed{more}"), deepest)


class _Many:
    """More than one: a dependency name that stays ambiguous."""


_MANY = _Many()


class FailingIds(Collection[str]):
    """The ids of the tests that failed in a run, with the two questions the classifier
    asks of them answered from sorted indexes, each built once, on first use: which
    failing ids are below a Go test (``pkg::TestOrders/...``), and which one a short
    dependency name stands for. Asked of a plain set, each message-less failure and each
    unresolved name scanned every failing id: 8k such tests took 19 s, quadratic."""

    __slots__ = ("_ids", "_names", "_reversed", "_sorted")

    def __init__(self, ids: Iterable[str]) -> None:
        self._ids = frozenset(ids)
        self._sorted: list[str] | None = None
        # (the id, or its part before "[", reversed; the id), sorted: a suffix is a prefix.
        self._reversed: tuple[list[str], list[str]] | None = None
        self._names: dict[str, list[str]] = {}  # name -> the ids it is a suffix of, sorted

    @classmethod
    def of(cls, ids: Collection[str]) -> FailingIds:
        return ids if isinstance(ids, FailingIds) else cls(ids)

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def leaves_below(self, test_id: str) -> list[str]:
        """The failing ids under ``test_id + "/"`` that have no failing id under them."""
        if self._sorted is None:
            self._sorted = sorted(self._ids)
        ids = self._sorted
        lo, hi = _starting_with(ids, test_id + "/")
        return [other for other in ids[lo:hi] if not _any_starts_with(ids, other + "/")]

    def resolve(self, name: str, own_id: str) -> str:
        """The failing test ``name`` refers to: itself if it is a full id, else the one
        failing id it is a suffix of (``test_login`` -> ``tests/e2e/test_auth.py::test_login``),
        preferring the dependent test's own module. Unresolvable names stay as written."""
        if name in self._ids:
            return name
        candidates = self._names.get(name)
        if candidates is None:
            candidates = self._names[name] = self._ending_with(name)
        found = _only_other(candidates, 0, len(candidates), own_id)
        if found is _MANY:  # ambiguous: only one in the dependent's own module will do
            module = own_id.rsplit("::", 1)[0] + "::"
            found = _only_other(candidates, *_starting_with(candidates, module), own_id)
        return found if isinstance(found, str) else name

    def _ending_with(self, name: str) -> list[str]:
        """The failing ids that end with ``::name``, ``/name`` or ``.name``, or whose part
        before a ``[`` does, sorted."""
        if self._reversed is None:
            pairs = sorted(
                (key[::-1], test_id)
                for test_id in self._ids
                for key in dict.fromkeys((test_id, test_id.partition("[")[0]))
            )
            self._reversed = [key for key, _ in pairs], [test_id for _, test_id in pairs]
        keys, ids = self._reversed
        found: set[str] = set()
        for separator in ("::", "/", "."):  # each reads the same reversed
            lo, hi = _starting_with(keys, name[::-1] + separator)
            found.update(ids[lo:hi])
        return sorted(found)


def _starting_with(ordered: list[str], prefix: str) -> tuple[int, int]:
    """The slice of a sorted list whose strings start with ``prefix`` (not empty)."""
    after = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # its last character is ASCII
    return bisect_left(ordered, prefix), bisect_left(ordered, after)


def _any_starts_with(ordered: list[str], prefix: str) -> bool:
    at = bisect_left(ordered, prefix)
    return at < len(ordered) and ordered[at].startswith(prefix)


def _only_other(ordered: list[str], lo: int, hi: int, own_id: str) -> str | _Many | None:
    """The one string of ``ordered[lo:hi]`` that is not ``own_id`` (the list holds each
    string once); None when there is none, _MANY when there are more."""
    others = [other for other in ordered[lo : min(hi, lo + 3)] if other != own_id]
    if len(others) > 1:
        return _MANY
    return others[0] if others else None
