"""The command line answers with a message and an exit code, never a traceback; runs
that share an output folder do not corrupt each other (issue 8)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.cli import as_from_a_terminal, greenloop, greenloop_command
from tests.e2e.hostile import JUNIT_ONE_PASSING, spec, suite_spec

pytestmark = pytest.mark.e2e


def test_report_pointing_at_a_folder_is_a_usage_error_before_anything_runs(
    tmp_path: Path,
) -> None:
    suite_spec(tmp_path, "reportdir", JUNIT_ONE_PASSING + "open('ran', 'w')\n")
    (tmp_path / "reports").mkdir()
    proc = greenloop("run", "validation.yaml", "--report", "reports", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "--report reports: is a folder; give a file path such as reports/report.md" in (
        proc.stderr
    )
    assert not (tmp_path / "ran").exists()


def test_out_pointing_at_a_file_is_a_usage_error(tmp_path: Path) -> None:
    suite_spec(tmp_path, "outfile", JUNIT_ONE_PASSING)
    (tmp_path / "out").write_text("not a folder")
    proc = greenloop("run", "validation.yaml", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "--out out: is a file, not a folder" in proc.stderr


def test_ctrl_c_during_junit_exits_130_with_a_message(tmp_path: Path) -> None:
    _big_junit(tmp_path / "big.xml")
    proc = _started(tmp_path, "junit", "big.xml")
    assert _signal_while(proc, signal.SIGINT, _reading(proc, tmp_path / "big.xml"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "greenloop: interrupted" in err


def _started(
    tmp_path: Path, *args: str, preexec: Callable[[], None] = as_from_a_terminal
) -> subprocess.Popen[str]:
    """greenloop with ``args``, its stderr kept, to be signalled by the test."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    return subprocess.Popen(
        [*greenloop_command(), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )


def _reading(proc: subprocess.Popen[str], path: Path) -> Callable[[], bool]:
    """Whether ``proc`` has ``path`` open and not yet read to its end."""
    size = path.stat().st_size
    return lambda: (_read_position(proc.pid, path.name) or size) < size


def _signal_while(
    proc: subprocess.Popen[str], signum: int, working: Callable[[], bool], seconds: float = 30
) -> bool:
    """Send ``signum`` at a moment ``working()`` holds, checked with the process stopped,
    so it cannot finish between the check and the signal, however slowly the interpreter
    starts on a busy machine. Bounded in time; False if that moment never came."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        proc.send_signal(signal.SIGSTOP)
        try:
            if working():
                proc.send_signal(signum)
                return True
        finally:
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.005)
    return False


def _read_position(pid: int, name: str) -> int | None:
    """How far process ``pid`` has read the open file ``name`` (None: not open)."""
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            if os.readlink(fd).endswith(name):
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                return int(info.split("pos:", 1)[1].split()[0])
    return None


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for ``signum`` (SigCgt in /proc/PID/status)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def _big_junit(path: Path) -> None:
    case = '<testcase classname="c" name="t{}"><failure message="HTTP 503"/></testcase>'
    with path.open("w") as f:
        f.write("<testsuite>")
        for block in range(400):
            f.write("".join(case.format(block * 1000 + i) for i in range(1000)))
        f.write("</testsuite>")


def _big_spec(path: Path) -> None:
    """Thousands of small StagingValidations: validating them takes seconds."""
    doc = (
        "---\napiVersion: greenloop.dev/v1alpha1\nkind: StagingValidation\n"
        "metadata: {{name: v{}}}\nspec:\n  suites:\n  - {{name: s, command: [sh, -c, 'true']}}\n"
        "  target: {{command: [sh, -c, 'true']}}\n"
    )
    path.write_text("".join(doc.format(i) for i in range(6000)))


@pytest.mark.parametrize(
    ("command", "signum", "code"),
    [
        ("junit", signal.SIGTERM, 143),
        ("junit", signal.SIGHUP, 129),
        ("validate", signal.SIGTERM, 143),
        ("validate", signal.SIGHUP, 129),
    ],
)
def test_sigterm_and_sighup_stop_junit_and_validate_like_ctrl_c(
    tmp_path: Path, command: str, signum: signal.Signals, code: int
) -> None:
    """What CI cancellation and `timeout` send: a message and 128 + the signal."""
    if command == "junit":
        _big_junit(tmp_path / "big.xml")
        proc = _started(tmp_path, "junit", "big.xml")
        busy = _reading(proc, tmp_path / "big.xml")
    else:
        _big_spec(tmp_path / "big.yaml")
        proc = _started(tmp_path, "validate", "big.yaml")
        busy = lambda: True  # noqa: E731 - validating 6,000 objects takes seconds

    # Once greenloop handles the signal (it is set up before any work starts).
    assert _signal_while(proc, signum, lambda: _catches(proc.pid, signum) and busy())
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"greenloop: stopped by {signum.name}" in err


WAIT_FOR_GO = (
    """\
