"""Rules that small mutations of the core used to change without any test noticing.

Each row names the rule it pins; each was checked by applying the mutation by hand and
seeing the row fail (issue 10, "Tests that pin the rules"). The engine's rows moved to
tests/unit/engine/, each to the file of the rule it pins.
"""

from __future__ import annotations

import pytest
import yaml

from greenloop.core import spec as spec_module
from greenloop.core.classify import diagnose
from greenloop.core.engine import Phase
from greenloop.core.junit import parse_junit
from greenloop.core.model import (
    FailureClass,
    Outcome,
    StagingValidation,
    TestResult,
)
from greenloop.core.report import render
from greenloop.core.spec import SpecError
from greenloop.core.status import summary
from tests.unit.scenario import (
    HTTP_503,
    IMPORT,
    bad,
    make_spec,
    ok,
    play,
)

ONE_SUITE = (("critical", "P1"),)


# ---------------------------------------------------------------------------
# Classifier: the documented order, and HTTP status codes


def failure(message: str, **kw: object) -> TestResult:
    return TestResult(
        id="t",
        name="t",
        classname="",
        outcome=Outcome.FAILED,
        message=message,
        **kw,  # type: ignore[arg-type]
    )


# One line showing two classes: the one earlier in docs/design.md §1's order wins.
ORDER_ROWS = [
    ("ImportError while fetching a token: permission denied", FailureClass.TEST_CODE_ERROR),
    ("permission denied by the gateway: service unavailable", FailureClass.AUTH_ERROR),
    ("HTTP 503 from /login: forbidden", FailureClass.AUTH_ERROR),
    ("service unavailable: connection refused", FailureClass.SERVICE_UNAVAILABLE),
    ("connection reset after the read timed out", FailureClass.CONNECTION_ERROR),
    ("internal server error after a timeout", FailureClass.TIMEOUT),
    ("AssertionError: internal server error", FailureClass.SERVER_ERROR),
]


@pytest.mark.parametrize(("message", "expected"), ORDER_ROWS, ids=[m for m, _ in ORDER_ROWS])
def test_builtin_classes_are_tried_in_the_documented_order(
    message: str, expected: FailureClass
) -> None:
    found = diagnose(failure(message))
    assert found is not None
    assert found.failure_class is expected


def test_dependent_comes_before_every_other_class() -> None:
    found = diagnose(failure(HTTP_503, depends_on=("root",)), failing_ids={"root", "t"})
    assert found is not None
    assert (found.failure_class, found.root_cause) == (FailureClass.DEPENDENT, "root")


STATUS_ROWS = [
    (401, FailureClass.AUTH_ERROR),
    (403, FailureClass.AUTH_ERROR),
    (407, FailureClass.AUTH_ERROR),
    (408, FailureClass.TIMEOUT),
    (500, FailureClass.SERVER_ERROR),
    (501, FailureClass.SERVER_ERROR),
    (502, FailureClass.SERVICE_UNAVAILABLE),
    (503, FailureClass.SERVICE_UNAVAILABLE),
    (504, FailureClass.SERVICE_UNAVAILABLE),
    (505, FailureClass.SERVER_ERROR),
    (599, FailureClass.SERVER_ERROR),
]


@pytest.mark.parametrize(("code", "expected"), STATUS_ROWS, ids=[str(c) for c, _ in STATUS_ROWS])
def test_a_bare_http_status_code_decides_the_class(code: int, expected: FailureClass) -> None:
    # No words such as "Timeout" or "Forbidden": the number alone must decide.
    found = diagnose(failure(f"request failed: HTTP {code}"))
    assert found is not None
    assert found.failure_class is expected


# ---------------------------------------------------------------------------
# JUnit: control characters never make a file unreadable

ANSI_CASE = (
    b'<testcase classname="c" name="coloured"><failure message="boom">'
    b"\x1b[31mred\x1b[0m</failure><system-out>\x1b[32mgreen\x00</system-out></testcase>"
)
PASSING_CASE = b'<testcase classname="c" name="p%d"/>'


def junit(*cases: bytes, head: bytes = b'<?xml version="1.0"?>') -> bytes:
    return head + b'<testsuite name="s">' + b"".join(cases) + b"</testsuite>"


ANSI_FILES = {
    "ASCII": junit(ANSI_CASE),
    "ASCII, the colour codes in a later chunk": junit(
        *(PASSING_CASE % i for i in range(3000)), ANSI_CASE
    ),
    "UTF-8": junit(ANSI_CASE.replace(b"boom", "bo\u00f6m".encode())),
    "ISO-8859-1": junit(ANSI_CASE, head=b'<?xml version="1.0" encoding="ISO-8859-1"?>'),
}


@pytest.mark.parametrize("data", ANSI_FILES.values(), ids=ANSI_FILES.keys())
def test_ansi_colour_codes_and_nuls_are_replaced_not_fatal(data: bytes) -> None:
    report = parse_junit(data, name="colour.xml")
    (coloured,) = [t for t in report.tests if t.name == "coloured"]
    assert coloured.outcome is Outcome.FAILED
    assert "\ufffd[31mred\ufffd[0m" in coloured.details
    assert "\ufffd[32mgreen\ufffd" in coloured.output
    assert "\x1b" not in coloured.details + coloured.output


# ---------------------------------------------------------------------------
# Spec: the object name is a DNS subdomain of at most 253 characters


def spec_text(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "greenloop.dev/v1alpha1",
            "kind": "StagingValidation",
            "metadata": {"name": name},
            "spec": {"suites": [{"name": "core", "command": ["pytest"]}]},
        }
    )


def test_a_253_character_name_is_accepted() -> None:
    name = ".".join(["a" * 63] * 4)[:253]
    assert len(name) == 253
    (sv,) = spec_module.load_text(spec_text(name)).objects
    assert sv.name == name


def test_a_254_character_name_is_refused() -> None:
    name = ".".join(["a" * 63] * 4) + "b"
    assert len(name) == 256
    for too_long in (name[:254], name):
        with pytest.raises(SpecError) as caught:
            spec_module.load_text(spec_text(too_long), source="v.yaml")
        assert "metadata.name" in str(caught.value)
        assert "at most 253 characters" in str(caught.value)


# ---------------------------------------------------------------------------
# Status and report numbers


def test_not_run_is_never_negative_when_more_tests_ran_than_expected() -> None:
    spec = make_spec(*ONE_SUITE, expected=2)
    state = play(spec, [{"critical": [ok("a"), ok("b"), ok("c"), ok("d")]}]).state
    assert state.phase is Phase.PASSED
    counted = summary(state, 2)
    assert (counted["total"], counted["notRun"]) == (4, 0)


BAR_ROWS = [
    # (passing tests of 4 expected, the report's progress line)
    (0, "`[..............................]` 0/4 (0.0%)"),
    (1, "`[########......................]` 1/4 (25.0%)"),
    (2, "`[###############...............]` 2/4 (50.0%)"),
    (4, "`[##############################]` 4/4 (100.0%)"),
]


@pytest.mark.parametrize(("passing", "bar"), BAR_ROWS, ids=[str(p) for p, _ in BAR_ROWS])
def test_the_progress_bar_fills_with_the_passing_share(passing: int, bar: str) -> None:
    spec = make_spec(*ONE_SUITE, expected=4, flake_retries=0)
    tests = [ok(f"t{i}") if i < passing else bad(f"t{i}", IMPORT) for i in range(4)]
    state = play(spec, [{"critical": tests}]).state
    obj = StagingValidation(name="bar", spec=spec)
    assert f"Progress toward the goal: {bar}" in render(obj, state, now=5000.0).splitlines()
