"""suites[].shards in operator mode on the real node (docs/design.md §4.1): one Indexed
Job per suite run, each pod told its shard, each index's sidecar uploading its own
results, merged into one result per suite.

Grouped by rule: a sharded suite passes with each test counted once; a shard whose pod
is deleted is a RunnerError for its tests only, never Passed until a rerun shows them
passing; that rerun schedules only the shards it needs; a runner told its part by
arguments (Jest here) gets them through the pod's shell wrapper, ``--shard`` on the
whole-suite run and each index's selection on the rerun; a sharded suite whose image
does not exist stops at once with the kubelet's reason."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support import node_suite
from tests.support.node_suite import report_text, verdict
from tools.cluster.controlplane import ControlPlane
from tools.cluster.node import IMAGES
from tools.cluster.operator import Operator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

INDEX = "batch.kubernetes.io/job-completion-index"


@pytest.fixture
def operator(node_operator: Operator) -> Operator:
    return node_operator


def pytest_command(body: str, tests: int) -> list[str]:
    """A real pytest run (greenloop's plugin, in the demo-suites image) of ``tests``
    tests, each running ``body``; it splits by GREENLOOP_SHARD_INDEX/COUNT or runs its
    GREENLOOP_SELECT file."""
    source = 'import os, time\\nIT = int(os.environ["GREENLOOP_ITERATION"])\\n'
    source += "".join(f"\\ndef test_{n}():\\n    {body}\\n" for n in range(tests))
    return [
        "sh",
        "-c",
        f"printf '{source}' > /tmp/test_shards.py && cd /tmp && "
        "python3 -m pytest -q -p no:cacheprovider test_shards.py",
    ]


def validation(
    name: str,
    command: list[str],
    *,
    shards: int,
    tests: int,
    runner: str = "pytest",
    image: str = IMAGES["demo-suites"],
) -> dict[str, Any]:
    """One suite `e2e` in ``shards`` shards, as many pods at once."""
    suite = {
        "image": image, "runner": runner, "command": command, "timeoutSeconds": 240,
        "shards": shards,
    }  # fmt: skip
    policy = {"maxIterations": 4, "parallelism": shards}
    return node_suite.validation(name, suite, tests, suite_name="e2e", policy=policy)


def jobs(cluster: ControlPlane, ns: str) -> dict[int, dict[str, Any]]:
    """The suite's Jobs by iteration."""
    items = cluster.get_json("jobs", "-n", ns)["items"]
    return {int(j["metadata"]["labels"]["greenloop.dev/iteration"]): j for j in items}


# ---------------------------------------------------------------------------
# A sharded suite passes, each test counted once


def test_a_sharded_suite_passes_with_each_test_counted_once(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    cluster.apply(validation("sharded", pytest_command("pass", 8), shards=3, tests=8), namespace=ns)
    status = verdict(cluster, operator, "sharded", 300)
    assert status["phase"] == "Passed", f"{json.dumps(status)[:3000]}\n{operator.tail()}"
    assert status["summary"]["total"] == status["summary"]["passed"] == 8
    (job,) = jobs(cluster, ns).values()
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["backoffLimitPerIndex"]) == (
        "Indexed",
        3,
        0,
    )
    stored = cluster.get_json("configmaps", "-n", ns, "-l", "greenloop.dev/results")["items"]
    assert len(stored) == 3  # one upload per index, each owned by the Job
    assert {s["metadata"]["ownerReferences"][0]["uid"] for s in stored} == {job["metadata"]["uid"]}
    text = report_text(cluster, ns, status)
    for index in range(1, 4):
        assert f"suite e2e: shard {index}/3 (" in text, text


# ---------------------------------------------------------------------------
# A deleted shard pod: a RunnerError for its tests only; the rerun runs only them


def test_a_deleted_shard_pod_is_a_runner_error_for_its_tests_until_a_rerun_passes_them(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    # Iteration 1: every test fails after 3 s (a rerun follows, assigned by greenloop;
    # 18 s of tests are worth three shards at the default start cost). Iteration 2: each
    # test takes 20 s, time to delete shard 2's pod. Iteration 3: they pass.
    body = 'time.sleep(3 if IT == 1 else 20 if IT == 2 else 0); assert IT != 1, "first run fails"'
    cluster.apply(validation("lost", pytest_command(body, 6), shards=3, tests=6), namespace=ns)
    deadline = time.monotonic() + 240
    victim = ""
    while time.monotonic() < deadline and not victim:
        for pod in cluster.get_json("pods", "-n", ns, "-l", "greenloop.dev/iteration=2")["items"]:
            running = pod.get("status", {}).get("phase") == "Running"
            if running and pod["metadata"]["annotations"].get(INDEX) == "1":
                victim = pod["metadata"]["name"]
        time.sleep(0.5)
    assert victim, f"no running pod of index 1 in iteration 2\n{operator.tail()}"
    # A 1 s grace period: the suite's `sh` (PID 1) ignores SIGTERM, and with the default
    # grace the shard would finish its tests and upload them before it is killed.
    cluster.kubectl("delete", "pod", "-n", ns, victim, "--grace-period=1", "--wait=false")
    status = verdict(cluster, operator, "lost", 400)
    by_iteration = jobs(cluster, ns)
    assert 3 in by_iteration, f"{json.dumps(status)[:3000]}\n{operator.tail()}"
    second, third = by_iteration[2], by_iteration[3]

    def selection(job: dict[str, Any]) -> dict[str, set[str]]:
        name = next(
            v["configMap"]["name"]
            for v in job["spec"]["template"]["spec"]["volumes"]
            if v["name"] == "select"
        )
        data = cluster.get_json("configmap", name, "-n", ns)["data"]
        return {key: set(text.split()) for key, text in data.items()}

    lost = selection(second)["tests-1.txt"]
    assert lost, selection(second)
    assert set(selection(second)) == {
        f"tests-{i}.txt" for i in range(second["spec"]["completions"])
    }
    # The rerun ran the lost shard's tests, and only those, in no more shards than they.
    rerun = selection(third)
    assert set().union(*rerun.values()) == lost
    assert third["spec"]["completions"] == len(rerun) <= len(lost)
    # Iteration 2 ended with those tests RunnerErrors, the others passed; iteration 3
    # shows them passing: only then Passed.
    assert status["phase"] == "Passed", f"{json.dumps(status)[:3000]}\n{operator.tail()}"
    assert status["summary"]["total"] == 6
    history = {h["iteration"]: h for h in status["history"]}
    assert (history[2]["passed"], history[2]["failed"]) == (6 - len(lost), len(lost))
    text = report_text(cluster, ns, status)
    count = second["spec"]["completions"]
    # The pod was gone when the index was read: the line names it all the same.
    lost_line = f"iteration 2: suite e2e: shard 2/{count} (pod {victim}, deleted): no results"
    assert lost_line in text, text
    # Passing again after a lost shard is no flake; failing in iteration 1 was.
    assert status["summary"]["passed"] == 6


# ---------------------------------------------------------------------------
# A runner told its part by arguments: through the pod's shell wrapper


# A stand-in for Jest (the image has Python and /bin/sh, not Node): it takes Jest's
# --shard=i/n and -t PATTERN, runs its tests t0..t5 of f.test.js (t1 and t4 fail in
# iteration 1), and writes jest-junit's XML to $JEST_JUNIT_OUTPUT_FILE, which the
# operator sets for runner: jest. Each test reports 3 s, so the rerun of two is worth two
# shards (shards.shards_worth_starting).
FAKE_JEST = """import os, re, sys
args, shard, pattern = sys.argv[1:], None, None
for i, a in enumerate(args):
    if a.startswith("--shard="): shard = tuple(int(x) for x in a[8:].split("/"))
    if a == "-t": pattern = args[i + 1]
names = [f"t{n}" for n in range(6)]
if shard: names = [n for k, n in enumerate(names) if k % shard[1] == shard[0] - 1]
if pattern: names = [n for n in names if re.search(pattern, n)]
it = os.environ["GREENLOOP_ITERATION"]
cases = "".join(
    f'<testcase classname="f.test.js" name="{n}" time="3">'
    + ("<failure>first run</failure>" if it == "1" and n in ("t1", "t4") else "")
    + "</testcase>" for n in names)
with open(os.environ["JEST_JUNIT_OUTPUT_FILE"], "w") as out:
    out.write(f"<testsuites><testsuite>{cases}</testsuite></testsuites>")
print("argv", args)
"""


def test_a_jest_suite_in_shards_gets_its_shard_and_its_selection_through_the_wrapper(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    source = FAKE_JEST.replace("'", "'\\''")
    command = [
        "sh",
        "-c",
        f"printf '%s' '{source}' > /tmp/jest.py && exec python3 /tmp/jest.py \"$@\"",
        "jest",
        "--ci",
        "{greenloop:select}",
    ]
    cluster.apply(validation("jest", command, shards=2, tests=6, runner="jest"), namespace=ns)
    status = verdict(cluster, operator, "jest", 400)
    assert status["phase"] == "Passed", f"{json.dumps(status)[:3000]}\n{operator.tail()}"
    # Iteration 1 ran each test once (no shard reported another's: no SelectionIgnored),
    # iteration 2 only the two that failed, each in the shard given it (two shards).
    assert status["summary"]["total"] == status["summary"]["passed"] == 6
    history = {h["iteration"]: h for h in status["history"]}
    assert (history[1]["passed"], history[1]["failed"]) == (4, 2), history
    by_iteration = jobs(cluster, ns)
    second = by_iteration[2]
    name = next(
        v["configMap"]["name"]
        for v in second["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "select"
    )
    data = cluster.get_json("configmap", name, "-n", ns)["data"]
    assert second["spec"]["completions"] == 2
    assert {k for k in data if k.startswith("args-")} == {"args-0.txt", "args-1.txt"}
    command_run = second["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command_run[:2] == ["/bin/sh", "-c"], command_run


# ---------------------------------------------------------------------------
# A sharded suite whose image does not exist stops at once


def test_a_sharded_suite_whose_image_does_not_exist_stops_with_the_kubelet_s_reason(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    spec = validation("noimage", ["pytest"], shards=2, tests=4, image="localhost/no-such-image:dev")
    spec["spec"]["suites"][0]["timeoutSeconds"] = 900
    cluster.apply(spec, namespace=ns)
    # Before the rule applied to an Indexed Job's pods, this took 2 x 900 s.
    status = verdict(cluster, operator, "noimage", 240)
    condition = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (status["phase"], condition["reason"]) == ("Stalled", "RunnerError"), condition
    message = condition["message"]
    assert "ErrImagePull" in message or "ImagePullBackOff" in message, message
    (job,) = jobs(cluster, ns).values()
    assert job["spec"]["suspend"] is True
