"""SIGKILL the operator at each step of the demo, restart it: the same verdict, no twin.

Each kill point is a failpoint (greenloop/k8s/failpoints.py, docs/design.md §8): the
operator runs with GREENLOOP_FAILPOINTS=<point>[:n] and SIGKILLs itself exactly there,
so no point depends on a poll catching a moment. The test checks it died that way (exit
-9 and the failpoint's log line), starts it again without failpoints, and compares the
end with one uninterrupted reference run of the same demo: phase, reasons, counts,
iterations; one Job per suite per iteration per round; one rollout (ReplicaSets).

The demo is the kwok one of test_operator_loop.py: two suites, `core` fails with an HTTP
503 in iteration 1, a redeploy of Deployment backend (a real ReplicaSet), `target.health`
(any loopback URL that answers 200: the operator's own /healthz), iteration 2 reruns only
the failed test and passes. The test plays the results sidecar (tests/support/sidecar.py).

Every scenario has its own namespace and operator, so the scenarios run a few at a time
(the `runs` fixture) and each test only checks its own; the file stays ~3 min.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from greenloop.k8s.failpoints import ENV
from tests.support.sidecar import (
    Sidecar,
    Snapshot,
    labels_of,
    two_suite_answer,
    two_suite_demo,
)
from tests.support.workloads import roll_out
from tools.cluster.controlplane import ControlPlane
from tools.cluster.crds import ensure_crd, ensure_peering
from tools.cluster.operator import Operator
from tools.cluster.procs import free_ports, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

#: Where to kill it: (failpoint, its n-th hit), in the order the demo meets them.
POINTS = [
    ("job-created", 1),  # iteration 1's first Job, suspended, nothing else yet
    ("job-resumed", 2),  # both Jobs of iteration 1 resumed
    ("report-written", 1),  # the first report, status not yet written
    ("status-written", 1),  # the first status, its IterationStarted Event not posted
    ("results-stored", 1),  # an upload stored, the sidecar not answered: it retries
    ("status-written", 3),  # Redeploy decided and written, not yet carried out
    ("rollout-patched", 1),  # the token is in the pod template, not marked started
    ("rollout-waiting", 1),  # the rollout is in progress
    ("health-wait", 1),  # rolled out, target.health not yet asked
    ("redeploy-done", 1),  # RedeployDone written
    ("job-created", 3),  # iteration 2's rerun Job
    ("selection-created", 1),  # the rerun's selection ConfigMap
    ("results-stored", 3),  # the rerun's results stored, not answered
    ("status-written", 6),  # Passed written, its Event not posted
]
PARALLEL = 4
# Generous: on a shared 2-core machine at load 25 one scenario took 250 s (3 min
# for the whole file when the machine is quiet).
SCENARIO_SECONDS = 480.0
SETUP_SECONDS = 300.0  # an operator's start: ~5 s when quiet, 60 s seen at load 25


@dataclass
class Outcome:
    namespace: str
    exits: list[int]  # of the runs that ended before the verdict
    log: str
    status: dict[str, Any]
    jobs: list[tuple[str, ...]]  # (round, iteration, suite) of each Job
    replicasets: int
    upload_failures: list[str]
    others: list[str]  # the logs of the other operators (twins, failover)

    def verdict(self) -> dict[str, Any]:
        """What a user reads of the end, without timestamps."""
        status = self.status
        return {
            "phase": status.get("phase"),
            "iteration": status.get("iteration"),
            "summary": status.get("summary"),
            "conditions": sorted(
                (c["type"], c["status"], c.get("reason")) for c in status.get("conditions", [])
            ),
            "history": [
                (h["iteration"], h["action"], h["passed"], h["failed"], h.get("reason"))
                for h in status.get("history", [])
            ],
            "failing": status.get("failingTests", []),
        }


@dataclass(frozen=True)
class Case:
    """restart: one operator, killed at `point`, started again (no point: the reference);
    twins: two standalone operators at once; failover: an active/standby pair (kopf
    peering), the active killed at `point` and never restarted."""

    mode: str
    point: tuple[str, int] | None = None

    @property
    def tag(self) -> str:
        return self.mode + (f"-{self.point[0]}-{self.point[1]}" if self.point else "")


REFERENCE = Case("restart")
TWINS = Case("twins")
FAILOVER = Case("failover", ("rollout-patched", 1))
OUTRANKED = Case("outranked")
PEERING = "greenloop"
LIFETIME = 10  # --peering-lifetime for the failover case: the most a standby waits


def stamp(line: str) -> float:
    """The time of a text-format log line: `[2026-12-01 23:07:04,568] ...`."""
    return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def ticks(log: str, namespace: str) -> list[str]:
    """The operator's lines for each tick of the demo object."""
    return [line for line in log.splitlines() if f" {namespace}/demo: " in line]


