"""Classifier rules that survived ``make mutate`` before these rows (core/classify.py).

Each row states a rule of the module docstring as a user sees it: the class, the evidence
line and the root cause ``diagnose`` returns. Where a surviving mutant is equivalent (it
cannot change any result), README "Mutation testing" says so instead of a row here.
"""

from __future__ import annotations

import pytest

from greenloop.core import classify, classify_builtin, classify_dependencies, classify_text
from greenloop.core.classify import RuleError, compile_rule, compile_rules, diagnose
from greenloop.core.model import Diagnosis, FailureClass, Outcome, Rule, TestResult

FC = FailureClass


def failed(
    message: str = "",
    details: str = "",
    output: str = "",
    *,
    test_id: str = "t",
    outcome: Outcome = Outcome.FAILED,
    depends_on: tuple[str, ...] = (),
) -> TestResult:
    return TestResult(
        id=test_id,
        name=test_id,
        classname="",
        outcome=outcome,
        message=message,
        details=details,
        output=output,
        depends_on=depends_on,
    )


def diagnosed(test: TestResult, failing_ids: set[str] | None = None) -> Diagnosis:
    found = diagnose(test, failing_ids=failing_ids if failing_ids is not None else {test.id})
    assert found is not None
    return found


# ---------------------------------------------------------------------------
# The captured output is read last, and for the same evidence as the details

