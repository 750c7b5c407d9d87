"""Shards (docs/design.md §4.1): which tests go where (core/shards.py) and how the shards'
results merge into one suite result under the verdict rule (core/shard_results.py).

Grouped by rule: the runner's own split (stable hash, ``--shard``), greenloop's split
by duration (LPT: every test once, never more shards than help, within 4/3 of the
optimum), the bounds, then the merge (complete only when every shard is in, a shard
without results never passes, a duplicate or stray never passes, order does not matter).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import replace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.core import engine, snapshot, spec
from greenloop.core.engine import RunSuites, SuiteFinished
from greenloop.core.model import FailureClass, Outcome, TestResult
from greenloop.core.model import ValidationSpec as Spec
from greenloop.core.runners import select_args
from greenloop.core.shard_results import (
    MergedSuite,
    ShardOutcome,
    Waiting,
    merge,
    overhead_seen,
    start_cost,
    suite_plan,
)
from greenloop.core.shards import (
    DEFAULT_DURATION,
    MAX_SHARDS,
    SHARD_START_SECONDS,
    Shard,
    ShardPlan,
    assign,
    estimate,
    makespan,
    one_process_locally,
    plan,
    runner_args,
    runner_splits,
    shard_args,
    shard_env,
    shard_of,
    split_collected,
)
from greenloop.core.spec import SpecError
from tests.unit.scenario import ASSERT, bad, make_spec, ok

# ---------------------------------------------------------------------------
# The runner's own split: a stable hash, or the runner's --shard


# Pinned: the pytest plugin in every shard's pod must compute the same shard for a test,
# on any machine and Python; a salted hash() or another digest changes these.
@pytest.mark.parametrize(
    ("test_id", "count", "expected"),
    [
        ("tests/e2e/test_conn.py::test_002_websocket_connectivity", 4, 0),
        ("tests/e2e/test_conn.py::test_002_websocket_connectivity", 7, 1),
        ("tests/a.py::test_x[1-2]", 64, 50),
        ("CheckoutIT::addsItems(int)[1]", 3, 0),
        ("caf\u00e9 \u203a pays", 5, 4),
        ("anything", 1, 0),
    ],
)
def test_shard_of_is_a_pinned_hash_of_the_id(test_id: str, count: int, expected: int) -> None:
    assert shard_of(test_id, count) == expected


def test_shard_of_spreads_tests_evenly() -> None:
    counts = [0] * 8
    for n in range(8000):
        counts[shard_of(f"tests/test_{n}.py::test_case", 8)] += 1
    assert all(800 <= c <= 1200 for c in counts), counts


def test_shard_of_refuses_no_shards() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("t", 0)


@pytest.mark.parametrize(
    ("runner", "index", "count", "expected"),
    [
        ("jest", 0, 4, ("--shard=1/4",)),  # greenloop 0-based, Jest 1-based
        ("vitest", 3, 4, ("--shard=4/4",)),
        ("playwright", 1, 2, ("--shard=2/2",)),
        ("jest", 0, 1, ()),  # one shard: the whole suite, no flag
        ("pytest", 2, 4, ()),  # the plugin reads GREENLOOP_SHARD_INDEX/COUNT
        ("generic", 2, 4, ()),
        ("go", 0, 4, ()),
    ],
)
def test_shard_args_are_the_runners_own_1_based_flag(
    runner: str, index: int, count: int, expected: tuple[str, ...]
) -> None:
    assert shard_args(runner, index, count) == expected


@pytest.mark.parametrize(("index", "count"), [(-1, 4), (4, 4), (0, 0)])
def test_shard_args_refuse_an_index_outside_the_count(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="shard index"):
        shard_args("jest", index, count)


def test_a_shard_with_a_selection_gets_the_selection_never_also_shard() -> None:
    ids = ("src/cart.test.ts::cart adds", "src/cart.test.ts::cart removes")
    assert runner_args("jest", Shard(1, 3, ids)) == select_args("jest", ids)
    assert runner_args("jest", Shard(1, 3)) == ("--shard=2/3",)
    assert runner_args("pytest", Shard(1, 3, ids)) == ()  # GREENLOOP_SELECT does it


def test_every_shard_is_told_its_0_based_index_and_the_count() -> None:
    assert shard_env(Shard(0, 3)) == {"GREENLOOP_SHARD_INDEX": "0", "GREENLOOP_SHARD_COUNT": "3"}


@pytest.mark.parametrize(
    ("runner", "count", "known", "width"),
    [
        ("pytest", 4, None, 4),  # first run: the runner splits by (index, count)
        ("jest", 8, None, 8),
        ("generic", 3, None, 3),  # may read the variables; the merge checks it did
        ("go", 4, None, 4),  # split from a listing (core/listing, core/pod_listing)
        ("maven", 4, 2, 2),
        ("pytest", 8, 3, 3),  # never more shards than the tests the suite has
        ("pytest", 8, 0, 1),
        ("pytest", 1, 466, 1),
    ],
)
def test_a_whole_suite_run_is_split_by_the_runner(
    runner: str, count: int, known: int | None, width: int
) -> None:
    p = plan("e2e", None, count, runner=runner, known_tests=known)
    assert p.selected is None
    assert p.shards == tuple(Shard(i, width) for i in range(width))
    assert runner_splits(runner)


# ---------------------------------------------------------------------------
# Bounds


@pytest.mark.parametrize("count", [0, -1, MAX_SHARDS + 1])
def test_shard_counts_outside_1_to_64_are_refused(count: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.64"):
        plan("e2e", ["a"], count)
    with pytest.raises(ValueError, match=r"1\.\.64"):
        plan("e2e", None, count)


def test_64_shards_are_allowed() -> None:
    ids = [f"t{n}" for n in range(MAX_SHARDS)]
    assert len(plan("e2e", ids, MAX_SHARDS).shards) == MAX_SHARDS
    # 100 equal tests finish as soon in 50 shards (2 each) as in 64: 50 run.
    assert len(plan("e2e", [f"t{n}" for n in range(100)], MAX_SHARDS).shards) == 50
    assert len(plan("e2e", None, MAX_SHARDS, runner="pytest").shards) == MAX_SHARDS


# ---------------------------------------------------------------------------
# greenloop's split of a selection: by duration, longest first onto the least loaded


def test_a_rerun_of_7_tests_runs_in_no_more_shards_than_help() -> None:
    ids = [f"t{n}" for n in range(7)]
    assert len(assign(ids, 64)) == 7  # one test each: as fast as it gets
    assert len(assign(ids, 4)) == 4
    # One long test sets the pace: more shards than 2 would not finish sooner.
    skewed = {"t0": 10.0, **{f"t{n}": 1.0 for n in range(1, 7)}}
    shards = assign(ids, 4, skewed)
    assert [s.test_ids for s in shards] == [("t0",), ("t1", "t2", "t3", "t4", "t5", "t6")]
    assert [s.count for s in shards] == [2, 2]
    assert makespan(shards) == 10.0


def test_fewer_shards_only_when_they_finish_as_soon() -> None:
    # 12 s of tests: three shards could hold it in 4 s, but LPT on three takes 5 s (3+2,
    # 3+2, 2), so all four run (3, 3, 2+2, 2).
    durations = dict(zip("abcde", [3.0, 3.0, 2.0, 2.0, 2.0], strict=True))
    shards = assign(list(durations), 4, durations)
    assert [s.test_ids for s in shards] == [("a",), ("b",), ("c", "e"), ("d",)]
    assert makespan(shards) == 4.0


def _equal(n: int, seconds: float, prefix: str = "t") -> dict[str, float]:
    return {f"{prefix}{k:02d}": seconds for k in range(n)}


# Shards worth starting: the least makespan + (k - 1) * start cost, fewest on a tie. The
# default start cost is what one more pod cost on the real node (bench/shards.py --node).
WORTH_STARTING = [
    # (case, durations or a count of unknown ones, shards asked, start cost, shards run)
    ("8 short tests: one shard", _equal(8, 0.1), 8, SHARD_START_SECONDS, 1),
    ("8 x 0.5 s: two shards (4 s, or 2 s + 1 s)", _equal(8, 0.5), 8, SHARD_START_SECONDS, 2),
    ("64 x 0.5 s: 6.5 s + 4 s on five", _equal(64, 0.5), 8, SHARD_START_SECONDS, 5),
    ("64 x 0.5 s, a dearer start: still four", _equal(64, 0.5), 8, 2.0, 4),
    ("8 s + 60 x 0.1 s: the long test alone", {"long": 8.0, **_equal(60, 0.1)}, 8,
     SHARD_START_SECONDS, 2),
    ("a tie (4 s = 2 s + 2 s): fewer shards", _equal(8, 0.5), 8, 2.0, 1),
    ("a start dearer than any saving: one", _equal(64, 0.5), 64, 60.0, 1),
    ("8 unknown durations (1 s each): 4 = 3 + 2 = 2 + 3, fewest", 8, 8, SHARD_START_SECONDS, 2),
    ("no start cost: as many as shorten the makespan", _equal(7, 1.0), 64, 0.0, 7),
    ("never more than asked", _equal(64, 10.0), 4, SHARD_START_SECONDS, 4),
]  # fmt: skip


@pytest.mark.parametrize(
    ("durations", "count", "start_cost", "expected"),
    [case[1:] for case in WORTH_STARTING],
    ids=[case[0] for case in WORTH_STARTING],
)
def test_a_rerun_starts_only_the_shards_worth_starting(
    durations: dict[str, float] | int, count: int, start_cost: float, expected: int
) -> None:
    if isinstance(durations, int):
        ids, durations = [f"t{k}" for k in range(durations)], {}
    else:
        ids = list(durations)
    shards = assign(ids, count, durations, start_cost=start_cost)
    assert len(shards) == expected
    assert sorted(t for s in shards for t in s.test_ids or ()) == sorted(ids)


def _lpt_makespan(durations: dict[str, float], width: int) -> float:
    """LPT on exactly ``width`` shards, as the plan's ties go (by id, fewer, index)."""
    loads = [(0.0, 0, i) for i in range(width)]
    for _, seconds in sorted(durations.items(), key=lambda kv: (-kv[1], kv[0])):
        load, n, index = heapq.heappop(loads)
        heapq.heappush(loads, (load + seconds, n + 1, index))
    return max(load for load, _, _ in loads)