import os, pathlib, time
open("waiting", "w").write("1")
while not pathlib.Path("go").exists():
    time.sleep(0.05)
"""
    + JUNIT_ONE_PASSING
)


def test_a_second_run_on_a_held_folder_says_who_holds_it_and_exits_2(tmp_path: Path) -> None:
    suite_spec(tmp_path, "shared", WAIT_FOR_GO)
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    first = subprocess.Popen(
        [*greenloop_command(), "run", "validation.yaml", "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "waiting").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = greenloop("run", "validation.yaml", "--json", cwd=tmp_path)
    finally:
        (tmp_path / "go").touch()
        out, err = first.communicate(timeout=60)
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr
    assert f"in use by greenloop pid {first.pid} (started " in second.stderr
    assert "validation default/shared" in second.stderr
    assert second.stdout == ""
    assert first.returncode == 0, err
    assert json.loads(out)["status"]["phase"] == "Passed"


def test_the_same_name_in_two_namespaces_gets_two_folders(tmp_path: Path) -> None:
    (tmp_path / "suite.py").write_text(JUNIT_ONE_PASSING)
    for namespace in ("team-a", "team-b"):
        spec(
            tmp_path,
            f"""\
            apiVersion: greenloop.dev/v1alpha1
            kind: StagingValidation
            metadata: {{name: same, namespace: {namespace}}}
            spec:
              suites:
              - {{name: s, command: [python, suite.py]}}
            """,
            name=f"{namespace}.yaml",
        )
        proc = greenloop("run", f"{namespace}.yaml", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    for namespace in ("team-a", "team-b"):
        status = json.loads(
            (tmp_path / ".greenloop" / namespace / "same" / "status.json").read_text()
        )
        assert status["metadata"]["namespace"] == namespace


def test_out_deletes_only_what_greenloop_wrote_there(tmp_path: Path) -> None:
    suite_spec(tmp_path, "keep", JUNIT_ONE_PASSING)
    out = tmp_path / "results"
    (out / "iteration-7").mkdir(parents=True)
    (out / "iteration-7" / "mine.txt").write_text("the user's")
    (out / "redeploy-3.log").write_text("the user's")
    for _ in range(2):  # the second run replaces the first one's files
        proc = greenloop("run", "validation.yaml", "--out", "results", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert (out / "iteration-1" / "s.xml").exists()
    assert (out / "iteration-7" / "mine.txt").read_text() == "the user's"
    assert (out / "redeploy-3.log").read_text() == "the user's"


def _as_under_nohup() -> None:
    as_from_a_terminal()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_a_signal_ignored_when_greenloop_started_stays_ignored(tmp_path: Path) -> None:
    """`nohup greenloop junit ...`: the hangup is not for greenloop, which reads on."""
    _big_junit(tmp_path / "big.xml")
    proc = _started(tmp_path, "junit", "big.xml", preexec=_as_under_nohup)
    assert _signal_while(proc, signal.SIGHUP, _reading(proc, tmp_path / "big.xml"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err  # the file's verdict: it has failures
    assert "stopped by" not in err
