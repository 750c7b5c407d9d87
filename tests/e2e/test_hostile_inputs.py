"""Hostile input to the pure core, through the CLI a user runs (issue 8): every input gets a
result or a clear error naming the field or the file, in bounded time, never a traceback.

Each subprocess has a timeout: before the fixes, the ReDoS cases hung for hours.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.e2e.cli import greenloop

pytestmark = pytest.mark.e2e

# A suite that copies a fixed JUnit file where greenloop asks for its results.
COPY_JUNIT = "import os, shutil; shutil.copy('report.xml', os.environ['GREENLOOP_JUNIT_XML'])"


def _spec(folder: Path, extra: str = "") -> None:
    (folder / "validation.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: greenloop.dev/v1alpha1
            kind: StagingValidation
            metadata: {name: hostile}
            spec:
              suites:
              - {name: s, command: [python, -c, "%s"]}
              policy: {maxIterations: 2}
            """
        )
        % COPY_JUNIT
        + extra
    )


def _report(message: str) -> str:
    return (
        '<testsuite><testcase classname="t" name="a">'
        f'<failure message="{message}"/></testcase></testsuite>'
    )


def test_junit_classifies_a_failure_message_of_4000_spaces_at_once(tmp_path: Path) -> None:
    # The status-context pattern chained \s* with optional parts: > 590 s on Python's re.
    (tmp_path / "report.xml").write_text(_report("got" + " " * 4000 + "x"))
    proc = greenloop("junit", "report.xml", "--json", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["classes"] == {"Unknown": 1}


def test_run_with_a_nested_quantifier_rule_ends_with_a_verdict(tmp_path: Path) -> None:
    # (a+)+$ against 41 characters hung a run past its deadline.
    (tmp_path / "report.xml").write_text(_report("a" * 40 + "!"))
    _spec(tmp_path, '  classification:\n  - {pattern: "(a+)+$", class: ServerError}\n')
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1, proc.stderr
    status = json.loads(proc.stdout)["status"]
    assert status["phase"] == "Stalled"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        # Issue 10: validate said valid, then run died with a RuleError traceback.
        ("(upstream)?", "matches an empty line"),
        (r"(\w+) again \1", "is not a regular expression RE2 accepts"),
        ("upstream(?= connect)", "is not a regular expression RE2 accepts"),
    ],
)
def test_validate_refuses_a_rule_run_could_not_use(tmp_path: Path, pattern: str, says: str) -> None:
    (tmp_path / "report.xml").write_text(_report("boom"))
    _spec(tmp_path, f"  classification:\n  - {{pattern: '{pattern}', class: ServiceUnavailable}}\n")
    for command in ("validate", "run"):
        proc = greenloop(command, "validation.yaml", cwd=tmp_path, timeout=60)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert "validation.yaml: spec.classification[0].pattern: " in proc.stderr
        assert says in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('  target: {webhook: {url: "http://[::1/deploy"}}\n', "spec.target.webhook.url"),
        ("  expectedTests: " + "9" * 5000 + "\n", "invalid YAML at line 8, column 18"),
        ("  expectedTests: 0x" + "f" * 20000 + "\n", "spec.expectedTests"),
    ],
    ids=["ipv6-url", "5000-digits", "20000-hex-digits"],
)
def test_validate_and_run_refuse_values_run_could_not_use(
    tmp_path: Path, extra: str, field: str
) -> None:
    # Each said "valid" (or crashed with a traceback) before; run then failed mid-way.
    (tmp_path / "report.xml").write_text(_report("boom"))
    _spec(tmp_path, extra)
    for command in ("validate", "run"):
        proc = greenloop(command, "validation.yaml", cwd=tmp_path, timeout=60)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert f"validation.yaml: {field}" in proc.stderr
        assert "Traceback" not in proc.stderr