@given(
    st.lists(st.floats(0.01, 50.0), min_size=1, max_size=40),
    st.integers(1, 12),
    st.sampled_from([0.0, 0.3, 1.0, 5.0]),
)
@settings(max_examples=200, deadline=None)
def test_the_width_chosen_is_the_best_of_every_width_tried_alone(
    seconds: list[float], count: int, start_cost: float
) -> None:
    # The bound that skips widths never skips the best one: against LPT on each width.
    durations = {f"t{k:02d}": d for k, d in enumerate(seconds)}
    shards = assign(list(durations), count, durations, start_cost=start_cost)
    chosen = makespan(shards) + (len(shards) - 1) * start_cost
    for width in range(1, min(count, len(seconds)) + 1):
        assert chosen <= _lpt_makespan(durations, width) + (width - 1) * start_cost + 1e-6
    # Fewest on a tie: no narrower plan costs as little.
    narrower = [
        assign(list(durations), w, durations, start_cost=start_cost) for w in range(1, len(shards))
    ]
    assert all(makespan(n) + (len(n) - 1) * start_cost > chosen - 1e-9 for n in narrower)


@pytest.mark.parametrize("start_cost", [-1.0, math.nan, math.inf])
def test_a_start_cost_that_is_no_number_of_seconds_is_refused(start_cost: float) -> None:
    with pytest.raises(ValueError, match="start cost"):
        assign(["a", "b"], 2, start_cost=start_cost)


def test_a_suites_rerun_is_planned_with_the_start_cost() -> None:
    # 8 failing tests of 0.1 s in a suite of 8 shards: one pod, not eight.
    spec = make_spec(("e2e", "P1"))
    d = engine.begin(spec, 0.0)
    assert isinstance(d.action, RunSuites)
    results = (*(bad(f"f{k}", ASSERT, time=0.1) for k in range(8)), ok("fine", time=0.1))
    d = engine.on_suite(
        spec, d.state, SuiteFinished(d.action.id, engine.SuiteRun("e2e", results)), 1.0
    )
    assert isinstance(d.action, RunSuites)
    (selection,) = d.action.suites
    p = suite_plan(replace(spec.suites[0], shards=8), d.state, selection)
    assert [len(s.test_ids or ()) for s in p.shards] == [8]