def scenario(cp: ControlPlane, tmp: Path, case: Case) -> Outcome:
    """The demo in a fresh namespace, as `case` says."""
    point = case.point
    namespace = cp.create_namespace(f"{case.tag}-{int(time.time() * 1000) % 100000}")
    work = tmp / case.tag
    work.mkdir()
    roll_out(cp, namespace, "backend", timeout=90)

    def operator(name: str, *args: str) -> Operator:
        port = free_ports(1)[0]
        url = f"http://127.0.0.1:{port}"
        return Operator(cp, namespace, work / f"{name}.log", url, port, args=args)

    killer = {ENV: f"{point[0]}:{point[1]}"} if point else None
    peer = ("--peering", PEERING, "--peering-lifetime", str(LIFETIME))
    ops: list[Operator] = []
    car = Sidecar(namespace, None, two_suite_answer, work)
    restarted_at = 0  # log offset where the restarted run begins
    try:
        if case.mode == "failover":
            ensure_peering(cp, namespace, PEERING)
            ops += [operator("active", *peer, "--priority", "100"), operator("standby", *peer)]
            ops[0].start(env=killer)
            wait_until(
                "the active's peering record",
                lambda: peers(cp, namespace) == 1,
                timeout=SETUP_SECONDS,
                interval=0.5,
            )
            ops[1].start()  # priority 0: it finds a higher peer, and stays paused
            wait_until(
                "the standby's peering record",
                lambda: peers(cp, namespace) == 2,
                timeout=SETUP_SECONDS,
                interval=0.5,
            )
        elif case.mode == "outranked":
            # The standby works alone first; then a higher-priority peer appears.
            ensure_peering(cp, namespace, PEERING)
            ops += [operator("active", *peer, "--priority", "100"), operator("standby", *peer)]
            ops[1].start()
            wait_until(
                "the standby's peering record",
                lambda: peers(cp, namespace) == 1,
                timeout=SETUP_SECONDS,
                interval=0.5,
            )
            cp.apply(
                two_suite_demo("demo", health_url=f"{ops[-1].url}/healthz"), namespace=namespace
            )
            wait_until(
                "the standby's first Jobs",
                lambda: Snapshot.take(cp, namespace).jobs,
                timeout=SETUP_SECONDS,
                interval=0.5,
            )
            ops[0].start()
            wait_until(
                "the active's peering record",
                lambda: peers(cp, namespace) == 2,
                timeout=SETUP_SECONDS,
                interval=0.5,
            )
        else:
            ops += [operator("operator")] + ([operator("second")] if case.mode == "twins" else [])
            for op in ops:
                op.start(env=killer)
        if case.mode != "outranked":
            cp.apply(
                two_suite_demo("demo", health_url=f"{ops[-1].url}/healthz"), namespace=namespace
            )
        deadline = time.monotonic() + SCENARIO_SECONDS
        seen = Snapshot.take(cp, namespace)
        while time.monotonic() < deadline:
            code = ops[0].exited()
            if code is not None and case.mode == "restart" and point and len(ops[0].exits) == 1:
                restarted_at = ops[0].log.stat().st_size
                ops[0].start()  # no failpoints this time
            elif code is not None and case.mode != "failover":
                break  # an unplanned exit: the assertions say so
            seen = Snapshot.take(cp, namespace)
            car.serve(seen)
            done = seen.status("demo").get("phase") in ("Passed", "Stalled")
            # The run that finishes must have looked at the finished object itself.
            last = ops[-1] if case.mode == "failover" else ops[0]  # the one that finishes
            log = last.log.read_bytes()[restarted_at:].decode(errors="replace")
            if done and (point is None or ops[0].exits) and f"{namespace}/demo: finished:" in log:
                break
            time.sleep(1.0)
        car.finish()
        seen = Snapshot.take(cp, namespace)
        rs = cp.get_json("replicasets", "-n", namespace, "-l", "app=backend")["items"]
        jobs = [
            tuple(labels_of(j)[f"greenloop.dev/{k}"] for k in ("round", "iteration", "suite"))
            for j in seen.jobs
        ]
        for op in ops[1:]:
            op.exited()
        return Outcome(
            namespace=namespace,
            exits=list(ops[0].exits) + [e for op in ops[1:] for e in op.exits],
            log=ops[0].log.read_text(errors="replace"),
            status=seen.status("demo"),
            jobs=sorted(jobs),
            replicasets=len(rs),
            upload_failures=car.failed(),
            others=[op.log.read_text(errors="replace") for op in ops[1:]],
        )
    finally:
        for op in ops:
            op.kill(signal.SIGTERM)
        cp.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def peers(cp: ControlPlane, namespace: str) -> int:
    obj = cp.get_json("kopfpeering", PEERING, "-n", namespace, check=False) or {}
    return len(obj.get("status") or {})


