"""`greenloop run` as a user runs it: exit codes, JSON status, the report, the processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.e2e.cli import as_from_a_terminal, free_port, greenloop, greenloop_command

pytestmark = pytest.mark.e2e


def write_spec(folder: Path, body: str) -> Path:
    spec = folder / "validation.yaml"
    spec.write_text(textwrap.dedent(body))
    return spec


SUITE_WRITING_JUNIT = """\
import os, sys
tests = sys.argv[1:]
cases = "".join(
    f'<testcase classname="t" name="{name}">'
    + ("" if ok == "pass" else f'<failure message="{ok}"/>')
    + "</testcase>"
    for name, ok in (t.split("=", 1) for t in tests)
)
open(os.environ["GREENLOOP_JUNIT_XML"], "w").write(f"<testsuite>{cases}</testsuite>")
"""


def test_invalid_spec_names_the_field_and_exits_2(tmp_path: Path) -> None:
    write_spec(
        tmp_path,
        """\
        apiVersion: greenloop.dev/v1alpha1
        kind: StagingValidation
        metadata: {name: broken}
        spec:
          suites:
          - {name: critical, priority: P1, command: ["true"]}
          - {name: core, priority: P0, command: ["true"]}
        """,
    )
    proc = greenloop("run", "validation.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "validation.yaml: spec.suites[1].priority:" in proc.stderr
    assert "P0" in proc.stderr
    assert proc.stdout == ""


def test_validate_accepts_a_good_spec(tmp_path: Path) -> None:
    write_spec(
        tmp_path,
        """\
        apiVersion: greenloop.dev/v1alpha1
        kind: StagingValidation
        metadata: {name: ok}
        spec:
          suites:
          - {name: critical, command: ["true"]}
        """,
    )
    proc = greenloop("validate", "validation.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout


def test_a_hung_suite_is_killed_with_its_children_and_ends_as_runner_error(tmp_path: Path) -> None:
    (tmp_path / "hang.py").write_text(
        textwrap.dedent(
            """\
            import os, subprocess, sys, time
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            with open("pids", "a") as f:
                f.write(f"{os.getpid()} {child.pid}\\n")
            time.sleep(300)
            """
        )
    )
    write_spec(
        tmp_path,
        """\
        apiVersion: greenloop.dev/v1alpha1
        kind: StagingValidation
        metadata: {name: hang}
        spec:
          suites:
          - {name: slow, command: [python, hang.py], timeoutSeconds: 1}
        """,
    )
    started = time.monotonic()
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, proc.stderr
    status = json.loads(proc.stdout)["status"]
    assert status["phase"] == "Stalled"
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == "RunnerError"
    assert "timed out after 1 s" in stalled["message"]
    assert status["iteration"] == 2  # retried once
    for line in (tmp_path / "pids").read_text().split("\n"):
        for pid in map(int, line.split()):
            assert not _alive(pid), f"process {pid} survived the timeout"


def test_ctrl_c_stops_the_suite_and_still_reports(tmp_path: Path) -> None:
    (tmp_path / "sleep.py").write_text(
        "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(300)\n"
    )
    write_spec(
        tmp_path,
        """\
        apiVersion: greenloop.dev/v1alpha1
        kind: StagingValidation
        metadata: {name: interrupted}
        spec:
          suites:
          - {name: slow, command: [python, sleep.py]}
        """,
    )
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    proc = subprocess.Popen(
        [*greenloop_command(), "run", "validation.yaml", "--json", "--report", "report.md"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the suite never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not _alive(int(pid_file.read_text()))
    status = json.loads(out)["status"]
    assert status["phase"] == "Stalled"
    assert any(c["reason"] == "Interrupted" for c in status["conditions"])
    assert "interrupted" in (tmp_path / "report.md").read_text()


def test_a_suite_that_writes_no_junit_is_a_runner_error_with_its_output(tmp_path: Path) -> None:
    write_spec(
        tmp_path,
        """\
        apiVersion: greenloop.dev/v1alpha1
        kind: StagingValidation
        metadata: {name: silent}
        spec:
          suites:
          - name: silent
            command: [python, -c, "print('cannot reach the registry'); raise SystemExit(3)"]
        """,
    )
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    message = next(
        c for c in json.loads(proc.stdout)["status"]["conditions"] if c["type"] == "Stalled"
    )["message"]
    assert "exited with code 3 and wrote no JUnit XML" in message
    assert "cannot reach the registry" in message


def test_any_language_runner_that_ignores_select_still_converges(tmp_path: Path) -> None:
    """A runner that ignores GREENLOOP_SELECT reruns everything; flaky passes are listed."""
    (tmp_path / "suite.py").write_text(
        SUITE_WRITING_JUNIT.replace(
            "tests = sys.argv[1:]",
            "import pathlib\nfirst = not pathlib.Path('ran').exists()\n"
            "pathlib.Path('ran').touch()\n"
            "tests = ['a=pass', 'b=' + ('AssertionError: boom' if first else 'pass')]",
        )
    )
    write_spec(
        tmp_path,
        """\
        apiVersion: greenloop.dev/v1alpha1
        kind: StagingValidation
        metadata: {name: flaky}
        spec:
          expectedTests: 2
          suites:
          - {name: any, command: [python, suite.py]}
        """,
    )
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)["status"]
    assert status["phase"] == "Passed"
    assert [f["id"] for f in status["flakyTests"]] == ["t::b"]
    assert [h["action"] for h in status["history"]] == ["Rerun", "Done"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_target_that_never_gets_healthy_stalls_as_redeploy_failed(tmp_path: Path) -> None:
    (tmp_path / "suite.py").write_text(
        SUITE_WRITING_JUNIT.replace(
            "tests = sys.argv[1:]", "tests = ['a=HTTP 503 Service Unavailable']"
        )
    )
    closed = free_port()  # nothing listens here
    write_spec(
        tmp_path,
        f"""\
        apiVersion: greenloop.dev/v1alpha1
        kind: StagingValidation
        metadata: {{name: unhealthy}}
        spec:
          suites:
          - {{name: api, command: [python, suite.py]}}
          target:
            command: [python, -c, "print('restarted')"]
            health: {{url: "http://127.0.0.1:{closed}/health", timeoutSeconds: 1}}
        """,
    )
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    status = json.loads(proc.stdout)["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "RedeployFailed"
    assert f"http://127.0.0.1:{closed}/health not healthy after 1 s" in stalled["message"]
    assert "ConnectError" in stalled["message"]
    assert [h["action"] for h in status["history"]] == ["Redeploy"]