def _timed(*shards: tuple[float, float, float]) -> list[ShardOutcome]:
    """Shards as (started, finished, seconds of its one test)."""
    return [
        ShardOutcome(i, (ok(f"t{i}", time=t),), started=a, finished=b)
        for i, (a, b, t) in enumerate(shards)
    ]


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        # Started side by side, 1 s of start-up each: the run took 1 s beyond its tests.
        (_timed((100.0, 110.0, 9.0), (100.0, 109.0, 8.0)), 1.0),
        # One after another: the second ended 3 s after its 9 s of tests would have.
        (_timed((100.0, 110.0, 9.0), (102.0, 112.0, 9.0)), 3.0),
        # One shard tells it too.
        (_timed((100.0, 104.5, 4.0)), 0.5),
        # Nothing to tell: a shard without times or without results.
        (_timed((100.0, 110.0, 9.0), (0.0, 0.0, 9.0)), None),
        ([*_timed((100.0, 110.0, 9.0)), ShardOutcome(1, error="lost", started=1.0, finished=2.0)],
         None),
    ],
)  # fmt: skip
def test_the_overhead_a_run_showed_is_its_span_beyond_its_longest_shards_tests(
    outcomes: list[ShardOutcome], expected: float | None
) -> None:
    assert overhead_seen(outcomes) == expected


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        # The bench's figures: 1 shard 4.9 s beyond its tests, 4 shards 6.2 s.
        (((4, 6.2), (1, 4.9)), 0.43),
        (((2, 3.0), (8, 9.0)), 1.0),
        # More shards that cost less (a quieter moment): no cost, never a negative one.
        (((8, 3.0), (2, 5.0)), 0.0),
        # One width alone cannot tell start-up shared by all from what one more adds.
        (((4, 6.2),), SHARD_START_SECONDS),
        ((), SHARD_START_SECONDS),
    ],
)
def test_the_start_cost_is_the_overheads_growth_per_shard_between_two_widths(
    seen: tuple[tuple[int, float], ...], expected: float
) -> None:
    state = engine.State(shard_overheads={"e2e": seen} if seen else {})
    assert start_cost(state, "e2e") == pytest.approx(expected, abs=0.005)


def _finish(spec: Spec, d: engine.Decision, run: engine.SuiteRun, now: float) -> engine.Decision:
    assert isinstance(d.action, RunSuites)
    return engine.on_suite(spec, d.state, SuiteFinished(d.action.id, run), now)


def test_a_suite_plans_its_reruns_with_the_start_cost_its_runs_showed() -> None:
    spec = make_spec(("e2e", "P1"))
    suite = replace(spec.suites[0], shards=8)
    spec = replace(
        spec, suites=(suite,), policy=replace(spec.policy, parallelism=8, flake_retries=3)
    )
    # An unsharded suite keeps none: nothing to plan with them.
    one = engine.SuiteRun("e2e", tests=(ok("a", time=1.0),), started=1.0, finished=3.0)
    unsharded = make_spec(("e2e", "P1"))
    assert _finish(unsharded, engine.begin(unsharded, 0.0), one, 5.0).state.shard_overheads == {}
    # Iteration 1 in 8 shards, 0.5 s of tests each, side by side: 9 s beyond its tests.
    first = plan("e2e", [f"f{k}" for k in range(8)], 8)
    merged = merge(
        first,
        [
            ShardOutcome(s.index, tuple(bad(t, ASSERT, time=0.5) for t in s.test_ids or ()),
                         started=10.0, finished=19.5)
            for s in first.shards
        ],
    )  # fmt: skip
    assert isinstance(merged, MergedSuite) and merged.run.overhead == 9.0
    d = _finish(spec, engine.begin(spec, 0.0), replace(merged.run, selected=None), 20.0)
    assert d.state.shard_overheads == {"e2e": ((8, 9.0),)}
    assert isinstance(d.action, RunSuites)
    (selection,) = d.action.suites
    # One width: the default start cost, so 8 x 0.5 s rerun in two shards.
    assert len(suite_plan(suite, d.state, selection).shards) == 2
    # The rerun in two shards, 3 s beyond its tests: (9 - 3) / 6 = 1 s a shard.
    rerun = replace(merged.run, tests=tuple(bad(f"f{k}", ASSERT, time=0.5) for k in range(8)),
                    selected=selection.test_ids, overhead=3.0, width=2)  # fmt: skip
    d = _finish(spec, d, rerun, 30.0)
    assert d.state.shard_overheads == {"e2e": ((2, 3.0), (8, 9.0))}
    assert start_cost(d.state, "e2e") == 1.0
    # Kept through the stored state (the operator's restart).
    again = snapshot.from_data(snapshot.to_data(d.state))
    assert again.shard_overheads == d.state.shard_overheads
    # An unsharded run tells its own: started to finished beyond its tests' seconds.
    alone = engine.SuiteRun("e2e", tests=(bad("f0", ASSERT, time=0.5),), started=40.0,
                            finished=45.0, selected=("f0",))  # fmt: skip
    d2 = _finish(spec, d, replace(alone, selected=d.action.suites[0].test_ids), 50.0)  # type: ignore[union-attr]
    assert d2.state.shard_overheads["e2e"][0] == (1, 4.5)
    # Shards that ran in waves (more than policy.parallelism): not believed.
    narrow = replace(spec, policy=replace(spec.policy, parallelism=4))
    d3 = _finish(narrow, engine.begin(narrow, 0.0), replace(merged.run, selected=None), 20.0)
    assert d3.state.shard_overheads == {}


@pytest.mark.parametrize(
    "stored",
    [{"e2e": "x"}, {"e2e": [[0, 1.0]]}, {"e2e": [[2, -1.0]]}, {"e2e": [[2, "nan"]]}, [[2, 1.0]]],
)
def test_a_stored_overhead_that_is_no_number_of_seconds_is_not_planned_with(
    stored: dict[str, object],
) -> None:
    data = snapshot.to_data(engine.State())
    assert snapshot.from_data({**data, "shardOverheads": stored}).shard_overheads == {}


