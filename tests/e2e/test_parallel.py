"""policy.parallelism: suites of one priority run at once, each its own process and log.

Proven without timing: each suite waits (bounded) until every suite of its priority has
started. One by one, the first can never see the others and fails; side by side, all
pass."""

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

from tests.e2e.cli import as_from_a_terminal, greenloop, greenloop_command
from tests.support.procs import left_running, new_marker

pytestmark = pytest.mark.e2e

SUITE = """\
import os, pathlib, sys, time
here = pathlib.Path(sys.argv[1]); name = sys.argv[2]; peers = sys.argv[3].split(",")
(here / f"started-{name}").touch()
deadline = time.monotonic() + float(sys.argv[4])
while time.monotonic() < deadline and not all((here / f"started-{p}").exists() for p in peers):
    time.sleep(0.05)
seen = all((here / f"started-{p}").exists() for p in peers)
print(f"{name}: saw its peers: {seen}")
failure = "" if seen else '<failure message="AssertionError: peers never started"/>'
pathlib.Path(os.environ["GREENLOOP_JUNIT_XML"]).write_text(
    f'<testsuite><testcase classname="{name}" name="together">{failure}</testcase></testsuite>')
"""


def spec(folder: Path, parallelism: int, wait: float) -> None:
    (folder / "suite.py").write_text(SUITE)
    names = ["a", "b", "c"]
    suites = "\n".join(
        f"    - {{name: {n}, priority: P2, command: [{sys.executable}, suite.py, "
        f"'{folder}', {n}, 'a,b,c', '{wait}']}}"
        for n in names
    )
    (folder / "validation.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: greenloop.dev/v1alpha1
            kind: StagingValidation
            metadata: {name: together}
            spec:
              policy: {parallelism: %d, maxIterations: 1}
              suites:
            """
        )
        % parallelism
        + suites
        + "\n    - {name: last, priority: P9, command: ["
        + f"{sys.executable}, suite.py, '{folder}', last, last, '1']}}\n"
    )


def test_suites_of_one_priority_run_side_by_side(tmp_path: Path) -> None:
    spec(tmp_path, parallelism=3, wait=60)
    proc = greenloop("run", "validation.yaml", "--json", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)["status"]
    assert status["phase"] == "Passed"
    assert status["summary"]["passed"] == 4
    for name in ("a", "b", "c", "last"):  # each suite its own log
        log = tmp_path / "out" / "iteration-1" / f"{name}.log"
        assert f"{name}: saw its peers: True" in log.read_text()


def test_parallelism_1_runs_them_one_by_one(tmp_path: Path) -> None:
    spec(tmp_path, parallelism=1, wait=1)
    proc = greenloop("run", "validation.yaml", "--json", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    log = tmp_path / "out" / "iteration-1" / "a.log"
    assert "a: saw its peers: False" in log.read_text()


def test_ctrl_c_stops_every_suite_running_side_by_side(tmp_path: Path) -> None:
    # Peers that never come: a, b and c would each wait 300 s.
    spec(tmp_path, parallelism=3, wait=300)
    text = (tmp_path / "validation.yaml").read_text().replace("'a,b,c'", "'a,b,c,never'")
    (tmp_path / "validation.yaml").write_text(text)
    marker = new_marker()
    env = dict(os.environ, **marker)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    proc = subprocess.Popen(
        [*greenloop_command(), "run", "validation.yaml", "--json", "--out", "out"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"started-{n}").exists() for n in "abc"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the suites never all started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert left_running(marker) == []
    assert (tmp_path / "out" / "report.md").exists()
