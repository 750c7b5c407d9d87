"""suites[].shards in local mode (docs/design.md §4.1): N processes of the suite command,
each told GREENLOOP_SHARD_INDEX/COUNT and given its own files; their results merged into
one result per suite.

Grouped by rule: the runner splits the first run (the pytest plugin, each test once); a
rerun runs only the failures, assigned by greenloop, in no more shards than help; a
runner that ignores the variables is never a pass (SelectionIgnored); a shard that
produced nothing is a RunnerError for its tests only."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cli import greenloop

pytestmark = pytest.mark.e2e

# Twelve tests; each appends "<node id> <shard index>" to ran.txt, so the test can count
# how often each ran and where. Those named in flaky.txt fail until their marker exists;
# those in slow.txt wait 3 s first (a duration a second shard is worth starting for).
TESTS = """\
import os, pathlib, time

HERE = pathlib.Path(__file__).parent
FLAKY = set((HERE / "flaky.txt").read_text().split()) if (HERE / "flaky.txt").exists() else set()
SLOW = set((HERE / "slow.txt").read_text().split()) if (HERE / "slow.txt").exists() else set()


def _ran(request):
    if request.node.name in SLOW:
        time.sleep(3)
    with open(HERE / "ran.txt", "a") as out:
        out.write(f"{request.node.nodeid} {os.environ.get('GREENLOOP_SHARD_INDEX', '-')}\\n")
    if request.node.name in FLAKY:
        marker = HERE / f"passed-once-{request.node.name}"
        if not marker.exists():
            marker.touch()
            raise AssertionError(f"{request.node.name} fails the first time")

"""
TESTS += "".join(f"\n\ndef test_{n:02d}(request):\n    _ran(request)\n" for n in range(12))


def write_validation(folder: Path, suite: dict[str, Any], *, shards: int, parallelism: int) -> None:
    (folder / "validation.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "greenloop.dev/v1alpha1",
                "kind": "StagingValidation",
                "metadata": {"name": "sharded"},
                "spec": {
                    "policy": {"parallelism": parallelism, "maxIterations": 4},
                    "suites": [{**suite, "shards": shards}],
                },
            }
        )
    )


def pytest_suite(
    folder: Path, *, shards: int = 3, flaky: tuple[str, ...] = (), slow: tuple[str, ...] = ()
) -> None:
    (folder / "test_many.py").write_text(TESTS)
    (folder / "flaky.txt").write_text("\n".join(flaky))
    (folder / "slow.txt").write_text("\n".join(slow))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_many.py"]
    suite = {"name": "e2e", "runner": "pytest", "command": [*command, "{greenloop:select}"]}
    write_validation(folder, suite, shards=shards, parallelism=shards)


def run(folder: Path) -> tuple[dict[str, Any], str]:
    proc = greenloop("run", "validation.yaml", "--json", "--out", "out", cwd=folder, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)["status"], proc.stderr


def stalled_condition(status: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == "Stalled")
    return found


def ran(folder: Path) -> list[tuple[str, str]]:
    lines = (folder / "ran.txt").read_text().splitlines()
    return [(line.rsplit(" ", 1)[0], line.rsplit(" ", 1)[1]) for line in lines]


# ---------------------------------------------------------------------------
# The first run: the runner splits, each test once


def test_a_sharded_pytest_suite_runs_each_test_once_across_its_shards(tmp_path: Path) -> None:
    pytest_suite(tmp_path, shards=3)
    status, stderr = run(tmp_path)
    assert status["phase"] == "Passed", stderr
    assert status["summary"]["total"] == status["summary"]["passed"] == 12
    runs = ran(tmp_path)
    assert len(runs) == 12 and len({test for test, _ in runs}) == 12  # each test once
    assert {shard for _, shard in runs} == {"0", "1", "2"}  # in three processes
    iteration = tmp_path / "out" / "iteration-1"
    for index in range(3):  # each shard its own JUnit and log
        assert (iteration / f"e2e.shard-{index}.xml").is_file()
        assert (iteration / f"e2e.shard-{index}.log").is_file()
    report = (tmp_path / "out" / "report.md").read_text()
    for index in range(3):  # one line per shard: tests, seconds, its process
        assert f"suite e2e: shard {index + 1}/3 (process, log e2e.shard-{index}.log): " in report


# The same-collection rule: a shard that collected a different suite is never a pass

# Shard 2 alone defines one more test: dealt from a different suite, its parts and the
# others' may not add up (a test may run in no shard), so no shard's results are trusted
# as the whole suite.
EXTRA_IN_SHARD_2 = """

if os.environ.get("GREENLOOP_SHARD_INDEX") == "1":

    def test_extra(request):
        _ran(request)