def test_an_empty_selection_schedules_no_shard() -> None:
    p = plan("e2e", [], 4)
    assert p.shards == ()
    merged = merge(p, [])
    assert isinstance(merged, MergedSuite)
    assert merged.run.tests == () and merged.run.error is None


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        ({"a": 2.0, "b": 4.0, "x": 9.0}, {"a": 2.0, "b": 4.0, "c": 4.0}),  # median of known
        ({}, {"a": DEFAULT_DURATION, "b": DEFAULT_DURATION, "c": DEFAULT_DURATION}),
        # 0, negative and not finite: unknown (JUnit's time="0" means "not measured")
        ({"a": 0.0, "b": -1.0, "c": math.nan}, dict.fromkeys("abc", DEFAULT_DURATION)),
        ({"a": math.inf, "b": 3.0}, {"a": 3.0, "b": 3.0, "c": 3.0}),
    ],
)
def test_unknown_durations_are_the_median_of_known_ones(
    durations: dict[str, float], expected: dict[str, float]
) -> None:
    assert estimate(["a", "b", "c"], durations) == expected


def test_tests_that_depend_on_each_other_share_a_shard() -> None:
    ids = ["login", "checkout", "pay", "search", "browse", "help"]
    depends = {"checkout": ["login"], "pay": ["checkout"], "browse": ["search", "not-selected"]}
    shards = assign(ids, 4, dict.fromkeys(ids, 1.0), depends)
    where = {t: s.index for s in shards for t in s.test_ids or ()}
    assert where["login"] == where["checkout"] == where["pay"]
    assert where["search"] == where["browse"] != where["login"]
    # Groups of 3, 2 and 1 s: two shards finish as soon as three (3 s).
    assert [s.test_ids for s in shards] == [
        ("checkout", "login", "pay"),
        ("browse", "help", "search"),
    ]


@pytest.mark.parametrize(
    ("runner", "ids", "together"),
    [
        ("go", ["pkg::TestCart/adds", "pkg::TestCart/removes", "pkg::TestPay", "pkg::TestShip"],
         {"pkg::TestCart/adds", "pkg::TestCart/removes"}),
        # One -run covers every package of the selection: one name, one shard.
        ("go", ["a::TestShared", "b::TestShared/sub", "b::TestPay", "b::TestShip"],
         {"a::TestShared", "b::TestShared/sub"}),
        ("maven", ["C::adds(int)[1]", "C::adds(int)[2]", "C::pays()", "C::ships()"],
         {"C::adds(int)[1]", "C::adds(int)[2]"}),
    ],
)  # fmt: skip
def test_tests_the_runner_reruns_together_share_a_shard(
    runner: str, ids: list[str], together: set[str]
) -> None:
    # Apart, each shard's -run/-Dtest would run and report the other's test as well.
    shards = plan("e2e", ids, 4, runner=runner).shards
    assert any(together <= set(s.test_ids or ()) for s in shards)
    # The pair takes 2 s, so the other two in one shard finish as soon.
    assert len(shards) == 2
    # pytest selects exact node ids: nothing is held together.
    assert len(plan("e2e", ids, 4, runner="pytest").shards) == 4


def test_ties_go_by_test_id_and_shard_index() -> None:
    shards = assign(["d", "c", "b", "a"], 2)
    assert [s.test_ids for s in shards] == [("a", "c"), ("b", "d")]


@st.composite
def selections(draw: st.DrawFn) -> tuple[list[str], dict[str, float], int]:
    ids = draw(st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=80, unique=True))
    durations = {
        i: draw(st.one_of(st.floats(0.0, 600.0), st.sampled_from([math.nan, math.inf, -1.0])))
        for i in ids
        if draw(st.booleans())
    }
    return ids, durations, draw(st.integers(1, MAX_SHARDS))


