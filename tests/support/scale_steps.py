"""The steps whose work must not grow faster than their input (issue 17), built for a
size n: the operator's store and units at n objects, and a sharded suite's merge at n
tests. Shared by the size tests, which count the lines each runs at n and 10·n
(tests/unit/test_k8s_store_scale.py, tests/unit/test_shard_results_scale.py), and
bench/store_scale.py, which prints those counts and CPU times as ratios.

Each builder takes n and returns the step, ready to run once: what it needs (a filled
store, registered units, the shards' outcomes) is built before, outside what is counted.
`PACKAGE` is where the counted lines are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import greenloop
from greenloop.core import crd
from greenloop.core.model import Outcome, TestResult
from greenloop.core.shard_results import ShardOutcome, merge
from greenloop.core.shards import plan
from greenloop.k8s.gateway import Gateway
from greenloop.k8s.jobs import LABEL_MANAGED_BY
from greenloop.k8s.operator import Units
from greenloop.k8s.reconcile import Reconciler
from greenloop.k8s.store import Store

Step = Callable[[], object]
Builder = Callable[[int], Step]
UID = "greenloop.dev/validation-uid"
SHARDS = 8


# ---- the store: n objects' round ---------------------------------------------------------


def obj(name: str, rv: int, ns: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name, "namespace": ns, "uid": f"uid-{ns}-{name}",
            "resourceVersion": str(rv), "labels": dict(labels),
        },
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": "Running"},
    }  # fmt: skip


def round_of(n: int, namespaces: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """What n objects' round puts in the store, spread over `namespaces` (ns-0, ...):
    each object, its Job and that Job's pod (greenloop's labels), its target Deployment
    and the Deployment's pod."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        ns = f"ns-{i % namespaces}"
        out += [
            (crd.KIND, obj(f"sv-{i}", 1, ns)),
            ("Job", obj(f"job-{i}", 1, ns, **{UID: f"sv-{i}", LABEL_MANAGED_BY: "greenloop"})),
            ("Pod", obj(f"job-{i}-pod", 1, ns, **{UID: f"sv-{i}", "job-name": f"job-{i}"})),
            ("Deployment", obj(f"app-{i}", 1, ns)),
            ("Pod", obj(f"app-{i}-pod", 1, ns, app=f"app-{i}", **{"pod-template-hash": "1"})),
        ]  # fmt: skip
    return out


def filled(n: int, namespaces: int = 1) -> Store:
    """A store (every namespace) holding n objects' round."""
    s = Store(cast(Gateway, None))
    for kind, o in round_of(n, namespaces):
        s.seen(kind, o)
    return s


def _bumped(o: dict[str, Any], rv: int) -> dict[str, Any]:
    return {**o, "metadata": {**o["metadata"], "resourceVersion": str(rv)}}


def watch_events(n: int) -> Step:
    """Every object of the round modified once, then deleted: 2 events per object."""
    s, events = filled(n), round_of(n)

    def step() -> None:
        for kind, o in events:
            s.seen(kind, _bumped(o, 2))
        for kind, o in events:
            s.deleted(kind, _bumped(o, 3))

    return step


def selects(n: int, namespaces: int = 1) -> Step:
    """What each object's tick selects: its Job's pods, its target's pods."""
    s = filled(n, namespaces)

    def step() -> None:
        for i in range(n):
            ns = f"ns-{i % namespaces}"
            s.matching("Pod", ns, f"job-name=job-{i}")
            s.matching("Pod", ns, f"app=app-{i},pod-template-hash=1")

    return step


def relists(n: int) -> Step:
    """Each of n namespaces listed again (a watch error in each), one object in each."""
    s = filled(n, namespaces=n)
    pods: dict[str, list[dict[str, Any]]] = {}
    for kind, o in round_of(n, namespaces=n):
        if kind == "Pod":
            pods.setdefault(o["metadata"]["namespace"], []).append(o)

    def step() -> None:
        for ns, listed in pods.items():
            s.replace("Pod", ns, listed, "10")

    return step


STORE_STEPS: dict[str, Builder] = {
    "watch events, per object": watch_events,
    "selects, each object's, in one namespace": selects,
    "selects, each object's, one namespace each": lambda n: selects(n, namespaces=n),
    "a relist of each namespace": relists,
}


