"""How the engine's work grows with the number of tests in a rerun (issue 17).

A suite of N tests all fails (an assertion: no redeploy) and the engine decides to rerun
them; the timed step is the rerun's results coming back (``engine.on_suite``: the merge
under the verdict rule, classification, the decision), once with every test passing and
once with every test failing again. Also timed: a 503 with a chain of N Dependents behind
it (each root found to decide on its class). Each is run at N and 2N; the ratio of the
two CPU times says how the work grows: 2 is linear, 4 quadratic (CPU time, not wall
time: on a machine shared with other jobs the wall time says more about them).

    python bench/engine_rerun.py [--sizes 30000,100000] [--tenfold 10000]

Then each case at N and 10·N (--tenfold, default 10,000 against 100,000): the CPU-time
ratio is ≈10 when the work is linear (≈100 quadratic), a check that does not lean on
one doubling's noise.

Before the fix, a rerun of 30,000 failed tests took 44 s in local mode (41 s in the
merge); target: a rerun of 30,000 under 5 s and of 100,000 under 15 s (issue 17), and
each ratio 2N/N at most 2.5 and 10N/N at most 25 (well below quadratic's 100).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from greenloop.core import engine  # noqa: E402
from greenloop.core.engine import RunSuites, SuiteFinished, SuiteRun  # noqa: E402
from greenloop.core.model import (  # noqa: E402
    Outcome,
    Policy,
    Suite,
    Target,
    TestResult,
    ValidationSpec,
)

ASSERT = "AssertionError: assert 'draft' == 'paid'"
HTTP_503 = "httpx.HTTPStatusError: Server error '503 Service Unavailable' for url 'http://app/'"
SPEC = ValidationSpec(
    suites=(Suite(name="e2e", command=("pytest",), priority="P1"),),
    target=Target(command=("./restart",)),
    policy=replace(Policy(), flake_retries=1),
)
MAX_RATIO = 2.5
# 10 is linear, 100 quadratic; at 10,000 a step takes 0.1-0.5 s CPU, and a larger heap's
# allocation and collection add their share at 10·N: 11-15 was measured (docs/benchmarks.md).
MAX_TENFOLD = 25.0


def result(test_id: str, message: str | None = None, **kw: object) -> TestResult:
    outcome = Outcome.PASSED if message is None else Outcome.FAILED
    return TestResult(
        id=test_id,
        name=test_id,
        classname="",
        outcome=outcome,
        message=message or "",
        **kw,  # type: ignore[arg-type]
    )


def rerun(n: int, *, passing: bool) -> Callable[[], object]:
    """The rerun's results coming back, ready to time."""
    ids = [f"tests/test_{k // 100:04d}.py::test_{k:06d}" for k in range(n)]
    start = engine.begin(SPEC, 0.0)
    assert isinstance(start.action, RunSuites)
    failed = SuiteRun("e2e", tests=tuple(result(i, ASSERT) for i in ids))
    first = engine.on_suite(SPEC, start.state, SuiteFinished(start.action.id, failed), 1.0)
    action = first.action
    assert isinstance(action, RunSuites) and len(action.suites[0].test_ids or ()) == n
    again = tuple(result(i) if passing else result(i, ASSERT) for i in ids)
    selected = action.suites[0].test_ids
    event = SuiteFinished(action.id, SuiteRun("e2e", tests=again, selected=selected))
    return lambda: engine.on_suite(SPEC, first.state, event, 2.0)


def chain(n: int) -> Callable[[], object]:
    """A 503 and a chain of n Dependents, each skipped because the one before failed."""
    ids = [f"tests/test_chain.py::test_{k:06d}" for k in range(n + 1)]
    dependents = (
        TestResult(
            id=ids[k],
            name=ids[k],
            classname="",
            outcome=Outcome.SKIPPED,
            message=f"greenloop: depends on {ids[k - 1]}, which did not pass",
            depends_on=(ids[k - 1],),
        )
        for k in range(1, n + 1)
    )
    start = engine.begin(SPEC, 0.0)
    assert isinstance(start.action, RunSuites)
    run = SuiteRun("e2e", tests=(result(ids[0], HTTP_503), *dependents))
    event = SuiteFinished(start.action.id, run)
    return lambda: engine.on_suite(SPEC, start.state, event, 1.0)


def seconds(step: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``step``: on a shared machine the CPU time is the work.
    Collected first, so no step pays for the garbage of the one before."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="30000,100000", help="N, comma-separated")
    parser.add_argument("--tenfold", type=int, default=10_000, help="N against 10·N")
    args = parser.parse_args()
    ok = True
    cases: dict[str, Callable[[int], Callable[[], object]]] = {
        "rerun, all pass": lambda n: rerun(n, passing=True),
        "rerun, all fail again": lambda n: rerun(n, passing=False),
        "a 503 and a chain of N Dependents": chain,
    }
    timed: dict[tuple[str, int], tuple[float, float]] = {}

    def at(name: str, n: int) -> tuple[float, float]:
        if (name, n) not in timed:
            timed[name, n] = seconds(cases[name](n))
        return timed[name, n]

    for n in (int(size) for size in args.sizes.split(",")):
        for name in cases:
            (once, once_cpu), (twice, twice_cpu) = at(name, n), at(name, 2 * n)
            ratio = twice_cpu / once_cpu
            ok = ok and ratio <= MAX_RATIO
            print(
                f"{name}: N={n:,} {once:.2f} s ({once_cpu:.2f} s CPU), 2N={2 * n:,} "
                f"{twice:.2f} s ({twice_cpu:.2f} s CPU), ratio 2N/N of CPU time {ratio:.2f} "
                f"(linear 2, quadratic 4; target <= {MAX_RATIO})"
            )
    n = args.tenfold
    for name in cases:
        (_, once_cpu), (_, tenfold_cpu) = at(name, n), at(name, 10 * n)
        ratio = tenfold_cpu / once_cpu
        ok = ok and ratio <= MAX_TENFOLD
        print(
            f"{name}: N={n:,} {once_cpu:.2f} s CPU, 10N={10 * n:,} {tenfold_cpu:.2f} s CPU, "
            f"ratio 10N/N {ratio:.1f} (linear 10, quadratic 100; target <= {MAX_TENFOLD:.0f})"
        )
    print(
        "PASS" if ok else "MISS",
        f"every ratio 2N/N <= {MAX_RATIO} and 10N/N <= {MAX_TENFOLD:.0f}",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