@given(selections(), st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_every_test_goes_to_exactly_one_shard_and_no_shard_is_empty(
    case: tuple[list[str], dict[str, float], int], rng: random.Random
) -> None:
    ids, durations, count = case
    shards = assign(ids, count, durations)
    placed = [t for s in shards for t in s.test_ids or ()]
    assert sorted(placed) == sorted(ids)  # each exactly once
    assert len(shards) <= min(count, len(ids))
    assert all(s.test_ids for s in shards)
    assert [s.index for s in shards] == list(range(len(shards)))
    assert all(s.count == len(shards) for s in shards)
    assert all(list(s.test_ids or ()) == sorted(s.test_ids or ()) for s in shards)
    # Deterministic and stable: the same plan again, and whatever order the ids came in.
    shuffled = list(ids)
    rng.shuffle(shuffled)
    assert assign(shuffled, count, dict(reversed(list(durations.items())))) == shards


def _optimum(jobs: Sequence[int], bins: int) -> int:
    """The shortest makespan of ``jobs`` on ``bins`` shards, by exhaustive search (small
    inputs only): branch and bound, one bin of each load tried per job."""
    order = sorted(jobs, reverse=True)
    best = sum(order)
    loads = [0] * bins

    def place(k: int) -> None:
        nonlocal best
        if k == len(order):
            best = min(best, max(loads))
            return
        tried: set[int] = set()
        for b in range(bins):
            if loads[b] in tried or loads[b] + order[k] >= best:
                continue
            tried.add(loads[b])
            loads[b] += order[k]
            place(k + 1)
            loads[b] -= order[k]

    place(0)
    return best


@given(st.lists(st.integers(1, 100), min_size=1, max_size=9), st.integers(1, 4))
@settings(max_examples=200, deadline=None)
def test_the_balanced_split_is_within_4_3_of_the_optimum(jobs: list[int], count: int) -> None:
    durations = {f"t{n:02d}": float(d) for n, d in enumerate(jobs)}
    got = makespan(assign(list(durations), count, durations))
    m = min(count, len(jobs))
    optimum = _optimum(jobs, m)
    assert got <= (4 / 3 - 1 / (3 * m)) * optimum + 1e-9  # Graham's bound for LPT
    assert got >= optimum


def test_the_brute_force_optimum_is_right_where_it_is_known() -> None:
    assert _optimum([3, 3, 2, 2, 2], 2) == 6  # LPT gives 7 here
    assert (
        makespan(
            assign(
                [f"t{n}" for n in range(5)],
                2,
                dict(zip([f"t{n}" for n in range(5)], [3.0, 3.0, 2.0, 2.0, 2.0], strict=True)),
            )
        )
        == 7.0
    )
    assert _optimum([8] + [1] * 6, 4) == 8


# ---------------------------------------------------------------------------
# The merge: one suite result from its shards' outcomes


def passed_all(shard: Shard, **kw: object) -> ShardOutcome:
    return ShardOutcome(shard.index, tuple(ok(t) for t in shard.test_ids or ()), **kw)  # type: ignore[arg-type]


IDS = [f"tests/e2e/test_{n}.py::test_it" for n in range(10)]


def rerun_plan(count: int = 3) -> ShardPlan:
    return plan("e2e", IDS, count)


def merged(p: ShardPlan, outcomes: Sequence[ShardOutcome]) -> MergedSuite:
    out = merge(p, outcomes)
    assert isinstance(out, MergedSuite)
    return out


@pytest.mark.parametrize("missing", [[0], [2], [0, 1, 2]])
def test_the_suite_waits_for_every_shard(missing: list[int]) -> None:
    p = rerun_plan()
    outcomes = [passed_all(s) for s in p.shards if s.index not in missing]
    assert merge(p, outcomes) == Waiting("e2e", tuple(missing))


def test_shards_that_all_reported_merge_into_one_run() -> None:
    p = rerun_plan()
    outcomes = [
        passed_all(s, pod=f"e2e-{s.index}", started=10.0, finished=12.0 + s.index) for s in p.shards
    ]
    m = merged(p, outcomes)
    assert m.run.error is None
    assert sorted(t.id for t in m.run.tests) == IDS
    assert m.run.selected == tuple(IDS)
    assert (m.run.started, m.run.finished) == (10.0, 14.0)
    assert m.unrun == () and m.conflicts == () and m.note == ""
    assert [line.describe() for line in m.shards] == [
        "shard 1/3 (e2e-0): 4 tests of 4 given in 2.0 s",
        "shard 2/3 (e2e-1): 3 tests of 3 given in 3.0 s",
        "shard 3/3 (e2e-2): 3 tests of 3 given in 4.0 s",
    ]


@pytest.mark.parametrize(
    ("failed", "permanent"),
    [
        ({1: False}, False),
        ({0: False, 2: True}, True),  # a cause a rerun cannot change stops the round
    ],
)
def test_a_shard_without_results_is_a_runner_error_for_its_tests_only(
    failed: dict[int, bool], permanent: bool
) -> None:
    p = rerun_plan()
    outcomes = [
        ShardOutcome(s.index, error="the pod was deleted", permanent=failed[s.index], pod="p")
        if s.index in failed
        else passed_all(s)
        for s in p.shards
    ]
    m = merged(p, outcomes)
    assert m.run.error is None and m.run.shard_error is not None
    for index in failed:
        assert f"shard {index + 1}/3 (p): no results: the pod was deleted" in m.run.shard_error
    given_to_failed = sorted(t for s in p.shards if s.index in failed for t in s.test_ids or ())
    # The other shards' results are handed on; the failed shards' tests are not among them.
    assert sorted(t.id for t in m.run.tests) == sorted(set(IDS) - set(given_to_failed))
    assert m.run.permanent is permanent
    assert list(m.unrun) == list(m.run.unrun) == given_to_failed


def test_no_shard_with_results_is_the_suites_runner_error() -> None:
    p = rerun_plan()
    m = merged(p, [ShardOutcome(s.index, error="gone", pod=f"p{s.index}") for s in p.shards])
    assert m.run.error is not None and m.run.shard_error is None
    assert "shard 1/3 (p0): no results: gone" in m.run.error and m.run.tests == ()


def test_a_first_run_shard_without_results_hands_on_the_others() -> None:
    p = plan("e2e", None, 3, runner="pytest")
    outcomes = [
        ShardOutcome(0, (ok("a"), ok("b"))),
        ShardOutcome(1, error="pod e2e-1 produced no results", pod="e2e-1"),
        ShardOutcome(2, (ok("c"),)),
    ]
    m = merged(p, outcomes)
    assert m.run.error is None
    assert m.run.shard_error == "shard 2/3 (e2e-1): no results: pod e2e-1 produced no results"
    assert [t.id for t in m.run.tests] == ["a", "b", "c"]
    assert m.unrun == ()  # ids unknown: the runner chose them (the engine knows the suite's)
    assert m.run.shard_lines == tuple(line.describe() for line in m.shards)


def test_a_first_run_whose_shards_report_the_same_test_is_never_passed() -> None:
    # A generic runner that ignores GREENLOOP_SHARD_*: every shard runs everything.
    p = plan("e2e", None, 2)
    m = merged(p, [ShardOutcome(i, (ok("a"), ok("b"))) for i in range(2)])
    assert m.run.tests == () and m.run.error is None
    assert m.run.split_ignored == m.conflicts == ("a", "b")
    assert "GREENLOOP_SHARD_INDEX" in m.note
    assert [line.stray for line in m.shards] == [2, 2]


def error(test_id: str, message: str) -> TestResult:
    return TestResult(test_id, test_id, "", Outcome.ERROR, message=message)


def test_an_error_every_shard_meets_collecting_a_module_is_kept_once() -> None:
    # Every shard imports every module: each reports the broken one, as pytest does.
    broken = error("tests/test_x.py", "SyntaxError: invalid syntax")
    p = plan("e2e", None, 3, runner="pytest")
    m = merged(p, [ShardOutcome(i, (broken, ok(f"t{i}"))) for i in range(3)])
    assert m.run.error is None and m.conflicts == ()
    assert [t.id for t in m.run.tests] == ["tests/test_x.py", "t0", "t1", "t2"]
    assert [line.counted for line in m.shards] == [2, 1, 1]


@pytest.mark.parametrize(
    "reports",
    [
        [ok("t"), ok("t")],  # the runner did not split
        [error("t", ASSERT), ok("t")],  # failed in one shard, passed in another
        [error("t", ASSERT), TestResult("t", "t", "", Outcome.SKIPPED)],
    ],
)
def test_a_test_two_shards_report_is_believed_only_when_it_failed_in_both(
    reports: list[TestResult],
) -> None:
    p = plan("e2e", None, 2, runner="pytest")
    m = merged(p, [ShardOutcome(i, (r,)) for i, r in enumerate(reports)])
    assert m.conflicts == m.run.split_ignored == ("t",) and m.run.tests == ()
    assert "the runner ignored GREENLOOP_SHARD_INDEX" in m.note


def test_a_test_reported_by_a_shard_not_given_it_is_dropped() -> None:
    p = rerun_plan(2)
    first, second = p.shards
    stray = (second.test_ids or ())[0]
    outcomes = [
        ShardOutcome(0, (*passed_all(first).tests, ok(stray))),
        passed_all(second),
    ]
    m = merged(p, outcomes)
    assert m.conflicts == (stray,)
    assert stray not in {t.id for t in m.run.tests}  # the engine finds it unreported
    assert m.run.error is None
    assert "not counted (NotRerun)" in m.note
    assert [(line.counted, line.stray) for line in m.shards] == [(5, 1), (4, 0)]


def test_results_for_tests_nobody_selected_pass_through_for_the_engine_to_ignore() -> None:
    p = rerun_plan(2)
    outcomes = [passed_all(p.shards[0]), ShardOutcome(1, (*passed_all(p.shards[1]).tests, ok("z")))]
    m = merged(p, outcomes)
    assert "z" in {t.id for t in m.run.tests} and m.conflicts == ()


def test_a_shard_reported_twice_is_believed_neither_time() -> None:
    p = rerun_plan(2)
    outcomes = [passed_all(p.shards[0]), passed_all(p.shards[1]), passed_all(p.shards[1])]
    m = merged(p, outcomes)
    assert m.run.shard_error is not None and "reported 2 times" in m.run.shard_error
    assert set(m.unrun) == set(p.shards[1].test_ids or ())


def test_outcomes_for_shards_not_planned_are_ignored() -> None:
    p = rerun_plan(2)
    m = merged(p, [*map(passed_all, p.shards), ShardOutcome(7, (ok("x"),))])
    assert "x" not in {t.id for t in m.run.tests}


# ---------------------------------------------------------------------------
# Through the engine: the merged result is read as an unsharded one


def _rerun_of_failures() -> tuple[engine.State, RunSuites]:
    spec = make_spec(("e2e", "P1"))
    d = engine.begin(spec, 0.0)
    assert isinstance(d.action, RunSuites)
    results = tuple(bad(t, ASSERT) if n < 4 else ok(t) for n, t in enumerate(IDS))
    run = engine.SuiteRun("e2e", results)
    d = engine.on_suite(spec, d.state, SuiteFinished(d.action.id, run), 1.0)
    assert isinstance(d.action, RunSuites)  # a flake retry of the 4 failures
    return d.state, d.action


def test_a_stray_result_is_not_rerun_in_the_engine_as_for_an_ignored_selection() -> None:
    spec = make_spec(("e2e", "P1"))
    state, action = _rerun_of_failures()
    (selection,) = action.suites
    p = plan("e2e", selection.test_ids, 2)
    # Each shard's runner ignored its selection file and ran all four: all pass.
    everything = tuple(ok(t) for t in selection.test_ids or ())
    m = merged(p, [ShardOutcome(s.index, everything) for s in p.shards])
    d = engine.on_suite(spec, state, SuiteFinished(action.id, m.run), 2.0)
    for test_id in selection.test_ids or ():
        record = d.state.tests[test_id]
        assert record.diagnosis is not None
        assert record.diagnosis.failure_class is FailureClass.NOT_RERUN
    assert d.state.selection_misses == {"e2e": 1}


def _feed(spec: Spec, state: engine.State, action: RunSuites, m: MergedSuite) -> engine.Decision:
    return engine.on_suite(spec, state, SuiteFinished(action.id, m.run), 2.0)


def test_a_shard_without_results_is_a_runner_error_for_its_tests_only_in_the_engine() -> None:
    spec = make_spec(("e2e", "P1"))
    state, action = _rerun_of_failures()
    (selection,) = action.suites
    p = plan("e2e", selection.test_ids, 2)
    outcomes = [passed_all(p.shards[0]), ShardOutcome(1, error="pod deleted", pod="e2e-1")]
    d = _feed(spec, state, action, merged(p, outcomes))
    assert d.state.phase is not engine.Phase.PASSED
    lost = set(p.shards[1].test_ids or ())
    for test_id in selection.test_ids or ():
        record = d.state.tests[test_id]
        if test_id in lost:
            assert record.diagnosis is not None
            assert record.diagnosis.failure_class is FailureClass.RUNNER_ERROR
            assert "pod deleted" in record.diagnosis.evidence
        else:
            assert not record.failing  # the shard that reported: its passes count
    assert d.state.selection_misses == {}  # a lost shard is not the runner's selection miss
    # Retried once, and only the lost shard's tests; flakeRetries does not matter.
    assert isinstance(d.action, RunSuites)
    assert d.action.suites == (engine.SuiteSelection("e2e", tuple(sorted(lost))),)


def test_a_test_that_passes_after_its_shard_was_lost_is_not_flaky_for_that() -> None:
    spec = make_spec(("e2e", "P1"))
    state, action = _rerun_of_failures()  # IDS[:4] failed (Assertion), the rest passed
    # A whole-suite run whose shard 2 of 2 is lost: its known tests are not run.
    p = plan("e2e", None, 2, runner="pytest")
    mine = [t for t in IDS if shard_of(t, 2) == 0]
    outcomes = [ShardOutcome(0, tuple(ok(t) for t in mine)), ShardOutcome(1, error="lost")]
    state = replace(state, running=(engine.SuiteSelection("e2e"),))
    d = _feed(spec, state, action, merged(p, outcomes))
    assert isinstance(d.action, RunSuites)
    # Its retry passes them: those that had passed before they were lost are not flaky.
    (selection,) = d.action.suites
    retry = engine.SuiteRun("e2e", tuple(ok(t) for t in selection.test_ids or ()))
    d = engine.on_suite(spec, d.state, SuiteFinished(d.action.id, retry), 3.0)
    lost_passing = {t for t in IDS[4:] if t not in mine}
    assert lost_passing and not lost_passing & set(d.state.flaky)
    assert d.state.phase is engine.Phase.PASSED


def test_a_lost_shard_again_stalls_the_round_on_runner_error() -> None:
    spec = make_spec(("e2e", "P1"))
    state, action = _rerun_of_failures()
    for _ in range(2):
        (selection,) = action.suites
        p = plan("e2e", selection.test_ids, 2)
        assert len(p.shards) == 2
        outcomes = [passed_all(p.shards[0]), ShardOutcome(1, error="pod deleted")]
        d = _feed(spec, state, action, merged(p, outcomes))
        state = d.state
        if isinstance(d.action, RunSuites):
            action = d.action
    assert d.state.phase is engine.Phase.STALLED
    assert d.state.reason is engine.Reason.RUNNER_ERROR


def test_a_lost_shard_of_a_whole_suite_run_makes_its_known_tests_runner_errors() -> None:
    spec = make_spec(("e2e", "P1"))
    state, action = _rerun_of_failures()
    # A later whole-suite run (a new round) whose shard 2 of 2 was lost.
    p = plan("e2e", None, 2, runner="pytest")
    mine = [t for t in IDS if shard_of(t, 2) == 0]
    outcomes = [ShardOutcome(0, tuple(ok(t) for t in mine)), ShardOutcome(1, error="lost")]
    whole = engine.SuiteSelection("e2e")
    state = replace(state, running=(whole,))
    d = engine.on_suite(spec, state, SuiteFinished(action.id, merged(p, outcomes).run), 2.0)
    for test_id in IDS:
        record = d.state.tests[test_id]
        if test_id in mine:
            assert not record.failing
        else:
            assert record.diagnosis is not None
            assert record.diagnosis.failure_class is FailureClass.RUNNER_ERROR
    assert d.state.phase is not engine.Phase.PASSED


def test_a_runner_that_ignores_the_shard_variables_ends_selection_ignored() -> None:
    spec = make_spec(("e2e", "P1"))
    d = engine.begin(spec, 0.0)
    everything = tuple(ok(t) for t in IDS)
    for _ in range(3):
        assert isinstance(d.action, RunSuites)
        (selection,) = d.action.suites
        p = plan("e2e", selection.test_ids, 3)
        m = merged(p, [ShardOutcome(s.index, everything) for s in p.shards])
        d = _feed(spec, d.state, d.action, m)
        assert d.state.phase is not engine.Phase.PASSED
        if d.state.phase is engine.Phase.STALLED:
            break
    assert d.state.reason is engine.Reason.SELECTION_IGNORED
    assert d.state.iteration == 2
    record = d.state.tests[IDS[0]]
    assert record.diagnosis is not None
    assert record.diagnosis.failure_class is FailureClass.NOT_RERUN
    assert "GREENLOOP_SHARD_INDEX" in " ".join(d.state.history[0].notes)


# ---------------------------------------------------------------------------
# Durations: kept per test, and what the next run's shards are balanced by


def test_each_test_keeps_the_duration_its_latest_result_reported() -> None:
    spec = make_spec(("e2e", "P1"))
    d = engine.begin(spec, 0.0)
    assert isinstance(d.action, RunSuites)
    results = (ok("a", time=2.5), ok("b", time=0.0), bad("c", ASSERT, time=float("nan")))
    d = engine.on_suite(
        spec, d.state, SuiteFinished(d.action.id, engine.SuiteRun("e2e", results)), 1.0
    )
    assert engine.durations(d.state, "e2e") == {"a": 2.5}
    assert engine.durations(d.state, "other") == {}
    # Kept through the stored state (the operator's restart).
    again = snapshot.from_data(snapshot.to_data(d.state))
    assert engine.durations(again, "e2e") == {"a": 2.5}


def test_a_rerun_is_balanced_by_the_previous_durations() -> None:
    spec = make_spec(("e2e", "P1"))
    d = engine.begin(spec, 0.0)
    assert isinstance(d.action, RunSuites)
    # One slow failure and three quick ones: LPT puts the slow one alone.
    seconds = {"slow": 8.0, "q1": 1.0, "q2": 1.0, "q3": 1.0}
    results = (*(bad(t, ASSERT, time=s) for t, s in seconds.items()), ok("fine", time=1.0))
    d = engine.on_suite(
        spec, d.state, SuiteFinished(d.action.id, engine.SuiteRun("e2e", results)), 1.0
    )
    assert isinstance(d.action, RunSuites)
    (selection,) = d.action.suites
    suite = replace(spec.suites[0], shards=4)
    p = suite_plan(suite, d.state, selection)
    assert [s.test_ids for s in p.shards] == [("slow",), ("q1", "q2", "q3")]
    # A whole-suite run is the runner's split, never wider than the tests it reported.
    whole = suite_plan(
        replace(suite, shards=64, runner="pytest"), d.state, engine.SuiteSelection("e2e")
    )
    assert [(s.index, s.count, s.test_ids) for s in whole.shards] == [
        (i, 5, None) for i in range(5)
    ]


# ---------------------------------------------------------------------------
# Properties of the merge


BEHAVIOURS = ["honest", "honest", "ignores selection", "drops one", "adds a stray", "fails"]


@st.composite
def shard_runs(draw: st.DrawFn) -> tuple[ShardPlan, list[ShardOutcome]]:
    ids = [f"t{n}" for n in range(draw(st.integers(1, 20)))]
    whole = draw(st.booleans())
    p = (
        plan("e2e", None, draw(st.integers(1, 6)), runner="pytest")
        if whole
        else plan("e2e", ids, draw(st.integers(1, 6)))
    )
    outcomes = []
    for shard in p.shards:
        mine = (
            [t for t in ids if shard_of(t, shard.count) == shard.index]
            if shard.test_ids is None
            else list(shard.test_ids)
        )
        behaviour = draw(st.sampled_from(BEHAVIOURS))
        if behaviour == "fails":
            outcomes.append(ShardOutcome(shard.index, error="no results", pod=f"p{shard.index}"))
            continue
        if behaviour == "ignores selection":
            mine = list(ids)
        elif behaviour == "drops one" and mine:
            mine = mine[1:]
        elif behaviour == "adds a stray":
            mine = [*mine, draw(st.sampled_from([*ids, "unselected"]))]
        # t0 fails in some shards (as a module that does not import fails in all).
        outcome = draw(st.sampled_from([Outcome.PASSED, Outcome.FAILED, Outcome.ERROR]))
        tests = tuple(
            TestResult(t, t, "", outcome if t == "t0" else Outcome.PASSED, message=ASSERT)
            for t in mine
        )
        outcomes.append(ShardOutcome(shard.index, tests, started=1.0, finished=2.0 + shard.index))
    return p, outcomes


@given(shard_runs(), st.permutations(range(64)))
@settings(max_examples=200, deadline=None)
def test_any_order_of_shard_results_merges_the_same(
    case: tuple[ShardPlan, list[ShardOutcome]], order: list[int]
) -> None:
    p, outcomes = case
    reordered = sorted(outcomes, key=lambda o: order.index(o.index))
    assert merge(p, reordered) == merge(p, outcomes)


@given(shard_runs())
@settings(max_examples=200, deadline=None)
def test_a_duplicate_stray_or_missing_shard_never_merges_to_a_pass(
    case: tuple[ShardPlan, list[ShardOutcome]],
) -> None:
    p, outcomes = case
    m = merged(p, outcomes)
    counted = {t.id for t in m.run.tests}
    assert not counted & set(m.conflicts)
    owner = p.owner
    reporters: dict[str, set[int]] = {}
    for o in outcomes:
        for t in o.tests if o.error is None else ():
            reporters.setdefault(t.id, set()).add(o.index)
    for test_id, by in reporters.items():
        duplicate = len(by) > 1
        stray = test_id in owner and by != {owner[test_id]}
        results = [t for t in m.run.tests if t.id == test_id]
        if duplicate or stray:
            # Never handed to the engine as a result that counts: unreported (NotRerun),
            # a RunnerError, a result for a test nobody selected (which it ignores), or,
            # on a whole-suite run, the failure every shard reported, kept from one shard
            # (as often as that shard listed it: a runner's own repeats count once later).
            nobodys = p.selected is not None and test_id not in p.selected
            failed_once = p.selected is None and all(r.is_failure for r in results)
            assert not results or nobodys or failed_once
    failed = {o.index for o in outcomes if o.error is not None}
    if failed:
        # No result from a failed shard is handed on; its ids are the engine's RunnerErrors.
        assert m.run.error is not None or m.run.shard_error is not None
        assert set(m.unrun) == {t for s in p.shards for t in s.test_ids or () if s.index in failed}
        assert not counted & set(m.unrun)
    if len(failed) == len(outcomes):
        assert m.run.error is not None and m.run.tests == ()


# ---------------------------------------------------------------------------
# The spec: suites[].shards


def _suite_with(**fields: object) -> str:
    suite = {"name": "core", "command": ["pytest"], **fields}
    return yaml.safe_dump(
        {
            "apiVersion": "greenloop.dev/v1alpha1",
            "kind": "StagingValidation",
            "metadata": {"name": "checkout"},
            "spec": {"suites": [suite]},
        }
    )


@pytest.mark.parametrize(("fields", "expected"), [({}, 1), ({"shards": 1}, 1)])
def test_the_spec_says_how_many_shards_a_suite_runs_in(
    fields: dict[str, object], expected: int
) -> None:
    (sv,) = spec.load_text(_suite_with(**fields)).objects
    assert sv.spec.suites[0].shards == expected


@pytest.mark.parametrize("shards", [2, 4, MAX_SHARDS])
def test_local_mode_runs_more_than_one_shard(shards: int) -> None:
    (sv,) = spec.load_text(_suite_with(shards=shards)).objects
    assert sv.spec.suites[0].shards == shards


@pytest.mark.parametrize("shards", [2, MAX_SHARDS])
def test_operator_mode_runs_more_than_one_shard(shards: int) -> None:
    (sv,) = spec.load_text(_suite_with(shards=shards, image="e2e:1"), mode="operator").objects
    assert sv.spec.suites[0].shards == shards


@pytest.mark.parametrize("mode", ["local", "operator"])
def test_more_shards_than_policy_parallelism_is_a_warning(mode: str) -> None:
    loaded = spec.load_text(_suite_with(shards=4, image="e2e:1"), mode=mode)  # type: ignore[arg-type]
    (warning,) = [w for w in loaded.warnings if "spec.suites[0].shards" in w]
    assert "4 shards, but spec.policy.parallelism is 1: at most 1 run at once" in warning


@pytest.mark.parametrize("shards", [0, MAX_SHARDS + 1, "4"])
def test_the_spec_refuses_shards_outside_1_to_64(shards: object) -> None:
    with pytest.raises(SpecError, match=r"spec\.suites\[0\]\.shards"):
        spec.load_text(_suite_with(shards=shards))


def test_the_crd_and_the_core_agree_on_the_bound() -> None:
    field = spec.spec_schema()["properties"]["spec"]["properties"]["suites"]["items"]["properties"][
        "shards"
    ]
    assert (field["minimum"], field["maximum"], field["default"]) == (1, MAX_SHARDS, 1)


@pytest.mark.parametrize("runner", ["pytest", "jest", "vitest", "go", "maven", "playwright"])
def test_only_maven_runs_in_one_process_locally(runner: str) -> None:
    # Maven's shards of one project would read each other's Surefire reports in target/.
    assert one_process_locally(runner) is (runner == "maven")


# ---------------------------------------------------------------------------
# The runner's balanced split (the pytest plugin's whole-suite run): hash order, dealt


@pytest.mark.parametrize(
    ("groups", "count", "loads"),
    [
        # 64 tests of one name pattern: 16 a shard (the hash alone gave 9/14/20/21).
        ({f"test_wait.py::test_{k:02d}": 1 for k in range(64)}, 4, [16, 16, 16, 16]),
        ({f"test_wait.py::test_{k:02d}": 1 for k in range(64)}, 8, [8] * 8),
        ({f"t{k}": 1 for k in range(13)}, 3, [5, 4, 4]),
        # A group of 3 (tests linked by depends_on) and 10 single tests: never split.
        ({"group": 3, **{f"t{k}": 1 for k in range(10)}}, 3, [5, 4, 4]),
        ({"only": 1}, 4, [1, 0, 0, 0]),
    ],
)
def test_a_whole_suite_is_dealt_in_hash_order_onto_the_emptiest_shard(
    groups: dict[str, int], count: int, loads: list[int]
) -> None:
    where = split_collected(groups, count)
    assert set(where) == set(groups)
    got = [0] * count
    for key, size in groups.items():
        got[where[key]] += size
    assert sorted(got, reverse=True) == loads


@given(
    st.dictionaries(st.text(min_size=1, max_size=10), st.integers(1, 5), max_size=60),
    st.integers(1, MAX_SHARDS),
    st.randoms(use_true_random=False),
)
@settings(max_examples=200, deadline=None)
def test_the_dealt_split_is_the_same_in_every_shard_whatever_the_collection_order(
    groups: dict[str, int], count: int, rng: random.Random
) -> None:
    items = list(groups.items())
    rng.shuffle(items)
    assert split_collected(dict(items), count) == split_collected(groups, count)
    assert all(0 <= s < count for s in split_collected(groups, count).values())
