"""Heavy work off the operator's event loop (k8s/offload.py, issue 17): reading a big
uploaded result, and writing the decision it leads to, leave the loop free — a second
coroutine keeps its beat meanwhile — and at most WORKERS pieces run at once.

The lag figures are printed (run with -s), never asserted: speed is bench/'s business."""

from __future__ import annotations

import asyncio
import base64
import copy
import gc
import gzip
import json
import statistics
import threading
import time
import weakref
from collections.abc import Awaitable
from typing import Any

from greenloop.core import crd, engine, snapshot
from greenloop.core.engine import SuiteFinished, SuiteRun
from greenloop.core.junit import parse_junit
from greenloop.core.model import Suite, TestResult
from greenloop.core.spec import from_object
from greenloop.k8s import offload as offload_module
from greenloop.k8s import suites
from greenloop.k8s.jobs import Owner, SuiteJob
from greenloop.k8s.offload import WORKERS, offload
from greenloop.k8s.reconcile import Reconciler, Settings
from greenloop.k8s.results import RESULTS_KEY

TESTS = 100_000
BEAT = 0.01  # the heartbeat's period, seconds
UID = "0b7d0c4e-0000-4000-8000-000000000001"
JOB_UID = "0b7d0c4e-0000-4000-8000-000000000002"


def junit(n: int) -> bytes:
    """n test cases, every tenth failing with a message."""
    cases = "".join(
        f'<testcase classname="shop.api" name="t{i}">'
        + (f'<failure message="HTTP 503 on /cart/{i}"/>' if i % 10 == 0 else "")
        + "</testcase>"
        for i in range(n)
    )
    return f'<testsuite name="api" tests="{n}">{cases}</testsuite>'.encode()


def junit_tests(n: int) -> tuple[TestResult, ...]:
    return parse_junit(junit(n)).tests


class Heartbeat:
    """A coroutine that wakes every BEAT seconds and records how late it woke."""

    def __init__(self) -> None:
        self.beats: list[tuple[float, float]] = []  # (when, lag)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            due = time.monotonic() + BEAT
            await asyncio.sleep(BEAT)
            now = time.monotonic()
            self.beats.append((now, now - due))

    async def around(self, work: Awaitable[Any]) -> tuple[Any, float, float]:
        """Run ``work`` with the heartbeat beside it: (its result, start, end)."""
        beating = asyncio.create_task(self.run())
        await asyncio.sleep(BEAT * 3)  # the beat is going before the work starts
        start = time.monotonic()
        result = await work
        end = time.monotonic()
        self._stop.set()
        await beating
        return result, start, end

    def during(self, start: float, end: float) -> list[float]:
        return [lag for when, lag in self.beats if start < when <= end]


def report(what: str, lags: list[float], took: float) -> None:
    print(f"\n{what}: {took:.2f} s; {len(lags)} beats of {BEAT * 1000:.0f} ms meanwhile", end="")
    if lags:
        ordered = sorted(lags)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        print(
            f", lag p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms",
            end="",
        )
    print()


