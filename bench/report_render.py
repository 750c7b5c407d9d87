"""Report rendering time against the number of failing tests (issue 8, Severe 5).

Builds an engine state the way a round does (``begin``, then one batch of results in
which every test fails: 1 in 10 with a 503, the others Dependent on it, so the report has
both root causes and dependents), then renders the Markdown report and prints the time,
its ratio to the previous row (~2 per doubling is linear) and the report's size. Before
the fix it was quadratic: 16k / 32k / 64k failing tests took 3.1 / 12.2 / 51 s and 200k
more than 590 s. The peer row is the floor: the same failing-test rows joined by a
single f-string loop, no report around them.

    python bench/report_render.py [--max 200000]

Target: 100,000 failing tests in under 2 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from greenloop.core import engine  # noqa: E402
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

TARGET_SECONDS = 2.0
HTTP_503 = "httpx.HTTPStatusError: Server error '503 Service Unavailable' for url 'http://app/x'"


def state_with(failing: int) -> tuple[StagingValidation, engine.State]:
    spec = ValidationSpec(
        suites=(Suite(name="e2e", command=("pytest",)),),
        target=Target(command=("./restart",)),
        policy=Policy(max_iterations=1),
        expected_tests=failing,
    )
    tests = []
    for i in range(failing):
        root = f"tests/test_api.py::test_{i - i % 10}"
        if i % 10 == 0:
            tests.append(TestResult(root, f"test_{i}", "tests", Outcome.FAILED, message=HTTP_503))
        else:
            tests.append(
                TestResult(
                    f"tests/test_api.py::test_{i}",
                    f"test_{i}",
                    "tests",
                    Outcome.SKIPPED,
                    message=f"greenloop: depends on {root}, which did not pass",
                    depends_on=(root,),
                )
            )
    decision = engine.begin(spec, 0.0)
    run = engine.SuiteRun(suite="e2e", tests=tuple(tests), finished=1.0)
    event = engine.SuiteFinished(decision.state.action_id, run)
    decision = engine.on_suite(spec, decision.state, event, 1.0)
    return StagingValidation(name="bench", spec=spec), decision.state


def timed(work: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()  # type: ignore[operator]
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=200_000, help="most failing tests")
    args = parser.parse_args()
    sizes = [n for n in (16_000, 32_000, 64_000, 100_000, 200_000) if n <= args.max]
    print(f"{'failing':>8}  {'render':>9}  {'ratio':>6}  {'report':>9}  {'floor':>8}")
    previous: tuple[int, float] | None = None
    verdict = ""
    for n in sizes:
        obj, state = state_with(n)
        seconds, text = timed(lambda obj=obj, state=state: render(obj, state, 2.0))
        rows = failing_tests(state, limit=None)
        floor, _ = timed(
            lambda rows=rows: "\n".join(
                f"| `{r['id']}` | {r['suite']} | {r['priority']} | `{r['evidence']}` |"
                for r in rows
            )
        )
        ratio = ""
        if previous is not None:
            ratio = f"{seconds / previous[1] / (n / previous[0]):.2f}"  # 1.00 = linear
        size = len(str(text).encode()) / 2**20
        print(f"{n:>8}  {seconds:>7.2f} s  {ratio:>6}  {size:>6.1f} MiB  {floor:>6.2f} s")
        previous = (n, seconds)
        if n == 100_000:
            verdict = "meets" if seconds < TARGET_SECONDS else "MISSES"
    print("ratio: time growth over size growth against the previous row (1.00 = linear)")
    if verdict:
        print(f"100,000 failing tests: {verdict} the target of {TARGET_SECONDS:.0f} s")


if __name__ == "__main__":
    main()
