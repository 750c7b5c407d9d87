"""Nothing a tenant does to its own objects wedges the operator (docs/design.md §8):
a name deleted and recreated in a burst, more tests than a status can hold, rule sets
too large to compile, a tampered `status.engine`, a deadline that passes mid-round.
Each ends in a named condition within a bounded time, with the operator's peak RSS
under the chart's default memory limit. The kwok cluster of test_operator_lifecycle.py,
the operator on the host; no pods run (the Jobs name an account that does not exist);
where results are needed, the test plays each Job's sidecar."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenloop.core import crd
from tests.integration.test_operator_loop import HEALTHZ_TIMEOUT, Healthz
from tests.support.sidecar import FAIL, PASS, Sidecar, Snapshot, junit, labels_of
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator
from tools.cluster.procs import wait_until

pytestmark = pytest.mark.integration

#: Bound on a fresh object's first status; a tick takes about a second here.
FIRST_STATUS_SECONDS = 30.0


ROOT = Path(__file__).resolve().parents[2]


def chart_memory_limit() -> int:
    """The chart's default `resources.limits.memory`, in bytes."""
    values = yaml.safe_load((ROOT / "charts/greenloop/values.yaml").read_text())
    text = str(values["resources"]["limits"]["memory"])
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    return int(text[:-2]) * units[text[-2:]] if text[-2:] in units else int(text)


def peak_rss(operator: Operator) -> int:
    """The operator process's peak resident set (VmHWM), in bytes."""
    assert operator.proc is not None
    for line in Path(f"/proc/{operator.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def sv(
    name: str = "demo", suites: tuple[str, ...] = ("core",), command: tuple[str, ...] = ("pytest",),
    **spec: Any,
) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": {
            "suites": [
                {"name": s, "command": list(command), "image": "localhost/e2e:dev"} for s in suites
            ],
            "serviceAccountName": "no-such-account",  # no pods on kwok
            **spec,
        },
    }


def send(cp: ControlPlane, method: str, path: str, body: str | None = None) -> int:
    """One request as admin, without kubectl's start-up time between requests."""
    req = urllib.request.Request(
        cp.server + path, data=body.encode() if body else None, method=method,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, context=cp._ssl_context(), timeout=10.0) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code)