OUTPUT_ROWS = [
    ("an assertion only in the output", "log line\nassert total == 3\n", FC.ASSERTION,
     "assert total == 3"),
    ("an expected/actual pair in the output", "Expected: 200\nReceived: 503\n",
     FC.SERVICE_UNAVAILABLE, "Expected: 200 Received: 503"),
    ("the other half one blank line up", "Expected: 200\n\nReceived: 503\n",
     FC.SERVICE_UNAVAILABLE, "Expected: 200 Received: 503"),
    ("the other half is at most two lines up", "Expected: 200\n\n\nReceived: 503\n",
     FC.SERVICE_UNAVAILABLE, "Received: 503"),
    ("a pair only when the line above expects", "\nReceived: 503\nExpected: 200\n",
     FC.SERVICE_UNAVAILABLE, "Received: 503"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("output", "cls", "evidence"),
    [row[1:] for row in OUTPUT_ROWS],
    ids=[row[0] for row in OUTPUT_ROWS],
)
def test_evidence_from_the_output(output: str, cls: FailureClass, evidence: str) -> None:
    assert diagnosed(failed(output=output)) == Diagnosis(cls, evidence)


def test_a_60_character_actual_line_is_no_half_of_a_pair() -> None:
    actual = "Received: 503 from http://shop.internal/api/orders?page=1234"
    assert len(actual) == 60
    found = diagnosed(failed(details=f"Expected: 200\n{actual}"))
    assert found == Diagnosis(FC.SERVICE_UNAVAILABLE, actual)
    shorter = actual[:-1]
    found = diagnosed(failed(details=f"Expected: 200\n{shorter}"))
    assert found == Diagnosis(FC.SERVICE_UNAVAILABLE, f"Expected: 200 {shorter}")


# ---------------------------------------------------------------------------
# Long lines are clipped around what matched, wherever the line came from

FILLER = "x" * 250


@pytest.mark.parametrize(
    ("test", "cls", "kept"),
    [
        (failed(message=f"{FILLER} AssertionError: boom"), FC.ASSERTION, "AssertionError: boom"),
        (failed(output=f"{FILLER} connection refused"), FC.CONNECTION_ERROR, "connection refused"),
        (failed(output=f"{FILLER} assert a == b"), FC.ASSERTION, "assert a == b"),
        # The status code decides, and it is what the clip keeps, not the words before it.
        (
            failed(message=f"Service Unavailable: {FILLER} HTTP 503"),
            FC.SERVICE_UNAVAILABLE,
            "HTTP 503",
        ),
        (
            failed(details=f"Expected: 200 {FILLER}\nReceived: 503"),
            FC.SERVICE_UNAVAILABLE,
            "Received: 503",
        ),
    ],
    ids=["message", "output, strong class", "output, assertion", "status span", "pair"],
)
def test_long_lines_are_clipped_around_the_match(
    test: TestResult, cls: FailureClass, kept: str
) -> None:
    found = diagnosed(test)
    assert found.failure_class is cls
    assert len(found.evidence) <= 200
    assert found.evidence.startswith("…")
    assert kept in found.evidence


# ---------------------------------------------------------------------------
# HTTP status codes

STATUS_ROWS = [
    ("a 2xx before the error code on one line", "HTTP 200 first, then HTTP 503",
     FC.SERVICE_UNAVAILABLE),
    ("a duration is no status", "status 503ms", FC.UNKNOWN),
    ("a duration, then a status", "status 503ms, then status 503", FC.SERVICE_UNAVAILABLE),
    ("the first error code wins, even unmapped", "HTTP 400 first, then HTTP 503", FC.UNKNOWN),
    ("expected a count, then a comparison", "expected 3 items, got 503: assert 503 == 200",
     FC.SERVICE_UNAVAILABLE),
    ("an ok code compared with an error", "assert 200 == 503", FC.SERVICE_UNAVAILABLE),
    ("two error codes compared are no status", "assert 400 == 503", FC.ASSERTION),
    ("two error codes compared, the other way", "assert 503 == 400", FC.ASSERTION),
    ("a 399 compared with an error", "assert 399 == 503", FC.SERVICE_UNAVAILABLE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("message", "cls"), [row[1:] for row in STATUS_ROWS], ids=[row[0] for row in STATUS_ROWS]
)
def test_http_status_in_context(message: str, cls: FailureClass) -> None:
    assert diagnosed(failed(message)).failure_class is cls


def test_a_playwright_expect_timeout_does_not_hide_a_server_error() -> None:
    message = "Timed out waiting for expect(locator).toBeVisible(); internal server error"
    assert diagnosed(failed(message)).failure_class is FC.SERVER_ERROR


# ---------------------------------------------------------------------------
# Dependencies named in a failure's message, and how a name finds its test


def test_a_failed_test_whose_message_names_its_dependency() -> None:
    test = failed(
        "greenloop: depends on test_login, which did not pass", test_id="tests/t_b.py::test_x"
    )
    ids = {"tests/t_a.py::test_login", "tests/t_b.py::test_login", test.id}
    assert diagnosed(test, ids) == Diagnosis(
        FC.DEPENDENT,
        "greenloop: depends on test_login, which did not pass",
        "tests/t_b.py::test_login",  # two tests of that name: the one in its own module
    )


def test_a_dependency_the_runner_does_not_name_comes_from_depends_on() -> None:
    message = "Method test_x depends on not successfully finished methods"
    test = failed(message, depends_on=("login",))
    assert diagnosed(test, {"login", "t"}) == Diagnosis(FC.DEPENDENT, message, "login")


def test_a_pytest_dependency_skip_with_a_quoted_name() -> None:
    test = failed("tests/t.py::test_b depends on 'test_a'", outcome=Outcome.SKIPPED)
    found = diagnosed(test, {"tests/t.py::test_a"})
    assert found.root_cause == "tests/t.py::test_a"


RESOLVE_ROWS = [
    # (the dependency as named, the failing ids, the dependent's id, the root found)
    ("test_login", {"tests/t.py::test_login[chrome]"}, "tests/t.py::test_x",
     "tests/t.py::test_login[chrome]"),
    ("test_login", {"pkg/auth/test_login"}, "pkg/auth/test_x", "pkg/auth/test_login"),
    ("testLogin", {"com.shop.AuthTest.testLogin"}, "com.shop.OrderTest.testPay",
     "com.shop.AuthTest.testLogin"),
    ("test_login", {"tests/t.py::TestA::test_login", "tests/t.py::TestB::test_login"},
     "tests/t.py::TestB::test_x", "tests/t.py::TestB::test_login"),
    ("test_login", {"tests/a.py::test_login", "tests/b.py::test_login"}, "tests/c.py::test_x",
     "test_login"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "failing", "own", "root"),
    RESOLVE_ROWS,
    ids=["parametrized", "path", "dotted", "same class", "ambiguous stays as written"],
)
def test_a_short_dependency_name_finds_its_test(
    name: str, failing: set[str], own: str, root: str
) -> None:
    test = failed(f"greenloop: depends on {name}, which did not pass", test_id=own)
    assert diagnosed(test, failing | {own}).root_cause == root


# ---------------------------------------------------------------------------
# A Go parent test that failed only through its subtests


@pytest.mark.parametrize(
    ("subtests", "evidence", "root"),
    [
        (
            ["create", "create/big", "list", "a"],
            "its subtest pkg::TestOrders/create/big failed, and 2 more",
            "pkg::TestOrders/create/big",
        ),
        (["list", "a"], "its subtest pkg::TestOrders/a failed, and 1 more", "pkg::TestOrders/a"),
        (["only"], "its subtest pkg::TestOrders/only failed", "pkg::TestOrders/only"),
    ],
    ids=["deepest first", "then by name", "one"],
)
def test_a_parent_test_depends_on_its_deepest_failing_subtest(
    subtests: list[str], evidence: str, root: str
) -> None:
    parent = failed(test_id="pkg::TestOrders")
    ids = {f"pkg::TestOrders/{s}" for s in subtests} | {parent.id, "pkg::TestOther/x"}
    assert diagnosed(parent, ids) == Diagnosis(FC.DEPENDENT, evidence, root)


# ---------------------------------------------------------------------------
# User rules


def test_user_rules_ignore_case() -> None:
    rules = compile_rules([Rule("UPSTREAM Connect", FC.SERVICE_UNAVAILABLE)])
    found = diagnose(failed("upstream connect error or disconnect"), rules)
    assert found is not None
    assert found.failure_class is FC.SERVICE_UNAVAILABLE


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (Rule("x", "NoSuchClass"), "class"),  # type: ignore[arg-type]
        (Rule("x", FC.RUNNER_ERROR), "class"),
        (Rule("", FC.TIMEOUT), "pattern"),
        (Rule("(", FC.TIMEOUT), "pattern"),
    ],
    ids=["unknown class", "RunnerError", "empty pattern", "invalid pattern"],
)
def test_a_bad_rule_names_the_field_at_fault(rule: Rule, field: str) -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule(rule)
    assert caught.value.field == field
    with pytest.raises(RuleError) as caught:
        compile_rules([Rule("fine", FC.TIMEOUT), rule])
    assert caught.value.field == field
    assert str(caught.value).startswith("classification[1]: ")


