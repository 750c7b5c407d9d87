"""`validate` and `run` catch, before anything runs, what would fail at once in local mode.

Measured before (issue 6): validate accepted a suite command that does not exist, a
missing workingDir and a missing redeploy script; run then retried those errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.e2e.cli import greenloop

pytestmark = pytest.mark.e2e

SPEC = """\
apiVersion: greenloop.dev/v1alpha1
kind: StagingValidation
metadata: {{name: shop}}
spec:
  suites:
    - name: api
      command: [{command}]
      workingDir: {working_dir}
  target:
    command: [{redeploy}]
"""


def spec(
    folder: Path, command: str = "python", working_dir: str = ".", redeploy: str = '"true"'
) -> Path:
    path = folder / "validation.yaml"
    path.write_text(
        textwrap.dedent(SPEC.format(command=command, working_dir=working_dir, redeploy=redeploy))
    )
    return path


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"command": "jset"},
            "validation.yaml: spec.suites[0].command[0]: 'jset' not found on PATH",
        ),
        (
            {"working_dir": "e2e/missing"},
            "validation.yaml: spec.suites[0].workingDir: 'e2e/missing': no such directory",
        ),
        (
            {"redeploy": "./redeploy.sh"},
            "validation.yaml: spec.target.command[0]: './redeploy.sh': no such file",
        ),
        (
            {"command": "./run-tests"},
            "validation.yaml: spec.suites[0].command[0]: './run-tests': no such file",
        ),
    ],
    ids=["command", "workingDir", "redeploy", "relative-command"],
)
@pytest.mark.parametrize("verb", ["validate", "run"])
def test_a_mistake_is_named_before_anything_runs(
    verb: str, fields: dict[str, str], expected: str, tmp_path: Path
) -> None:
    spec(tmp_path, **fields)
    proc = (
        greenloop(verb, "validation.yaml", "--out", "out", cwd=tmp_path)
        if verb == "run"
        else (greenloop(verb, "validation.yaml", cwd=tmp_path))
    )
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert not (tmp_path / "out").exists()  # run started nothing


def test_operator_mode_does_not_look_at_this_machine(tmp_path: Path) -> None:
    path = tmp_path / "validation.yaml"
    path.write_text(
        SPEC.format(command="jset", working_dir=".", redeploy='"true"')
        .replace("      command: [jset]", "      image: shop-e2e:1\n      command: [jset]")
        .replace('  target:\n    command: ["true"]\n', "")
    )
    proc = greenloop("validate", "validation.yaml", "--mode", "operator", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