def test_a_name_deleted_and_recreated_in_a_burst_gets_a_status_at_once(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    text = json.dumps(sv())
    path = f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/{crd.PLURAL}"
    assert send(cluster, "POST", path, text) == 201
    wait_until(  # the operator is up and serving the name
        "the first object's status",
        lambda: (cluster.get_json("sv", "demo", "-n", namespace).get("status") or {}).get("phase"),
        timeout=60.0,
        interval=0.5,
    )
    for _ in range(20):  # 20 times in about 4 s, as the finding measured
        time.sleep(0.1)
        assert send(cluster, "DELETE", f"{path}/demo") == 200
        assert send(cluster, "POST", path, text) == 201
    created = time.monotonic()
    uid = cluster.get_json("sv", "demo", "-n", namespace)["metadata"]["uid"]

    def status() -> dict[str, Any] | None:
        obj = cluster.get_json("sv", "demo", "-n", namespace)
        assert obj["metadata"]["uid"] == uid
        return obj.get("status", {}).get("phase") and obj["status"]

    wait_until("the last object's first status", status, timeout=FIRST_STATUS_SECONDS, interval=0.5)
    print(f"first status of the recreated object after {time.monotonic() - created:.1f} s")
    assert peak_rss(operator) < chart_memory_limit()
    assert operator.exited() is None, operator.tail()


def test_the_deadline_ends_a_running_round_and_stops_its_jobs(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    # Issue 19 item 8: deadlineSeconds 1 ended Passed after 31 s; a Job that never
    # reports (no pod runs here) kept the round Testing for good.
    cluster.apply(sv(policy={"deadlineSeconds": 1}), namespace=namespace)
    created = time.monotonic()

    def stalled() -> dict[str, Any] | None:
        status = cluster.get_json("sv", "demo", "-n", namespace).get("status") or {}
        return status if status.get("phase") == "Stalled" else None

    status = wait_until("the deadline to end the round", stalled, timeout=30.0, interval=0.5)
    print(f"deadlineSeconds 1: Stalled after {time.monotonic() - created:.1f} s")
    ready = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert ready["reason"] == "BudgetExhausted", status["conditions"]
    assert "deadlineSeconds (1) passed while suites ran (core)" in ready["message"], ready
    wait_until(
        "the round's Job to be deleted",
        lambda: not cluster.get_json("jobs", "-n", namespace)["items"],
        timeout=30.0,
        interval=0.5,
    )
    assert peak_rss(operator) < chart_memory_limit()
    assert operator.exited() is None, operator.tail()


#: Hand edits of status.engine, and the start of the message that names the field.
TAMPERED = {
    # Issue 19 item 5: a suite that does not exist waited "for Jobs" forever.
    "unknown suite": ({"running": [{"suite": "nope"}]}, "status.engine.running[0].suite: 'nope'"),
    # ... and an iteration of 1e70 made a Job label over 63 bytes and a retry loop.
    "iteration 1e70": ({"iteration": 1e70}, "status.engine.iteration: 1"),
}


@pytest.mark.parametrize("edit, says", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_engine_state_stalls_naming_the_field_and_a_rerun_recovers(
    cluster: ControlPlane, namespace: str, operator: Operator, edit: dict[str, Any], says: str
) -> None:
    cluster.apply(sv(), namespace=namespace)

    def status() -> dict[str, Any]:
        return cluster.get_json("sv", "demo", "-n", namespace).get("status") or {}

    wait_until("the round", lambda: status().get("engine"), timeout=60.0, interval=0.5)
    patch = {"status": {"engine": edit}}
    cluster.kubectl(
        "patch", "sv", "demo", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(patch),
    )  # fmt: skip
    edited = time.monotonic()
    stalled = wait_until(
        "the tampered state to stall",
        lambda: status() if status().get("phase") == "Stalled" else None,
        timeout=30.0,
        interval=0.5,
    )
    print(f"tampered status.engine: Stalled after {time.monotonic() - edited:.1f} s")
    cond = next(c for c in stalled["conditions"] if c["type"] == "Stalled")
    assert cond["reason"] == "InvalidState", cond
    assert cond["message"].startswith(says), cond
    cluster.kubectl("annotate", "sv", "demo", "-n", namespace, "greenloop.dev/rerun=1")
    wait_until(
        "a rerun to start a new round",
        lambda: status().get("phase") == "Testing",
        timeout=30.0,
        interval=0.5,
    )
    assert peak_rss(operator) < chart_memory_limit()
    assert operator.exited() is None, operator.tail()


# ---- more than an object can hold --------------------------------------------------------

#: Tests per suite of the finding: 3 suites x 27,000 passing tests. Their ids carry a
#: random parameter (as parametrized tests do), so they compress as real ids do, badly.
MANY = 27_000


def passing(count: int) -> Callable[[dict[str, Any]], bytes]:
    def answer(job: dict[str, Any]) -> bytes:
        suite = labels_of(job)["greenloop.dev/suite"]
        rng = random.Random(suite)
        return junit(
            *(PASS.format(c=f"{suite}.api", n=f"test_call[{rng.getrandbits(128):032x}]")
              for _ in range(count))
        )  # fmt: skip

    return answer


def no_results(job: dict[str, Any]) -> bytes | None:
    return None


def matched_by_the_last_rule(job: dict[str, Any]) -> bytes:
    """A failure only the 100th rule of `rules(FITS)` classifies (AuthError; the
    built-in classes would say Assertion): every rule is compiled and tried."""
    message = "upstream said no to rule99 " + "lorem ipsum " * 200
    return junit(PASS.format(c="api", n="ok"), FAIL.format(c="api", n="call", m=message))


def rules(pattern: str, cls: str = "ServerError") -> list[dict[str, str]]:
    """100 distinct rules (google-re2 would compile equal patterns once)."""
    return [{"pattern": f"{pattern}|rule{i}\\b", "class": cls} for i in range(100)]


#: Rules of an ordinary size: the object's 100 fit its budget (25 MiB charged).
FITS = r"said no to [a-z]+ \d{3,}"


#: A spec argument that leaves too little of etcd's 1.5 MiB for the state of 15,000
#: tests (which alone is within the state's budget): the API server refuses the status.
PADDING = "x" * 1_300_000


@dataclass(frozen=True)
class Wedge:
    """Objects a tenant makes that must end in a named condition, not a retry loop."""

    spec: dict[str, Any]
    answer: Callable[[dict[str, Any]], bytes | None]
    reason: str  # the Stalled condition's reason
    says: str  # in its message: the limit it names
    objects: int = 1


WEDGES = {
    # The status write failed "request is too large" and was retried forever: Testing,
    # no condition, no Event.
    "27k x 3 passing tests": Wedge(
        {"suites": ("a", "b", "c")}, passing(MANY), "TooManyTests", "holds at most 1.0 MiB"
    ),
    "a status etcd refuses": Wedge(
        {"command": ("pytest", PADDING)}, passing(15_000), "StatusRejected", "too large"
    ),
    # 100 rules CEL accepts, each compiling to ~2.6 MiB at RE2's default max_mem, took
    # the operator to 1.13 GiB and a 19 s compile inside one tick (x 2 objects).
    "100 rules over max_mem x 2": Wedge(
        {"classification": rules(r"\pL{150}")},
        no_results,
        "RulesTooLarge",
        "max_mem 1 MiB",
        objects=2,
    ),
    # Within every bound: both objects' 100 rules are compiled and classify the failure.
    "100 rules within the budget x 2": Wedge(
        {"classification": rules(FITS, "AuthError"), "policy": {"flakeRetries": 0}},
        matched_by_the_last_rule,
        "AuthError",
        "",
        objects=2,
    ),
    # Each fits RE2's max_mem of 1 MiB; 100 of them are more than an object's budget.
    "100 rules over the object's budget x 2": Wedge(
        {"classification": rules(r"\pL{30}")},
        no_results,
        "RulesTooLarge",
        "at most 32 MiB",
        objects=2,
    ),
}


@pytest.mark.parametrize("case", WEDGES.values(), ids=WEDGES.keys())
def test_what_an_object_cannot_hold_stalls_it_naming_the_limit(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path, case: Wedge
) -> None:
    # Issue 19 item 5: the status write failed "etcdserver: request is too large" and was
    # retried forever (Testing, no condition, no Event); 100-rule sets took 1.13 GiB.
    names = [f"w{i}" for i in range(case.objects)]
    healthz = Healthz(f"{operator.url}/healthz")
    poller = threading.Thread(target=healthz.run, daemon=True)
    poller.start()
    started = time.monotonic()
    path = f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/{crd.PLURAL}"
    for name in names:  # not kubectl apply: its annotation would copy the spec
        assert send(cluster, "POST", path, json.dumps(sv(name, **case.spec))) == 201
    car = Sidecar(namespace, operator.url, case.answer, tmp_path)

    def stalled() -> dict[str, dict[str, Any]] | None:
        seen = Snapshot.take(cluster, namespace)
        car.serve(seen)
        done = {n: seen.status(n) for n in names if seen.status(n).get("phase") == "Stalled"}
        return done if len(done) == len(names) else None

    try:
        done = wait_until("every object to stall", stalled, timeout=240.0, interval=1.0)
    finally:
        healthz.stop.set()
        poller.join(HEALTHZ_TIMEOUT + 5)
        car.finish()
    took = time.monotonic() - started
    for name, status in done.items():
        cond = next(c for c in status["conditions"] if c["type"] == "Stalled")
        assert (cond["status"], cond["reason"]) == ("True", case.reason), (name, cond)
        assert case.says in cond["message"], cond
        events = cluster.get_json(
            "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
        )["items"]
        assert any(e["reason"] == case.reason and e["type"] == "Warning" for e in events), [
            (e["reason"], e["message"][:80]) for e in events
        ]
    peak = peak_rss(operator)
    lag = max(healthz.latencies, default=0.0)
    print(
        f"{case.reason}: {len(names)} object(s) Stalled after {took:.1f} s; operator peak RSS "
        f"{peak / 2**20:.0f} MiB; /healthz worst {lag * 1000:.0f} ms of "
        f"{len(healthz.latencies)} polls"
    )
    assert peak < chart_memory_limit(), f"peak RSS {peak / 2**20:.0f} MiB"
    assert healthz.failures == [], healthz.failures[:5]
    # It sticks: no further write, no retry loop, until a new round.
    version = cluster.get_json("sv", names[0], "-n", namespace)["metadata"]["resourceVersion"]
    time.sleep(5.0)
    again = cluster.get_json("sv", names[0], "-n", namespace)["metadata"]["resourceVersion"]
    assert again == version, "the stalled status is written again and again"
    assert operator.exited() is None, operator.tail()
