"""The verdict rule (docs/design.md §7) as a user meets it: fake suites that write JUnit
XML the way real runners do when a wrapper passes the selection wrongly.

Each case was seen with a real Jest or Go wrapper (issue 6) and gave a false green or a
wrong stall before the rule: Jest reporting the selected tests as <skipped/> ended
`Passed: 0/0`; a Go rerun with 0 results ended `Passed: 4/4`; deselected tests reported
as skipped, with expectedTests, ended ExpectedTestsMissing while Ran said 14, Not run 0.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli import greenloop

pytestmark = pytest.mark.e2e

# A suite of 8 tests, t::a..t::h. The first run fails a..d (assertions); what a rerun
# reports depends on the mode, as the wrappers of real runners did.
FAKE_SUITE = """\
import os, sys
from pathlib import Path

mode = sys.argv[1]
calls = Path("calls")
n = int(calls.read_text()) if calls.exists() else 0
calls.write_text(str(n + 1))
names = list("abcdefgh")
select = os.environ.get("GREENLOOP_SELECT")
chosen = set(Path(select).read_text().split()) if select else None

def case(name, outcome):
    body = {"pass": "", "fail": '<failure message="AssertionError: assert 1 == 2"/>',
            "skip": "<skipped/>"}[outcome]
    return f'<testcase classname="t" name="{name}">{body}</testcase>'

cases = []
if chosen is None:  # the first, whole run
    cases = [case(x, "fail" if x in "abcd" else "pass") for x in names]
elif mode == "jest-skips-all":  # -t matched nothing: every test reported skipped
    cases = [case(x, "skip") for x in names]
elif mode == "go-no-results":  # -run matched nothing: an empty report
    cases = []
elif mode == "deselected-as-skipped":  # a correct wrapper; Jest lists the rest as skipped
    cases = [case(x, "pass" if f"t::{x}" in chosen else "skip") for x in names]
elif mode == "ignores-selection":  # the whole suite again, all passing now
    cases = [case(x, "pass") for x in names]
Path(os.environ["GREENLOOP_JUNIT_XML"]).write_text(f"<testsuite>{''.join(cases)}</testsuite>")
"""


def spec(tmp_path: Path, mode: str, *, extra: str = "", policy: str = "") -> None:
    (tmp_path / "suite.py").write_text(FAKE_SUITE)
    (tmp_path / "validation.yaml").write_text(
        textwrap.dedent(
            f"""\
            apiVersion: greenloop.dev/v1alpha1
            kind: StagingValidation
            metadata: {{name: verdict}}
            spec:
              {extra}
              suites:
              - {{name: e2e, priority: P1, command: [python, suite.py, {mode}]}}
              policy: {{maxIterations: 6, {policy}}}
            """
        )
    )


def run(tmp_path: Path) -> tuple[int, dict[str, Any], str, str]:
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    status = json.loads(proc.stdout)["status"]
    # Where the report went, as greenloop says it.
    where = next(
        line for line in proc.stderr.splitlines() if line.startswith("greenloop: report: ")
    )
    report = (tmp_path / where.removeprefix("greenloop: report: ")).read_text()
    return proc.returncode, status, report, proc.stderr


def test_a_rerun_that_reports_the_selected_tests_as_skipped_is_never_green(
    tmp_path: Path,
) -> None:
    spec(tmp_path, "jest-skips-all", policy="flakeRetries: 3")
    code, status, report, stderr = run(tmp_path)
    assert code == 1, stderr
    assert status["phase"] == "Stalled"
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "SelectionIgnored"
    # The second time the selection is ignored ends the round, retries left or not.
    assert status["iteration"] == 3
    assert status["summary"]["passed"] == 4
    assert {t["id"]: t["class"] for t in status["failingTests"]} == {
        "t::a": "NotRerun",
        "t::b": "NotRerun",
        "t::c": "NotRerun",
        "t::d": "NotRerun",
    }
    assert "GREENLOOP_SELECT" in stalled["message"]
    numbers = "rerun of 4 selected tests: 4 reported as skipped (counted as NotRerun)"
    assert numbers in stderr
    assert "4 results for tests not selected ignored" in stderr
    assert numbers in report
    assert "### NotRerun (4)" in report
    assert "passed in iteration" not in report


def test_a_rerun_with_no_results_is_never_green(tmp_path: Path) -> None:
    spec(tmp_path, "go-no-results", policy="flakeRetries: 3")
    code, status, report, stderr = run(tmp_path)
    assert code == 1, stderr
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (status["phase"], stalled["reason"]) == ("Stalled", "SelectionIgnored")
    assert status["summary"] == {
        "expected": 8,
        "total": 8,
        "passed": 4,
        "failed": 4,
        "skipped": 0,
        "notRun": 0,
        "passRate": "50.0%",
    }
    assert "rerun of 4 selected tests: 4 not reported (counted as NotRerun)" in stderr
    assert "4 not reported" in report


def test_deselected_tests_reported_as_skipped_do_not_overwrite_earlier_passes(
    tmp_path: Path,
) -> None:
    spec(tmp_path, "deselected-as-skipped", extra="expectedTests: 8")
    code, status, report, stderr = run(tmp_path)
    assert code == 0, stderr
    assert status["phase"] == "Passed"
    assert status["summary"]["passed"] == 8
    assert status["summary"]["notRun"] == 0
    assert "4 results for tests not selected ignored" in stderr
    assert "**Passed**" in report


def test_a_runner_that_ignores_the_selection_is_told_with_the_numbers(tmp_path: Path) -> None:
    spec(tmp_path, "ignores-selection")
    code, status, _, stderr = run(tmp_path)
    # The selected tests did run and pass: that counts; the extra results do not.
    assert code == 0, stderr
    assert status["summary"]["passed"] == 8
    assert "rerun of 4 selected tests; 4 results for tests not selected ignored" in stderr


# A command not on PATH and a missing workingDir never get this far in local mode: run
# refuses them before iteration 1, naming the field (tests/e2e/test_preflight.py). A file
# without its x bit is left to the run.
@pytest.mark.parametrize(
    ("suite", "says"),
    [
        ("{name: e2e, priority: P1, command: [./suite.sh]}", "command is not executable"),
    ],
    ids=["permission denied"],
)
def test_a_runner_error_a_rerun_cannot_fix_stops_at_once(
    tmp_path: Path, suite: str, says: str
) -> None:
    script = tmp_path / "suite.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o644)
    (tmp_path / "validation.yaml").write_text(
        textwrap.dedent(
            f"""\
            apiVersion: greenloop.dev/v1alpha1
            kind: StagingValidation
            metadata: {{name: verdict}}
            spec:
              suites:
              - {suite}
            """
        )
    )
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    status = json.loads(proc.stdout)["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "RunnerError"
    assert says in stalled["message"]
    assert status["iteration"] == 1  # no retry: a rerun cannot change the cause