"""


def test_shards_that_collected_different_suites_never_end_passed(tmp_path: Path) -> None:
    pytest_suite(tmp_path, shards=3)
    with (tmp_path / "test_many.py").open("a") as module:
        module.write(EXTRA_IN_SHARD_2)
    status, stderr = run(tmp_path)
    stalled = stalled_condition(status)
    assert (status["phase"], stalled["reason"]) == ("Stalled", "RunnerError"), stderr
    assert (
        "shards collected different suites: shards 1, 3 12 tests, shard 2 13 tests: "
        "a test may have run in no shard"
    ) in stalled["message"]
    assert "shards collected different suites" in stderr  # said as it happened


# ---------------------------------------------------------------------------
# A rerun: only the failures, assigned by greenloop, in no more shards than help


def test_a_rerun_of_two_failures_runs_only_them_in_their_own_shards(tmp_path: Path) -> None:
    # Each takes 3 s: a second shard is worth starting (shards_worth_starting: it costs
    # what iteration 1's processes showed, or 1 s), a third has nothing to run.
    pytest_suite(tmp_path, shards=3, flaky=("test_03", "test_07"), slow=("test_03", "test_07"))
    status, stderr = run(tmp_path)
    assert status["phase"] == "Passed", stderr
    assert status["summary"]["total"] == 12
    second = tmp_path / "out" / "iteration-2"
    selections = sorted(p.read_text().split() for p in second.glob("e2e.shard-*.select"))
    assert selections == [
        ["test_many.py::test_03"],
        ["test_many.py::test_07"],
    ]  # two failures: two shards, not three; each its own selection file
    rerun = [test for test, _ in ran(tmp_path)[12:]]
    assert sorted(rerun) == ["test_many.py::test_03", "test_many.py::test_07"]


# ---------------------------------------------------------------------------
# A runner that ignores the variables: never a pass

GENERIC = """\
import os, pathlib
cases = "".join(f'<testcase classname="generic" name="t{n}"/>' for n in range(4))
pathlib.Path(os.environ["GREENLOOP_JUNIT_XML"]).write_text(f"<testsuite>{cases}</testsuite>")
"""


def test_a_runner_that_ignores_the_shard_variables_ends_selection_ignored(
    tmp_path: Path,
) -> None:
    (tmp_path / "generic.py").write_text(GENERIC)
    suite = {"name": "e2e", "command": [sys.executable, "generic.py"]}
    write_validation(tmp_path, suite, shards=2, parallelism=2)
    status, _ = run(tmp_path)
    stalled = stalled_condition(status)
    assert (status["phase"], stalled["reason"]) == ("Stalled", "SelectionIgnored")
    assert status["summary"]["passed"] == 0  # every shard said every test passed: not believed
    assert "GREENLOOP_SHARD_INDEX" in stalled["message"]


# ---------------------------------------------------------------------------
# A shard that produced nothing: a RunnerError for its tests only

# A whole-suite run splits by position and fails t0..t3; on a rerun (a selection) the
# shard given t3 "is killed" (exits 137, no JUnit), every time, and the others pass what
# they were given.
LOSES_THE_SHARD_OF_T3 = """\
import os, pathlib
index = int(os.environ["GREENLOOP_SHARD_INDEX"]); count = int(os.environ["GREENLOOP_SHARD_COUNT"])
select = os.environ.get("GREENLOOP_SELECT")
if select and "t3" in pathlib.Path(select).read_text().split():
    raise SystemExit(137)
if select:
    ids, failing = pathlib.Path(select).read_text().split(), set()
else:
    ids = [f"t{n}" for n in range(6) if n % count == index]
    failing = {"t0", "t1", "t2", "t3"}
bad = '<failure message="AssertionError: assert 1 == 2"/>'
cases = "".join(
    f'<testcase classname="" name="{t}">{bad if t in failing else ""}</testcase>' for t in ids
)
pathlib.Path(os.environ["GREENLOOP_JUNIT_XML"]).write_text(f"<testsuite>{cases}</testsuite>")
"""


def test_a_shard_that_produced_nothing_is_a_runner_error_for_its_tests_only(
    tmp_path: Path,
) -> None:
    (tmp_path / "split.py").write_text(LOSES_THE_SHARD_OF_T3)
    suite = {"name": "e2e", "command": [sys.executable, "split.py"]}
    write_validation(tmp_path, suite, shards=2, parallelism=2)
    status, _ = run(tmp_path)
    out = tmp_path / "out"

    def selected(iteration: int, index: int) -> set[str]:
        path = out / f"iteration-{iteration}" / f"e2e.shard-{index}.select"
        return set(path.read_text().split()) if path.exists() else set()

    # Iteration 2 reran the four failures in two shards (4 s of unknown durations: two
    # are worth starting); the one given t3 produced nothing, so its tests (and only
    # those) are RunnerErrors; iteration 3 retried only them.
    (dead,) = [i for i in (0, 1) if "t3" in selected(2, i)]
    lost = selected(2, dead)
    assert selected(2, 1 - dead) | lost == {"t0", "t1", "t2", "t3"} and lost
    assert selected(3, 0) | selected(3, 1) == lost
    # Lost again: the round stops on RunnerError, never Passed; what the other shard ran
    # passed.
    assert (status["phase"], stalled_condition(status)["reason"]) == ("Stalled", "RunnerError")
    failing = {t["id"]: t["class"] for t in status["failingTests"]}
    assert set(failing.values()) == {"RunnerError"}
    assert set(failing) == lost and status["summary"]["passed"] == 6 - len(failing)
    report = (out / "report.md").read_text()
    assert f"shard {dead + 1}/2 (process, log e2e.shard-{dead}.log): no results" in report


# ---------------------------------------------------------------------------
# The demo's sharded variant: the same verdict, its extended suite in 3 processes


def test_the_sharded_demo_converges_as_the_demo_does(demo: Path, tmp_path: Path) -> None:
    proc = greenloop(
        "run", "demo/validation-sharded.yaml", "--json", "--report", "report.md", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)["status"]
    assert (status["phase"], status["iteration"]) == ("Passed", 2)
    assert status["summary"]["passed"] == status["summary"]["total"] == 41
    iteration_1 = tmp_path / ".greenloop" / "default" / "demo-sharded" / "iteration-1"
    assert sorted(p.name for p in iteration_1.glob("extended.shard-*.xml")) == [
        f"extended.shard-{i}.xml" for i in range(3)
    ]
    report = (tmp_path / "report.md").read_text()
    for index in range(1, 4):
        assert f"suite extended: shard {index}/3 (process, log extended.shard-" in report
