"""Each runner adapter on its REAL runner: iteration 1 fails some tests, a redeploy fixes
the state they depend on, and the rerun runs exactly the failed ones, with no wrapper.

The runners are installed by tools/runners/setup (cached; `make test` runs it, and so does
the fixture below). A missing toolchain fails here with what to install."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from greenloop.core.junit import parse_junit
from greenloop.core.model import Outcome
from tests.e2e.cli import REPO, greenloop

pytestmark = pytest.mark.e2e

SUITES = REPO / "tests" / "e2e" / "runners"
SETUP = REPO / "tools" / "runners" / "setup"
GOTESTSUM = Path.home() / ".cache" / "greenloop" / "bin" / "gotestsum"


@pytest.fixture(scope="session")
def installed() -> None:
    proc = subprocess.run(
        [str(SETUP)], capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        pytest.fail(f"{SETUP} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# runner -> (workingDir, command, extra env)
CASES: dict[str, tuple[Path, list[str], dict[str, str]]] = {
    "jest": (
        SUITES / "node",
        ["npx", "jest", "--ci", "--reporters=default", "--reporters=jest-junit"],
        {"JEST_JUNIT_CLASSNAME": "{filepath}"},
    ),
    "vitest": (
        SUITES / "node",
        [
            "npx",
            "vitest",
            "run",
            "--root",
            "vitest",
            "--reporter=default",
            "--reporter=junit",
            "--outputFile.junit={greenloop:junit}",
        ],
        {},
    ),
    "playwright": (SUITES / "node", ["npx", "playwright", "test"], {}),
    "go": (
        SUITES / "go",
        [str(GOTESTSUM), "--junitfile", "{greenloop:junit}", "--"],
        {},
    ),
    "maven": (SUITES / "maven", ["mvn", "-B", "-q", "test"], {}),
}
# Where the selection goes when it is not at the end of the command.
TAIL = {"go": "{greenloop:select|./...}"}


def spec_for(runner: str, folder: Path) -> Path:
    working_dir, command, env = CASES[runner]
    state = folder / "state"
    state.write_text("down\n")
    env = {"STATE_FILE": str(state), **env}
    doc = {
        "apiVersion": "greenloop.dev/v1alpha1",
        "kind": "StagingValidation",
        "metadata": {"name": runner},
        "spec": {
            "suites": [
                {
                    "name": runner,
                    "runner": runner,
                    "workingDir": str(working_dir),
                    "command": [*command, TAIL.get(runner, "{greenloop:select}")],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "timeoutSeconds": 300,
                }
            ],
            "target": {"command": ["sh", "-c", f"echo up > {state}"]},
            "policy": {"maxIterations": 3},
        },
    }
    spec = folder / "validation.yaml"
    spec.write_text(json.dumps(doc, indent=2))  # JSON is YAML
    return spec


def outcomes(xml: Path) -> dict[str, Outcome]:
    return {t.id: t.outcome for t in parse_junit(xml.read_bytes(), name=xml.name).tests}


@pytest.mark.parametrize("runner", sorted(CASES))
def test_the_rerun_runs_exactly_the_failed_tests(
    runner: str, installed: None, tmp_path: Path
) -> None:
    spec = spec_for(runner, tmp_path)
    out = tmp_path / "out"
    proc = greenloop("run", str(spec), "--out", str(out), "--json", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, textwrap.indent(proc.stderr[-4000:], "  ")
    assert json.loads(proc.stdout)["status"]["phase"] == "Passed"

    first = outcomes(out / "iteration-1" / f"{runner}.xml")
    failed = {i for i, o in first.items() if o in (Outcome.FAILED, Outcome.ERROR)}
    assert failed and len(failed) < len(first), first
    second = outcomes(out / "iteration-2" / f"{runner}.xml")
    ran = {i for i, o in second.items() if o is not Outcome.SKIPPED}
    if runner == "go":
        # Go reruns a failing subtest with its parent, so its passing siblings run too.
        def top(test_id: str) -> str:
            package, name = test_id.split("::", 1)
            return f"{package}::{name.split('/', 1)[0]}"

        tops = {top(i) for i in failed}
        failed = {i for i in first if top(i) in tops}
    assert ran == failed
    assert all(second[i] is Outcome.PASSED for i in ran)
