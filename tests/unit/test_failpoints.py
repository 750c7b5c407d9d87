"""The failpoint test hook (docs/design.md §8): off unless set, exact about when it fires,
and loud about a setting it cannot read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from greenloop.k8s import failpoints

K8S = Path(failpoints.__file__).resolve().parent  # the package under test, wherever it is


@pytest.mark.parametrize(
    ("text", "armed"),
    [
        ("", {}),
        ("job-created", {"job-created": 1}),
        ("status-written:3, rollout-patched", {"status-written": 3, "rollout-patched": 1}),
    ],
)
def test_a_setting_arms_the_named_points(text: str, armed: dict[str, int]) -> None:
    assert failpoints.parse(text) == armed


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("job-creatd", "unknown failpoint 'job-creatd'"),
        ("job-created:0", "must be a number ≥ 1"),
        ("job-created:x", "must be a number ≥ 1"),
    ],
)
def test_a_setting_it_cannot_read_is_an_error_naming_it(text: str, says: str) -> None:
    with pytest.raises(failpoints.FailpointError, match=re.escape(says)):
        failpoints.parse(text)


def test_every_point_is_placed_once_in_the_operator() -> None:
    placed: list[str] = []
    for path in sorted(K8S.glob("*.py")):
        placed += re.findall(r'failpoints\.hit\("([a-z-]+)"\)', path.read_text())
    assert sorted(placed) == sorted(failpoints.POINTS)


def _hits(setting: str, name: str, times: int) -> subprocess.CompletedProcess[str]:
    code = (
        "import logging, sys; logging.basicConfig(stream=sys.stderr)\n"
        "from greenloop.k8s import failpoints\n"
        f"failpoints.arm({setting!r})\n"
        f"for i in range({times}):\n"
        f"    failpoints.hit({name!r}); print('passed', i + 1, flush=True)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_nth_hit_kills_the_process_by_sigkill_after_one_line() -> None:
    proc = _hits("status-written:3", "status-written", 5)
    assert proc.returncode == -9
    assert proc.stdout.split("\n")[:2] == ["passed 1", "passed 2"]
    assert "passed 3" not in proc.stdout
    assert "failpoint status-written reached (hit 3): SIGKILL" in proc.stderr


def test_unarmed_points_never_fire() -> None:
    proc = _hits("job-created", "status-written", 3)
    assert proc.returncode == 0
    assert proc.stdout.count("passed") == 3


def test_the_operator_refuses_a_bad_setting_before_it_starts() -> None:
    env = {**os.environ, failpoints.ENV: "no-such-point"}
    proc = subprocess.run(
        [sys.executable, "-m", "greenloop.cli", "operator", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "unknown failpoint 'no-such-point'" in proc.stderr
