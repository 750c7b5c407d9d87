"""Every process greenloop starts is gone when it moves on, on every path; SIGTERM and
SIGHUP stop a run like Ctrl-C (issue 8: Severe 2, processes left running, deadline)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.cli import as_from_a_terminal, greenloop, greenloop_command
from tests.e2e.hostile import JUNIT_ONE_FAILING, JUNIT_ONE_PASSING, stalled, suite_spec
from tests.support.procs import left_running, new_marker

pytestmark = pytest.mark.e2e

# A suite that starts a child, a grandchild that leaves the session (setsid), writes its
# pid for the test to wait on, then sleeps.
SLEEPER = """\
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(301)"])
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(302)"], start_new_session=True)
{ignore}
open("started", "w").write(str(os.getpid()))
time.sleep(300)
"""


def start(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full = dict(os.environ, **env)
    full["PATH"] = str(Path(sys.executable).parent) + os.pathsep + full["PATH"]
    return subprocess.Popen(
        [*greenloop_command(), "run", "validation.yaml", "--json", *args],
        cwd=tmp_path,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )


def wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_a_signal_stops_the_suite_writes_report_and_status_and_says_which(
    tmp_path: Path, sig: int, code: int
) -> None:
    suite_spec(tmp_path, "signalled", SLEEPER.format(ignore=""))
    marker = new_marker()
    proc = start(tmp_path, marker)
    wait_for(tmp_path / "started", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    status = json.loads(out)["status"]
    assert any(c["reason"] == "Interrupted" for c in status["conditions"])
    folder = tmp_path / ".greenloop"
    assert "interrupted" in next(folder.rglob("report.md")).read_text()
    assert json.loads(next(folder.rglob("status.json")).read_text())["status"] == status
    assert left_running(marker) == []


def test_a_second_ctrl_c_during_the_grace_kills_at_once_and_nothing_runs_on(
    tmp_path: Path,
) -> None:
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    suite_spec(tmp_path, "stubborn", SLEEPER.format(ignore=ignore))
    marker = new_marker()
    proc = start(tmp_path, marker)
    wait_for(tmp_path / "started", proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert any(c["reason"] == "Interrupted" for c in json.loads(out)["status"]["conditions"])
    assert left_running(marker, settle=0.5) == []


def test_a_suite_that_passes_leaves_no_background_children(tmp_path: Path) -> None:
    suite_spec(
        tmp_path,
        "background",
        JUNIT_ONE_PASSING
        + "import subprocess, sys\n"
        + "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(303)'])\n"
        + "subprocess.Popen(['sleep', '304'], start_new_session=True)\n",
    )
    marker = new_marker()
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, env=marker)
    assert proc.returncode == 0, proc.stderr
    assert left_running(marker) == []


REDEPLOY = """\
target:
  command: {command}
  commandTimeoutSeconds: 1
"""


def test_a_redeploy_command_that_times_out_leaves_nothing_running(tmp_path: Path) -> None:
    command = json.dumps(["sh", "-c", "sleep 305 & sleep 306"])
    suite_spec(tmp_path, "redeploy-timeout", JUNIT_ONE_FAILING, REDEPLOY.format(command=command))
    marker = new_marker()
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, env=marker)
    assert proc.returncode == 1, proc.stderr
    condition = stalled(proc.stdout)
    assert condition["reason"] == "RedeployFailed"
    assert "timed out after 1 s" in condition["message"]
    assert left_running(marker) == []


def test_ctrl_c_during_the_redeploy_command_leaves_nothing_running(tmp_path: Path) -> None:
    command = json.dumps(["sh", "-c", "echo x > redeploying; sleep 307 & sleep 308"])
    suite_spec(
        tmp_path,
        "redeploy-interrupted",
        JUNIT_ONE_FAILING,
        REDEPLOY.format(command=command).replace("commandTimeoutSeconds: 1", ""),
    )
    marker = new_marker()
    proc = start(tmp_path, marker)
    wait_for(tmp_path / "redeploying", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert left_running(marker) == []


def test_a_redeploy_that_starts_a_service_leaves_it_running(tmp_path: Path) -> None:
    """What a redeploy command starts in its own session (the demo's server) is the
    deployed service: it outlives the command, and the suites' clean-up spares it."""
    command = json.dumps(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; subprocess.Popen([sys.executable, "
            "'-c', 'import time; time.sleep(309)'], start_new_session=True)",
        ]
    )
    script = """\
import os
first = not os.path.exists("ran")
open("ran", "a").close()
failure = '<failure message="HTTP 503 Service Unavailable"/>' if first else ""
open(os.environ["GREENLOOP_JUNIT_XML"], "w").write(
    f'<testsuite><testcase classname="t" name="a">{failure}</testcase></testsuite>')
"""
    suite_spec(tmp_path, "service", script, REDEPLOY.format(command=command))
    marker = new_marker()
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, env=marker)
    assert proc.returncode == 0, proc.stderr
    running = left_running(marker, settle=0)
    assert len(running) == 1 and "sleep(309)" in running[0], running


def test_deadline_seconds_cuts_a_running_suite_short(tmp_path: Path) -> None:
    suite_spec(
        tmp_path,
        "deadline",
        SLEEPER.format(ignore=""),
        "policy: {deadlineSeconds: 2}\n",
    )
    marker = new_marker()
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, env=marker, timeout=60)
    assert proc.returncode == 1, proc.stderr
    condition = stalled(proc.stdout)
    assert condition["reason"] == "BudgetExhausted", condition
    assert left_running(marker) == []


def test_a_redeploy_command_that_is_not_executable_is_a_failed_redeploy(tmp_path: Path) -> None:
    (tmp_path / "deploy.sh").write_text("#!/bin/sh\necho deployed\n")  # no x bit
    suite_spec(tmp_path, "noexec", JUNIT_ONE_FAILING, REDEPLOY.format(command='["./deploy.sh"]'))
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    condition = stalled(proc.stdout)
    assert condition["reason"] == "RedeployFailed"
    assert "not executable: './deploy.sh'" in condition["message"]
    assert list((tmp_path / ".greenloop").rglob("report.md"))