Runs = dict[Case, "Future[Outcome]"]


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    """The reference and every case this session selected, a few at a time; each test
    waits for its own."""
    ensure_crd(cluster)
    tmp = tmp_path_factory.mktemp("restart")
    chosen = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures: Runs = {REFERENCE: pool.submit(scenario, cluster, tmp, REFERENCE)}
        # The slow ones first, so they do not end up last alone.
        for case in sorted(set(chosen), key=lambda c: c.mode == "restart"):
            futures[case] = pool.submit(scenario, cluster, tmp, case)
        yield futures
        for future in futures.values():
            future.cancel()


def reference(runs: Runs) -> Outcome:
    return runs[REFERENCE].result(timeout=SCENARIO_SECONDS * 2)


def same_end_as_the_reference(got: Outcome, ref: Outcome) -> None:
    tail = got.log[-4000:]
    assert got.verdict() == ref.verdict(), tail
    assert len(got.jobs) == len(set(got.jobs)), f"a twin Job: {got.jobs}"
    assert got.jobs == ref.jobs, "one Job per suite per iteration per round"
    assert got.replicasets == ref.replicasets == 2, "at most one rollout per iteration"
    assert got.upload_failures == [], "every upload was stored in the end"


def test_the_reference_run_passes_with_one_rollout(runs: Runs) -> None:
    ref = reference(runs)
    assert ref.exits == [], ref.log[-3000:]
    assert ref.verdict()["phase"] == "Passed", ref.verdict()
    assert ref.verdict()["iteration"] == 2
    assert ref.jobs == [("1", "1", "core"), ("1", "1", "critical"), ("1", "2", "core")]
    assert ref.replicasets == 2
    assert ref.upload_failures == []


@pytest.mark.parametrize(
    "case", [Case("restart", p) for p in POINTS], ids=[f"{p}:{n}" for p, n in POINTS]
)
def test_sigkill_at_a_step_then_restart_ends_as_the_reference_does(runs: Runs, case: Case) -> None:
    got = runs[case].result(timeout=SCENARIO_SECONDS * 4)
    assert case.point is not None
    name, n = case.point
    assert got.exits == [-signal.SIGKILL], f"exits {got.exits}\n{got.log[-4000:]}"
    assert f"failpoint {name} reached (hit {n}): SIGKILL" in got.log, got.log[-4000:]
    same_end_as_the_reference(got, reference(runs))


@pytest.mark.parametrize("case", [TWINS], ids=["twins"])
def test_two_standalone_operators_at_once_make_one_job_per_suite_and_one_rollout(
    runs: Runs, case: Case
) -> None:
    got = runs[case].result(timeout=SCENARIO_SECONDS * 4)
    assert got.exits == [], got.log[-3000:]
    # Both really worked on the object (each ticked it), and neither made a twin.
    for log in (got.log, *got.others):
        assert ticks(log, got.namespace), log[-3000:]
    same_end_as_the_reference(got, reference(runs))


@pytest.mark.parametrize("case", [FAILOVER], ids=["failover"])
def test_the_standby_stays_idle_then_takes_over_when_the_active_is_killed(
    runs: Runs, case: Case
) -> None:
    got = runs[case].result(timeout=SCENARIO_SECONDS * 4)
    standby = got.others[0]
    assert got.exits == [-signal.SIGKILL], f"exits {got.exits}\n{got.log[-3000:]}"
    killed = stamp(next(x for x in got.log.splitlines() if "failpoint rollout-patched" in x))
    mine = ticks(standby, got.namespace)
    assert mine, standby[-3000:]
    assert all(stamp(line) > killed for line in mine), "the standby acted while the active lived"
    taken_over = stamp(mine[0]) - killed
    resumed = [x for x in standby.splitlines() if "Resuming operations after the pause" in x]
    print(
        f"\nfailover (peering lifetime {LIFETIME} s): kill -> standby resumes "
        f"{stamp(resumed[0]) - killed:.1f} s, -> its first tick {taken_over:.1f} s"
    )
    same_end_as_the_reference(got, reference(runs))


@pytest.mark.parametrize("case", [OUTRANKED], ids=["outranked"])
def test_a_working_standby_stops_ticking_when_a_higher_priority_peer_appears(
    runs: Runs, case: Case
) -> None:
    got = runs[case].result(timeout=SCENARIO_SECONDS * 4)
    standby = ticks(got.others[0], got.namespace)
    active = ticks(got.log, got.namespace)
    assert got.exits == [], got.log[-3000:]
    assert standby, "the standby worked while it was alone"
    assert active, got.log[-3000:]
    # Its peering view is cached 2 s and a tick in flight may end: 5 s after the active's
    # first tick the standby must be idle (kopf pauses only kopf's own watches).
    late = [line for line in standby if stamp(line) > stamp(active[0]) + 5]
    assert late == [], "\n".join(late[:10])
    same_end_as_the_reference(got, reference(runs))