# ---- waking units ------------------------------------------------------------------------


def units_of(n: int) -> tuple[Units, Store]:
    """n objects' units, registered as the operator registers them (`ensure`), each
    targeting its own Deployment; their loops never tick here."""
    units = Units(cast(Reconciler, None))

    async def start() -> None:
        for i in range(n):
            units.ensure("ns-0", f"sv-{i}", f"sv-{i}")
            units.watch_targets("ns-0", f"sv-{i}", [{"kind": "Deployment", "name": f"app-{i}"}])
        tasks = list(units.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(start())
    return units, filled(n)


def object_events(n: int) -> Step:
    """Each object's own event (its status written): its targets noted again."""
    units, _ = units_of(n)

    def step() -> None:
        for i in range(n):
            units.watch_targets("ns-0", f"sv-{i}", [{"kind": "Deployment", "name": f"app-{i}"}])

    return step


def store_changes(n: int) -> Step:
    """Each change of the round handed to the waker."""
    units, s = units_of(n)
    on_change, events = units.woken_by(s), round_of(n)

    def step() -> None:
        for kind, o in events:
            on_change(kind, o)

    return step


def deletions(n: int) -> Step:
    """Every object deleted: its unit forgotten."""
    units, _ = units_of(n)

    def step() -> None:
        for i in range(n):
            units._forget(f"sv-{i}")

    return step


UNIT_STEPS: dict[str, Builder] = {
    "an object's own event": object_events,
    "a store change": store_changes,
    "an object deleted": deletions,
}


# ---- a sharded suite's merge: n tests in SHARDS shards -----------------------------------


def _result(test_id: str, outcome: Outcome = Outcome.PASSED) -> TestResult:
    return TestResult(test_id, test_id.rpartition("::")[2], "e2e", outcome)


def _ids(n: int) -> list[str]:
    return [f"tests/e2e/test_{i % 50}.py::test_{i}" for i in range(n)]


def _merging(p: Any, outcomes: list[ShardOutcome]) -> Step:
    return lambda: merge(p, outcomes)


def rerun(n: int) -> Step:
    """A selection of n tests assigned to the shards; each reports its own, half failed."""
    p = plan("e2e", _ids(n), SHARDS)
    outcomes = [
        ShardOutcome(
            s.index,
            tuple(_result(t, Outcome.FAILED if k % 2 else Outcome.PASSED)
                  for k, t in enumerate(s.test_ids or ())),
        )
        for s in p.shards
    ]  # fmt: skip
    return _merging(p, outcomes)


def split(n: int) -> Step:
    """A whole-suite run the runner split: each shard reports its part of n tests."""
    p = plan("e2e", None, SHARDS, runner="pytest")
    every = _ids(n)
    return _merging(
        p, [ShardOutcome(s.index, tuple(map(_result, every[s.index :: SHARDS]))) for s in p.shards]
    )


def not_split(n: int) -> Step:
    """A whole-suite runner that ignored the split: every shard reports all n tests."""
    p = plan("e2e", None, SHARDS, runner="generic")
    every = tuple(map(_result, _ids(n)))
    return _merging(p, [ShardOutcome(s.index, every) for s in p.shards])


def one_shard_lost(n: int) -> Step:
    """A rerun of n tests whose first shard produced no results: its tests are unrun."""
    p = plan("e2e", _ids(n), SHARDS)
    outcomes = [ShardOutcome(0, error="pod deleted")] + [
        ShardOutcome(s.index, tuple(map(_result, s.test_ids or ()))) for s in p.shards[1:]
    ]
    return _merging(p, outcomes)


MERGE_STEPS: dict[str, Builder] = {
    "a rerun, every shard reported": rerun,
    "a whole suite the runner split": split,
    "a whole suite every shard ran": not_split,
    "a rerun with a shard lost": one_shard_lost,
}

#: Whose lines count: greenloop's own (the store's index is k8s/selectors.py; a waker
#: reads the store).
PACKAGE = greenloop.__file__.rpartition("/")[0] + "/"
GROUPS: dict[str, dict[str, Builder]] = {
    "store": STORE_STEPS,
    "units": UNIT_STEPS,
    "merge": MERGE_STEPS,
}