class StubGateway:
    """Answers the reads `suites.observe` makes and takes the writes `_write` makes;
    never yields to the loop itself, so any beat during the work is the offload's."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.patches: list[dict[str, Any]] = []

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    async def create_or_adopt(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return obj, True

    async def patch_status(self, *_: Any, **__: Any) -> None:
        self.patches.append(_[3])

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj


def suite_run() -> SuiteJob:
    return SuiteJob(
        owner=Owner(name="checkout", namespace="staging", uid=UID),
        iteration=1,
        suite=Suite(name="api", command=("pytest",), image="shop-tests:1"),
        reporter_image="greenloop:dev",
        results_url="http://greenloop:8081",
    )


def stored_results(run: SuiteJob, xml: bytes) -> StubGateway:
    job = {
        "metadata": {"name": run.job_name, "uid": JOB_UID, "annotations": {}},
        "status": {"startTime": "2026-12-07T00:00:00Z"},
    }
    cm = {
        "metadata": {"name": run.results_name, "ownerReferences": [{"uid": JOB_UID}]},
        "binaryData": {RESULTS_KEY: base64.b64encode(gzip.compress(xml)).decode()},
    }
    return StubGateway({("Job", run.job_name): job, ("ConfigMap", run.results_name): cm})


def test_the_loop_keeps_its_beat_while_a_100k_test_result_is_read() -> None:
    run = suite_run()
    gw = stored_results(run, junit(TESTS))

    async def main() -> tuple[SuiteRun | None, list[float], float]:
        beat = Heartbeat()
        result, start, end = await beat.around(suites.observe(gw, run))  # type: ignore[arg-type]
        return result, beat.during(start, end), end - start

    result, lags, took = asyncio.run(main())
    assert result is not None
    assert result.error is None
    assert len(result.tests) == TESTS
    report(f"read {TESTS} tests", lags, took)
    # The second coroutine progressed while the result was parsed: before, the parse
    # ran on the loop and no beat fell inside it.
    assert len(lags) >= 2


def validation() -> dict[str, Any]:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {
            "name": "checkout",
            "namespace": "staging",
            "uid": UID,
            "generation": 1,
            "resourceVersion": "7",
        },
        "spec": {"suites": [{"name": "api", "image": "shop-tests:1", "command": ["pytest"]}]},
    }


def test_the_loop_keeps_its_beat_while_a_100k_test_decision_is_made_and_written() -> None:
    """The merge and classification of the results, the report and the compressed state
    snapshot: all in the worker, the loop free meanwhile."""
    raw = validation()
    obj = from_object(raw, source="staging/checkout", mode="operator")
    started = engine.begin(obj.spec, 1000.0)
    run = suite_run()
    stored = stored_results(run, junit(TESTS)).objects[("ConfigMap", run.results_name)]
    tests, problem = suites._read_results(stored, "api.xml")
    assert problem is None
    event = SuiteFinished(started.state.action_id, SuiteRun(suite="api", tests=tests))
    gw = StubGateway({})
    settings = Settings("greenloop:dev", "http://x")
    reconciler = Reconciler(gw, settings, clock=lambda: 1010.0)  # type: ignore[arg-type]

    async def decide_and_write() -> Any:
        decision = await offload(engine.on_suite, obj.spec, started.state, event, 1010.0)
        return await reconciler._write(gw, raw, obj, started.state, decision)  # type: ignore[arg-type]

    async def main() -> tuple[Any, list[float], float]:
        beat = Heartbeat()
        tick, start, end = await beat.around(decide_and_write())
        return tick, beat.during(start, end), end - start

    tick, lags, took = asyncio.run(main())
    assert not tick.stop
    assert gw.patches and "engine" in gw.patches[0]
    report(f"decided and wrote {TESTS} tests", lags, took)
    assert len(lags) >= 2


def test_at_most_workers_pieces_of_work_run_at_once() -> None:
    running, most = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(10)
        with lock:
            running -= 1

    async def main() -> None:
        jobs = [asyncio.create_task(offload(work)) for _ in range(WORKERS * 3)]
        while True:  # until the pool is full
            await asyncio.sleep(0.01)
            with lock:
                if running == WORKERS:
                    break
        await asyncio.sleep(0.1)  # would a third one start?
        with lock:
            assert running == WORKERS
        release.set()
        await asyncio.gather(*jobs)

    asyncio.run(main())
    assert most == WORKERS == offload_module.WORKERS


def test_a_stored_state_is_decoded_once_not_on_every_tick(monkeypatch: Any) -> None:
    """Most ticks read a status.engine they read (or wrote) before: it is not decoded
    again (seconds of CPU for a 100k-test state), and a changed one is."""
    raw = validation()
    obj = from_object(raw, source="staging/checkout", mode="operator")
    started = engine.begin(obj.spec, 1000.0)
    gw = StubGateway({})
    reconciler = Reconciler(gw, Settings("greenloop:dev", "http://x"), clock=lambda: 1010.0)  # type: ignore[arg-type]
    decoded: list[object] = []
    real = snapshot.from_data

    def counting(data: Any) -> engine.State:
        decoded.append(data)
        return real(data)

    monkeypatch.setattr(snapshot, "from_data", counting)

    async def main() -> None:
        await reconciler._write(gw, raw, obj, None, started)  # type: ignore[arg-type]
        # What the API returns: the written status, through JSON.
        written = json.loads(
            json.dumps({**raw, "status": {"engine": snapshot.to_data(started.state)}})
        )
        assert await reconciler._stored_state(written) == started.state
        assert await reconciler._stored_state(copy.deepcopy(written)) == started.state
        assert decoded == []  # both read back what was written: no decode
        run = SuiteRun(suite="api", tests=junit_tests(3))
        event = SuiteFinished(started.state.action_id, run)
        later = engine.on_suite(obj.spec, started.state, event, 1020.0).state
        changed = {**written, "status": {"engine": snapshot.to_data(later)}}
        assert await reconciler._stored_state(changed) == later
        assert len(decoded) == 1

    asyncio.run(main())


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_no_full_collection_while_a_piece_runs_and_its_results_are_frozen_after() -> None:
    """The collector policy (k8s/offload.py): while a piece runs the gen-2 threshold is
    out of reach (no full collection walks a big state and holds the GIL); the one
    before it is restored when the last piece ends, and what the piece left alive is
    frozen - out of later collections' sight; a cycle dropped before a piece is
    collected when it starts, not frozen."""
    gc.collect()
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    dropped = weakref.ref(Cycle())  # garbage in a cycle: only a collection frees it

    def work() -> list[list[int]]:
        seen.append(gc.get_threshold())
        return [[i] for i in range(1000)]  # lists: tracked by the collector

    async def main() -> list[list[int]]:
        return await offload(work)

    frozen = gc.get_freeze_count()
    try:
        kept = asyncio.run(main())
        assert seen[0][:2] == before[:2]
        assert seen[0][2] == offload_module.NO_FULL_COLLECTIONS != before[2]
        assert gc.get_threshold() == before
        assert dropped() is None
        assert gc.get_freeze_count() >= frozen + len(kept)
    finally:
        gc.unfreeze()


def test_the_policy_lasts_while_any_of_several_pieces_runs() -> None:
    release = threading.Event()
    started = threading.Barrier(WORKERS + 1)
    thresholds: list[int] = []

    def work(wait: bool) -> None:
        if wait:
            started.wait(10)
            release.wait(10)
        thresholds.append(gc.get_threshold()[2])

    async def main() -> None:
        first = [asyncio.create_task(offload(work, True)) for _ in range(WORKERS)]
        await asyncio.to_thread(started.wait, 10)
        release.set()
        await asyncio.gather(*first)

    before = gc.get_threshold()
    try:
        asyncio.run(main())
    finally:
        gc.unfreeze()
    assert thresholds == [offload_module.NO_FULL_COLLECTIONS] * WORKERS
    assert gc.get_threshold() == before