# ---------------------------------------------------------------------------
# The helpers each rule stands on, held to their own contracts (what the mutation run at
# fef2ecd left alive): each row is what the helper must answer, whatever the patterns.

LINE = "0123456789" * 40  # every position distinct from its neighbours


@pytest.mark.parametrize(
    ("line", "at", "kept"),
    [
        (LINE[:200], None, LINE[:200]),
        (LINE[:200], 150, LINE[:200]),
        (LINE[:201], None, LINE[:198] + "…"),
        (LINE, 100, "…" + LINE[50:248] + "…"),
        (LINE, 300, "…" + LINE[202:]),
        (LINE, 399, "…" + LINE[202:]),
        (LINE, 10, LINE[:198] + "…"),
    ],
    ids=["at the limit", "at the limit, with a match", "one over", "middle: a quarter before",
         "near the end: the end kept", "at the very end", "near the start"],
)  # fmt: skip
def test_evidence_is_clipped_around_where_the_match_starts(
    line: str, at: int | None, kept: str
) -> None:
    assert classify_text.clip(line, at) == kept
    assert len(kept) <= classify.MAX_EVIDENCE


FRAME_ROWS = [
    ("a Java frame", "at com.shop.Checkout.pay(Checkout.java:42)", True),
    ("a JavaScript frame", "    at Object.<anonymous> (/app/cart.test.js:12:5)", True),
    ("a Python frame", '  File "/app/tests/test_cart.py", line 12, in test_total', True),
    ("a Go frame", "\t/src/shop/cart_test.go:33 +0x1d", True),
    ("a code frame", "> 12 |   expect(total).toBe(3)", True),
    ("a code frame's context line", "  11 |   const total = sum(cart)", True),
    ("a number with no bar", "12 items in the cart", False),
    ("an assertion", "AssertionError: assert 'draft' == 'paid'", False),
    ("a status line", "503 Service Unavailable", False),
    ("a Go file named in prose", "see cart_test.go: it fails", False),
    ("no Go frame in upper case", "/src/shop/CART_TEST.GO:33 +0x1d", False),
    ("an empty line", "", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "frame"), [r[1:] for r in FRAME_ROWS], ids=[r[0] for r in FRAME_ROWS]
)
def test_a_stack_frame_is_told_from_a_line_that_says_something(line: str, frame: bool) -> None:
    assert classify_text._is_frame(line) is frame


STATUS_LINES = [
    ("a status", "HTTP 503", 503),
    ("a duration is none", "status 503ms", None),
    ("a duration, then a status", "status 503ms, then status 503", 503),
    ("a decimal, then a status", "HTTP 503.5 then HTTP 502", 502),
    ("an ok code, then an error", "HTTP 200 first, then HTTP 503", 503),
    ("the ok side of a comparison", "assert 200 == 503", 503),
    ("the other side", "assert 503 == 200", 503),
    ("400 counts as an error code", "assert 400 == 200", 400),
    ("399 is no error code", "assert 399 == 200", None),
    ("two error codes", "assert 400 == 503", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "code"), [r[1:] for r in STATUS_LINES], ids=[r[0] for r in STATUS_LINES]
)
def test_the_http_error_status_a_line_reports(line: str, code: int | None) -> None:
    found = classify_builtin._status(line, "")
    assert (found[0] if found else None) == code


