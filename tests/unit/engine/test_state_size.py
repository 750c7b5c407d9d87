"""The storage budget (docs/design.md §5): a round with 5,000 failing tests in 50 suites
fits in a Kubernetes object. Before: its state snapshotted to 27.5 MB (messages and a copy
of every failure per iteration, unbounded history) and its report was 2.9 MB."""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache

from greenloop.core import mergepatch, snapshot
from greenloop.core.engine import Reason, State
from greenloop.core.model import StagingValidation
from greenloop.core.report import _fit, render
from greenloop.core.status import build_status
from tests.unit.scenario import HTTP_503, bad, make_spec, play

KIB = 1024
SUITES = [(f"suite-{n:02d}", f"P{1 + n % 9}") for n in range(50)]


def id_of(suite: str, k: int) -> str:
    return f"tests/e2e/{suite}/test_module_{k // 10:02d}.py::test_case_{k:04d}[variant-a]"


@cache
def big_round() -> tuple[StagingValidation, State]:
    # Every evidence line unique (a request id), as real failures often are.
    def evidence(suite: str, k: int) -> str:
        return f"{HTTP_503} (request-id {hashlib.md5(f'{suite}{k}'.encode()).hexdigest()})"

    failing = {
        s: [bad(id_of(s, k), evidence(s, k), details="x" * 4000) for k in range(100)]
        for s, _ in SUITES
    }
    spec = make_spec(*SUITES, max_iterations=5)
    state = play(spec, [failing, failing]).state
    assert len(state.tests) == 5000 and state.reason is Reason.REDEPLOY_INEFFECTIVE
    return StagingValidation(name="big", spec=spec), state


def test_the_engine_state_of_5000_failing_tests_is_at_most_256_kib() -> None:
    _, state = big_round()
    text = json.dumps(snapshot.to_data(state), separators=(",", ":"))
    assert len(text) <= 256 * KIB, f"{len(text) // KIB} KiB"
    # And it reads back whole, through a merge patch as the operator writes it.
    assert snapshot.from_data(mergepatch.apply({}, json.loads(text))) == state


def test_the_status_of_5000_failing_tests_is_at_most_64_kib() -> None:
    obj, state = big_round()
    text = json.dumps(build_status(obj, state, 3000.0), separators=(",", ":"))
    assert len(text) <= 64 * KIB, f"{len(text) // KIB} KiB"


def test_the_report_of_5000_failing_tests_is_at_most_900_kib_and_says_what_it_cut() -> None:
    obj, state = big_round()
    report = render(obj, state, 3000.0)
    assert len(report.encode()) <= 900 * KIB, f"{len(report.encode()) // KIB} KiB"
    cut = re.search(r"… truncated, (\d+) more failing tests", report)
    assert cut is not None
    shown = report.count("| `tests/e2e/")
    assert shown + int(cut.group(1)) == 5000
    assert report.rstrip().splitlines()[-1].startswith("The redeploy did not change")


def test_a_report_past_its_byte_limit_is_cut_at_a_line_and_keeps_the_next_step() -> None:
    body = [f"line {n}" for n in range(1000)]
    text = _fit(body, ["## Next step", "", "Fix it."], limit=1000)
    assert len(text.encode()) <= 1000
    assert re.search(r"… truncated, \d+ more lines \(the report's size limit\)", text)
    assert text.endswith("## Next step\n\nFix it.")
