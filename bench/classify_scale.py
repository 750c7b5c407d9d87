"""Classification and what follows it against the number of failing tests (issue 17).

Two shapes of message-less failures that were quadratic: Go-style subtests (a parent and N
subtests, none with a message: every one asked which failing ids were below it) and a
dangling ``depends_on`` (N failing tests each naming a dependency that did not fail: every
one scanned the failing ids for a test its name could stand for). Offline, 8k of the first
took 19 s, 15k 37 s; 4k of the second 13 s. A third shape, a chain of N Dependents, was
quadratic after classification: 4k took 2.3 s in status and 4.8 s in the report.

For N and 2N of each it times the classifier alone (``diagnose_batch``), then an engine
round on those results (``begin``, one suite's results: classification, merge, decision),
the status's failing tests and the Markdown report (the why-chain), and prints each CPU time
with its ratio to N's: ~2 is linear, ~4 quadratic.

    python bench/classify_scale.py [--n 50000] [--tenfold 10000]

Then N against 10·N (--tenfold, default 10,000 against 100,000) for each shape and step:
the CPU-time ratio is ≈10 when linear (≈100 quadratic), beyond one doubling's noise.

Target: 100,000 message-less failing tests classified in under 10 s (each shape).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from greenloop.core import engine  # noqa: E402
from greenloop.core.classify import diagnose_batch  # noqa: E402
from greenloop.core.model import (  # noqa: E402
    Outcome,
    Policy,
    StagingValidation,
    Suite,
    Target,
    TestResult,
    ValidationSpec,
)
from greenloop.core.report import render  # noqa: E402
from greenloop.core.status import failing_tests  # noqa: E402

TARGET_SECONDS = 10.0
PACKAGE = "example.com/shop/orders"


def failed(test_id: str, depends_on: tuple[str, ...] = ()) -> TestResult:
    name = test_id.rpartition("::")[2]
    return TestResult(test_id, name, PACKAGE, Outcome.FAILED, depends_on=depends_on)


def go_subtests(n: int) -> list[TestResult]:
    parent = f"{PACKAGE}::TestOrders"
    return [failed(parent), *(failed(f"{parent}/case_{i}") for i in range(n))]


def dangling_dependencies(n: int) -> list[TestResult]:
    return [
        failed(f"tests/e2e/test_{i % 100}.py::test_{i}", depends_on=(f"test_setup_{i}",))
        for i in range(n)
    ]


def dependent_chain(n: int) -> list[TestResult]:
    """test_0 fails with a 503, each test after it because the one before did: the
    status's and the report's roots once walked the chain from every test on it."""
    first = TestResult("t.py::test_0", "test_0", "t", Outcome.FAILED, message="HTTP 503")
    return [first, *(failed(f"t.py::test_{i}", (f"t.py::test_{i - 1}",)) for i in range(1, n))]


SHAPES: dict[str, Callable[[int], list[TestResult]]] = {
    "Go subtests": go_subtests,
    "dangling depends_on": dangling_dependencies,
    "Dependent chain": dependent_chain,
}


def timed(work: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    # CPU time, not wall time: the machine is shared, and waiting for a core is not work.
    start = time.process_time()
    result = work()
    return time.process_time() - start, result


def measure(tests: list[TestResult]) -> dict[str, float]:
    spec = ValidationSpec(
        suites=(Suite(name="e2e", command=("go", "test")),),
        target=Target(command=("./restart",)),
        policy=Policy(max_iterations=1),
        expected_tests=len(tests),
    )
    obj = StagingValidation(name="bench", spec=spec)
    figures: dict[str, float] = {}
    figures["classify"], _ = timed(lambda: diagnose_batch(tests))

    def round_() -> engine.State:
        decision = engine.begin(spec, 0.0)
        run = engine.SuiteRun(suite="e2e", tests=tuple(tests), finished=1.0)
        event = engine.SuiteFinished(decision.state.action_id, run)
        return engine.on_suite(spec, decision.state, event, 1.0).state

    figures["engine round"], state = timed(round_)
    assert isinstance(state, engine.State)
    figures["status"], _ = timed(lambda: failing_tests(state, limit=None))
    figures["report"], _ = timed(lambda: render(obj, state, 2.0))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="N: the smaller size (then 2N)")
    parser.add_argument("--tenfold", type=int, default=10_000, help="N against 10·N")
    args = parser.parse_args()
    sizes = (args.n, 2 * args.n)
    measured: dict[tuple[str, int], dict[str, float]] = {}

    def at(shape: str, n: int) -> dict[str, float]:
        if (shape, n) not in measured:
            measured[shape, n] = measure(SHAPES[shape](n))
        return measured[shape, n]

    print(f"{'shape':<20} {'step':<13} {sizes[0]:>9,} {sizes[1]:>9,}  ratio (2 = linear)")
    ok = True
    for shape in SHAPES:
        small, large = at(shape, sizes[0]), at(shape, sizes[1])
        for step in small:
            ratio = large[step] / small[step] if small[step] else float("nan")
            print(
                f"{shape:<20} {step:<13} {small[step]:>7.2f} s {large[step]:>7.2f} s  {ratio:.2f}"
            )
        if sizes[1] >= 100_000 and large["classify"] >= TARGET_SECONDS:
            ok = False
    n = args.tenfold
    print(f"\n{'shape':<20} {'step':<13} {n:>9,} {10 * n:>9,}  ratio (10 = linear, 100 quadratic)")
    for shape in SHAPES:
        small, large = at(shape, n), at(shape, 10 * n)
        for step in small:
            ratio = large[step] / small[step] if small[step] else float("nan")
            print(
                f"{shape:<20} {step:<13} {small[step]:>7.2f} s {large[step]:>7.2f} s  {ratio:.1f}"
            )
    verdict = "meets" if ok else "MISSES"
    print(f"{sizes[1]:,} message-less failing tests classified: {verdict} the target of "
          f"{TARGET_SECONDS:.0f} s per shape")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