@pytest.mark.parametrize(
    ("name", "own", "failing", "root"),
    [
        ("test_login", "b.py::test_x", {"a.py::test_login"}, "a.py::test_login"),
        ("test_login", "b.py::test_x", {"a.py::test_login", "c.py::test_login"}, "test_login"),
        ("test_login", "b.py::test_x", {"a.py::test_login", "b.py::test_login"},
         "b.py::test_login"),
        ("test_a", "t.py::test_b", {"t.py::test_a[x[1]]"}, "t.py::test_a[x[1]]"),
        ("t.py::test_a", "t.py::test_b", {"t.py::test_a"}, "t.py::test_a"),
        ("test_a", "t.py::test_a", {"t.py::test_a"}, "test_a"),
        ("test_z", "t.py::test_b", {"t.py::test_a"}, "test_z"),
        ("test_a", "t.py::test_a", {"s.py::test_a", "t.py::test_a", "t.py::test_a[2]"},
         "t.py::test_a[2]"),
        ("test_a", "t.py::test_b", {"t.py::test_a", "t.py::0test_a", "t.py::x;:test_a"},
         "t.py::test_a"),
    ],
    ids=["one match in another module", "ambiguous elsewhere: as written",
         "ambiguous: its own module's", "a parameter with brackets inside", "a full id",
         "never itself", "no match: as written", "never itself, in its own module either",
         "0test_a does not end with test_a"],
)  # fmt: skip
def test_a_dependency_name_finds_its_test(
    name: str, own: str, failing: set[str], root: str
) -> None:
    assert classify_dependencies.FailingIds(failing).resolve(name, own) == root


def test_a_declared_dependency_by_short_name_finds_the_one_in_its_own_module() -> None:
    test = failed("setup failed", test_id="b.py::test_x", depends_on=("test_login",))
    ids = {"a.py::test_login", "b.py::test_login", test.id}
    assert diagnosed(test, ids) == Diagnosis(
        FC.DEPENDENT, "depends on b.py::test_login, which failed", "b.py::test_login"
    )


def test_a_dependency_line_that_names_no_test_finds_the_declared_one_that_failed() -> None:
    # TestNG names no method; the test's own depends_on does.
    message = "Method depends on not successfully finished methods"
    test = failed(message, test_id="t.checkout", depends_on=("t.login",))
    assert diagnosed(test, {"t.login", test.id}) == Diagnosis(FC.DEPENDENT, message, "t.login")
    skipped = failed(
        message, test_id="t.checkout", depends_on=("t.login",), outcome=Outcome.SKIPPED
    )
    assert diagnosed(skipped, {"t.login"}) == Diagnosis(FC.DEPENDENT, message, "t.login")


@pytest.mark.parametrize(
    ("message", "root"),
    [
        ("retrying\ngreenloop: depends on t.py::test_a, which did not pass", "t.py::test_a"),
        ("t.py::test_b depends on 't.py::test_aX'", "t.py::test_aX"),
        ('t.py::test_b depends on "t.py::test_a"', "t.py::test_a"),
    ],
    ids=["on any line of the message", "quotes stripped, nothing else", "double quotes"],
)
def test_a_skip_for_a_dependency_names_it(message: str, root: str) -> None:
    test = failed(message, test_id="t.py::test_b", outcome=Outcome.SKIPPED)
    found = diagnosed(test, {root})
    assert (found.failure_class, found.root_cause) == (FC.DEPENDENT, root)


@pytest.mark.parametrize(
    ("where", "evidence"),
    [
        # A message is read first line first: its first line says enough.
        ("message", "Expected: 'paid'"),
        # Details and output are read last line first: the actual value, with its other half.
        ("details", "Expected: 'paid' Received: 'draft'"),
        ("output", "Expected: 'paid' Received: 'draft'"),
    ],
)
def test_an_assertion_s_evidence_keeps_its_expected_half(where: str, evidence: str) -> None:
    test = failed(**{where: "Expected: 'paid'\nReceived: 'draft'"})  # type: ignore[arg-type]
    assert diagnosed(test) == Diagnosis(FC.ASSERTION, evidence)


def test_a_go_parent_s_subtests_are_the_ids_below_it_not_those_that_start_like_it() -> None:
    parent = failed(test_id="pkg::TestA")
    failing = {parent.id, "pkg::TestA/x", "pkg::TestA0", "pkg::TestAB", "pkg::TestA.y"}
    assert diagnosed(parent, failing) == Diagnosis(
        FC.DEPENDENT, "its subtest pkg::TestA/x failed", "pkg::TestA/x"
    )
