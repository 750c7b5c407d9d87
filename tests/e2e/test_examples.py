"""The two examples, run the way the README tells a new user to run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.cli import greenloop

pytestmark = pytest.mark.e2e

DEMO_FAILURES_ITERATION_1 = {
    "critical": [
        "tests/test_critical.py::test_payments_upstream_reachable",
        "tests/test_critical.py::test_websocket_connect",
        "tests/test_critical.py::test_websocket_echo",
    ],
    "core": ["tests/test_core.py::test_inventory_upstream_reachable"],
}


def test_demo_converges_in_two_iterations_with_one_redeploy(demo: Path, tmp_path: Path) -> None:
    proc = greenloop("run", "demo/validation.yaml", "--json", "--report", "report.md", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)["status"]
    assert status["phase"] == "Passed"
    assert status["iteration"] == 2
    assert status["summary"]["passed"] == status["summary"]["expected"] == 41
    assert status["failingTests"] == []
    assert [(h["iteration"], h["action"], h["failed"]) for h in status["history"]] == [
        (1, "Redeploy", 4),
        (2, "Done", 0),
    ]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "GoalMet")

    # Iteration 2 reran exactly the failures of iteration 1 (the dependent included).
    iteration_2 = tmp_path / ".greenloop" / "default" / "demo" / "iteration-2"
    reran = {p.stem: sorted(p.read_text().split()) for p in sorted(iteration_2.glob("*.select"))}
    assert reran == DEMO_FAILURES_ITERATION_1

    report = (tmp_path / "report.md").read_text()
    assert "**Passed** after 2 iterations and 1 redeploy" in report
    assert "3 ServiceUnavailable, 1 Dependent" in report
    assert (
        "`tests/test_critical.py::test_websocket_connect` failed → **ServiceUnavailable**, "
        "evidence `AssertionError: GET /ws/connect -> HTTP 503` → 1 dependent test failed with "
        "it (`tests/test_critical.py::test_websocket_echo`) → meanwhile the target showed "
        "`GET http://127.0.0.1:"
    ) in report
    assert "503" in report
    # One health probe per suite ran in iteration 1; the why-chain shows the finding once.
    why = next(line for line in report.splitlines() if "test_websocket_connect` failed" in line)
    assert why.count("/health -> HTTP 200") == 1, why
    assert "redeployed after iteration 1 → passed in iteration 2" in report

    assert "[iteration 1] 37 passed, 4 failing -> Redeploy" in proc.stderr
    assert "[redeploy] running python app/ctl.py restart" in proc.stderr


def test_auth_example_stalls_on_auth_error_without_redeploying(auth: Path, tmp_path: Path) -> None:
    proc = greenloop("run", "auth/validation.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    status = json.loads(proc.stdout)["status"]
    assert status["phase"] == "Stalled"
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "AuthError")
    assert "a redeploy cannot fix" in stalled["message"]
    assert [h["action"] for h in status["history"]] == ["Rerun", "Stall"]
    assert {f["class"] for f in status["failingTests"]} == {"AuthError"}
    assert all("403" in f["evidence"] for f in status["failingTests"])
    assert len(status["failingTests"]) == 3
    # Nothing was redeployed: the example's redeploy command never ran.
    assert not (auth / ".state" / "redeploys.log").exists()
    report = (tmp_path / ".greenloop" / "default" / "auth" / "report.md").read_text()
    assert "**Stalled (AuthError)** after 2 iterations and 0 redeploys" in report
    assert "Check the credentials" in report


def test_junit_command_summarizes_the_demo_failures(demo: Path, tmp_path: Path) -> None:
    """`greenloop junit` reads reports greenloop did not produce itself."""
    env = dict(os.environ, BASE_URL=f"http://127.0.0.1:{_port(demo)}")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/test_critical.py", "--junitxml", "out.xml"],
        cwd=demo,
        env=env,
        capture_output=True,
        timeout=60,
    )
    proc = greenloop("junit", str(demo / "out.xml"), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["classes"] == {"ServiceUnavailable": 2, "Dependent": 1}
    dependent = next(f for f in summary["failing"] if f["class"] == "Dependent")
    assert dependent["rootCause"] == "tests/test_critical.py::test_websocket_connect"


def test_junit_command_rejects_an_unreadable_file_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "broken.xml").write_text("<testsuite><testcase name='a'>")
    proc = greenloop("junit", "broken.xml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "broken.xml" in proc.stderr


def _port(folder: Path) -> str:
    text = (folder / "validation.yaml").read_text()
    return text.split("http://127.0.0.1:")[1].split("/")[0].split('"')[0]
