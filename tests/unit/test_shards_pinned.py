"""The sharding rules a person reads, pinned where ``make mutate shards`` found them loose
(core/shards.py, core/shard_results.py, core/shard_pods.py, core/contract.py): the merged
run's every field when all shards failed, the exit code kept, each report line and note
word for word, the overhead and start cost to the hundredth, ties in the balanced split,
the same-collection value's edge cases, and a shard's command and environment."""

from __future__ import annotations

import hashlib
import math

import pytest

from greenloop.core import contract, engine
from greenloop.core.engine import SuiteRun, SuiteSelection
from greenloop.core.model import EnvVar, Outcome, Suite
from greenloop.core.shard_results import (
    MergedSuite,
    ShardLine,
    ShardOutcome,
    merge,
    overhead_seen,
    start_cost,
    suite_plan,
)
from greenloop.core.shards import (
    Collected,
    Shard,
    ShardPlan,
    assign,
    collected,
    makespan,
    parse_collected,
    plan,
    shard_args,
    shard_command,
    shard_of,
    shards_worth_starting,
    split_collected,
)
from tests.unit.scenario import ASSERT, bad, ok

IDS = [f"t{n}" for n in range(4)]


def merged(p: ShardPlan, outcomes: list[ShardOutcome]) -> MergedSuite:
    out = merge(p, outcomes)
    assert isinstance(out, MergedSuite)
    return out


# ---------------------------------------------------------------------------
# The merge: what the engine and the report read


def test_a_rerun_whose_every_shard_failed_is_one_runner_error_with_every_field() -> None:
    p = plan("e2e", IDS, 2)
    outcomes = [
        ShardOutcome(0, (ok("t0"),), error="boom", pod="p0", exit_code=None, started=5.0,
                     finished=6.0, note="ignored", permanent=True),
        ShardOutcome(1, error="gone", pod="p1", exit_code=0, started=4.0, finished=9.0),
    ]  # fmt: skip
    m = merged(p, outcomes)
    assert m.run == SuiteRun(
        suite="e2e",
        error="shard 1/2 (p0): no results: boom; shard 2/2 (p1): no results: gone",
        permanent=True,
        exit_code=0,
        started=4.0,
        finished=9.0,
        selected=tuple(IDS),
        shard_lines=(
            "shard 1/2 (p0): no results: boom",
            "shard 2/2 (p1): no results: gone",
        ),
        overhead=None,
        width=2,
    )
    # A failed shard's results and note are not its line's.
    assert m.shards[0] == ShardLine(0, 2, "p0", 2, 0, 0, 0, 1.0, "boom")
    assert m.unrun == tuple(IDS)


def test_an_empty_selection_merges_into_an_empty_run_with_no_times() -> None:
    assert merged(plan("e2e", [], 2), []).run == SuiteRun("e2e", selected=())


def test_one_shard_is_no_sharded_run_for_the_report() -> None:
    m = merged(plan("e2e", ["t0"], 1), [ShardOutcome(0, (ok("t0"),), started=1, finished=2)])
    assert (m.run.shard_lines, m.run.overhead, m.run.width) == ((), None, 0)


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ((None, None), None),
        ((None, 3), 3),
        ((0, 2), 2),
        ((1, 0), 1),  # the first that is not 0
        ((0, 0), 0),
        ((None, 0), 0),
    ],
)
def test_the_suites_exit_code_is_the_first_shards_that_is_not_0(
    codes: tuple[int | None, int | None], expected: int | None
) -> None:
    p = plan("e2e", ["t0", "t1"], 2)
    outcomes = [
        ShardOutcome(s.index, tuple(ok(t) for t in s.test_ids or ()), exit_code=c)
        for s, c in zip(p.shards, codes, strict=True)
    ]
    assert merged(p, outcomes).run.exit_code == expected


def test_a_failed_shards_stray_results_are_not_the_suites() -> None:
    p = plan("e2e", ["t0", "t1"], 2)
    m = merged(p, [ShardOutcome(0, (ok("t0"),), error="lost"), ShardOutcome(1, (ok("t1"),))])
    assert [t.id for t in m.run.tests] == ["t1"]
    assert m.run.shard_error == "shard 1/2: no results: lost"
    assert m.run.unrun == ("t0",)


def test_a_shard_reported_twice_is_one_failed_line_naming_both_pods() -> None:
    p = plan("e2e", ["t0", "t1"], 2)
    twice = [ShardOutcome(0, (ok("t0"),), pod="b", started=3.0, finished=4.0),
             ShardOutcome(0, (ok("t0"),), pod="a", started=2.0, finished=7.0)]  # fmt: skip
    m = merged(p, [*twice, ShardOutcome(1, (ok("t1"),), pod="c")])
    assert m.shards[0] == ShardLine(
        0, 2, "a, b", 1, 0, 0, 0, 5.0,
        "results reported 2 times for one shard; none believed",
    )  # fmt: skip


def test_a_deleted_pods_line_says_so() -> None:
    p = plan("e2e", ["t0", "t1"], 2)
    m = merged(p, [ShardOutcome(0, error="killed", pod="e2e-0", pod_gone=True),
                   ShardOutcome(1, (ok("t1"),), pod="e2e-1")])  # fmt: skip
    assert m.shards[0].describe() == "shard 1/2 (pod e2e-0, deleted): no results: killed"


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (ShardLine(0, 2, "p", None, 3, 3, 0, 1.25, pod_gone=True),
         "shard 1/2 (pod p, deleted): 3 tests in 1.2 s"),
        (ShardLine(1, 2, "", 4, 1, 1, 0, 2.0, pod_gone=True),
         "shard 2/2 (pod deleted): 1 test of 4 given in 2.0 s"),
        (ShardLine(1, 2, "", 4, 5, 3, 2, 2.0),
         "shard 2/2: 5 tests of 4 given in 2.0 s, 2 not its own (ignored)"),
        (ShardLine(0, 3, "p", None, 0, 0, 0, 0.0, note="n" * 300),
         f"shard 1/3 (p): 0 tests in 0.0 s ({'n' * 200})"),
    ],
)  # fmt: skip
def test_each_shards_report_line_word_for_word(line: ShardLine, text: str) -> None:
    assert line.describe() == text


def _whole(count: int) -> ShardPlan:
    return plan("e2e", None, count)


@pytest.mark.parametrize(
    ("reported", "note", "split_ignored"),
    [
        # Every shard reported every test: the runner ignored the shard variables.
        ({0: ["a", "b", "c", "d"], 1: ["a", "b", "c", "d"]},
         "suite e2e: 4 tests reported by more than one shard (a, b, c and 1 more): the "
         "runner ignored GREENLOOP_SHARD_INDEX and GREENLOOP_SHARD_COUNT; not counted "
         "(NotRerun); make its command split by them (docs/runners.md) or run the suite in "
         "one shard", ("a", "b", "c", "d")),
        ({0: ["a", "b"], 1: ["a"]},
         "suite e2e: 1 test reported by more than one shard (a): the runner ignored "
         "GREENLOOP_SHARD_INDEX and GREENLOOP_SHARD_COUNT; not counted (NotRerun); make its "
         "command split by them (docs/runners.md) or run the suite in one shard", ("a",)),
        ({0: ["a", "b"], 1: ["c"]}, "", ()),
    ],
)  # fmt: skip
def test_a_whole_suite_reported_twice_says_the_runner_ignored_the_shard_variables(
    reported: dict[int, list[str]], note: str, split_ignored: tuple[str, ...]
) -> None:
    m = merged(_whole(2), [ShardOutcome(i, tuple(ok(t) for t in ts)) for i, ts in reported.items()])
    assert (m.note, m.run.split_ignored) == (note, split_ignored)


@pytest.mark.parametrize(
    ("strays", "note"),
    [
        (["t1"], "suite e2e: 1 test reported by a shard not given it (t1): the runner "
                 "ignored its selection; not counted (NotRerun)"),
        (["t1", "t2", "t3"], "suite e2e: 3 tests reported by a shard not given them "
                             "(t1, t2, t3): the runner ignored its selection; not counted "
                             "(NotRerun)"),
    ],
)  # fmt: skip
def test_a_rerun_shard_reporting_others_tests_says_the_runner_ignored_its_selection(
    strays: list[str], note: str
) -> None:
    p = plan("e2e", IDS, 4)
    owner = p.owner
    outcomes = [
        ShardOutcome(s.index, tuple(ok(t) for t in s.test_ids or ()) + tuple(
            ok(t) for t in strays if s.index == owner["t0"]))
        for s in p.shards
    ]  # fmt: skip
    assert merged(p, outcomes).note == note


def test_a_failure_both_shards_of_a_whole_suite_report_is_kept_once() -> None:
    outcomes = [ShardOutcome(i, (bad("broken.py", ASSERT), ok(f"own{i}"))) for i in range(2)]
    m = merged(_whole(2), outcomes)
    assert sorted(t.id for t in m.run.tests) == ["broken.py", "own0", "own1"]
    assert (m.conflicts, m.run.split_ignored) == ((), ())


def test_a_lost_shard_and_different_collections_are_both_said() -> None:
    outcomes = [
        ShardOutcome(0, error="lost"),
        ShardOutcome(1, (ok("a"),), collected=Collected(2, "0" * 16)),
        ShardOutcome(2, (ok("b"),), collected=Collected(3, "1" * 16)),
    ]
    assert merged(_whole(3), outcomes).run.shard_error == (
        "shard 1/3: no results: lost; shards collected different suites: shard 2 2 tests, "
        "shard 3 3 tests: a test may have run in no shard"
    )


# ---------------------------------------------------------------------------
# What one more shard costs


@pytest.mark.parametrize(
    ("shards", "expected"),
    [
        # (started, finished, its tests' seconds)
        ([(0.5, 3.0, (1.0,))], 1.5),  # a start under 1 s is a start
        ([(2.0, 2.0, ())], 0.0),  # no time at all is still a time
        ([(1.0, 4.0, (1.0, math.inf, -1.0))], 2.0),  # only finite, positive times count
        ([(1.0, 2.234, ())], 1.23),  # to the hundredth
    ],
)
def test_the_overhead_counts_every_real_time_to_the_hundredth(
    shards: list[tuple[float, float, tuple[float, ...]]], expected: float
) -> None:
    outcomes = [
        ShardOutcome(i, tuple(ok(f"t{i}-{k}", time=t) for k, t in enumerate(times)),
                     started=a, finished=b)
        for i, (a, b, times) in enumerate(shards)
    ]  # fmt: skip
    assert overhead_seen(outcomes) == expected


def test_the_start_cost_is_kept_to_the_hundredth() -> None:
    state = engine.State(shard_overheads={"e2e": ((4, 2.0), (1, 1.0))})
    assert start_cost(state, "e2e") == 0.33


# ---------------------------------------------------------------------------
# The balanced split


def test_equal_loads_go_to_the_shard_with_fewer_tests() -> None:
    shards = assign(["a", "b", "c", "d"], 2, {"a": 2.0, "b": 1.0, "c": 1.0, "d": 1.0})
    assert [s.test_ids for s in shards] == [("a", "d"), ("b", "c")]


def test_no_shard_has_no_makespan_and_no_job_needs_no_shard() -> None:
    assert makespan(()) == 0.0
    assert shards_worth_starting([], 4, 1.0) == [[]]


def test_a_selection_keeps_dependents_with_their_dependency() -> None:
    p = plan("e2e", ["a", "b", "c", "d"], 4, depends_on={"d": ["a"]})
    # Apart, LPT would pair (a, c) and (b, d).
    assert [s.test_ids for s in p.shards] == [("a", "d"), ("b", "c")]


def test_a_whole_suite_is_dealt_in_the_sha256_order_of_its_groups() -> None:
    keys = [f"test_{k}.py::t" for k in range(6)]

    def rank(key: str) -> int:
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")

    order = sorted(keys, key=rank)
    # One test a group into 3 shards: dealt round-robin in that order.
    assert split_collected(dict.fromkeys(keys, 1), 3) == {k: i % 3 for i, k in enumerate(order)}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: split_collected({}, 0), "shard count must be at least 1, got 0"),
        (lambda: shard_args("jest", 4, 4), r"shard index 4 is not in 0\.\.3$"),
    ],
)
def test_a_bad_shard_count_or_index_is_refused_saying_which(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


# ---------------------------------------------------------------------------
# What a shard collected (the same-collection rule)


def test_an_id_that_is_no_valid_text_is_still_collected() -> None:
    ids = ["b", "a\udc80"]  # an undecodable file name, as Python hands it on
    text = "a\udc80\nb".encode("utf-8", "surrogatepass")
    assert collected(ids) == Collected(2, hashlib.sha256(text).hexdigest()[:16])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234567890:0123456789abcdef", Collected(1234567890, "0123456789abcdef")),
        ("\u0666\u0664:0123456789abcdef", None),  # digits, but not how greenloop writes them
        ("64:0123456789abcdeX", None),
    ],
)
def test_a_collected_value_at_its_edges(value: str, expected: Collected | None) -> None:
    assert parse_collected(value) == expected


# ---------------------------------------------------------------------------
# A shard's command and environment

COMMAND = ("npx", "jest", "{greenloop:select}", "--out={greenloop:junit}")


@pytest.mark.parametrize(
    ("shard", "expected"),
    [
        (Shard(1, 3), ("npx", "jest", "--out=/r/j.xml", "--shard=2/3")),
        (Shard(0, 2, ("a.test.js::adds",)),
         ("npx", "jest", "-t", "^adds$", "--", "a\\.test\\.js$", "--out=/r/j.xml")),
    ],
)  # fmt: skip
def test_a_shards_command_is_the_suites_with_its_part(
    shard: Shard, expected: tuple[str, ...]
) -> None:
    assert shard_command(COMMAND, "jest", shard, "/r/j.xml") == expected


@pytest.mark.parametrize(
    ("shard", "index"),
    [
        (contract.ShardVars(3, index=1), EnvVar("GREENLOOP_SHARD_INDEX", "1")),
        (contract.ShardVars(3, index_from={"fieldRef": {"fieldPath": "x"}}),
         EnvVar("GREENLOOP_SHARD_INDEX", "", {"fieldRef": {"fieldPath": "x"}})),
    ],
)  # fmt: skip
def test_a_shards_environment_word_for_word(shard: contract.ShardVars, index: EnvVar) -> None:
    s = Suite(name="e2e", command=("run",), image="e2e:1", runner="generic", shards=3)
    env = contract.suite_env(s, 7, "/r/j.xml", None, shard)
    assert env == (
        EnvVar("GREENLOOP_JUNIT_XML", "/r/j.xml"),
        EnvVar("GREENLOOP_SUITE", "e2e"),
        EnvVar("GREENLOOP_ITERATION", "7"),
        index,
        EnvVar("GREENLOOP_SHARD_COUNT", "3"),
    )
    assert [v.value_from for v in env] == [None, None, None, index.value_from, None]


def test_a_tie_between_widths_goes_to_fewer_shards_whichever_was_tried_first() -> None:
    seconds = {"j0": 5.0, "j5": 5.0, "j3": 4.0, "j1": 3.0, "j2": 3.0, "j4": 2.0}
    shards = assign(list(seconds), 7, seconds, start_cost=2.0)
    assert [s.test_ids for s in shards] == [("j0", "j2"), ("j4", "j5"), ("j1", "j3")]


def test_a_hash_over_an_id_that_is_no_valid_text_is_still_a_shard() -> None:
    digest = hashlib.sha256("a\udc80".encode("utf-8", "surrogatepass")).digest()
    assert shard_of("a\udc80", 7) == int.from_bytes(digest[:8], "big") % 7


def test_a_suites_rerun_plan_reads_its_runner_dependencies_and_start_cost() -> None:
    def record(test_id: str, *depends_on: str) -> engine.TestRecord:
        return engine.TestRecord(test_id, "e2e", "P1", Outcome.FAILED, 1, seconds=1.0,
                                 depends_on=depends_on)  # fmt: skip

    ids = ("./p::TestA/x", "./p::TestA/y", "./p::TestB", "./p::TestC", "./p::TestD", "./p::TestE")
    state = engine.State(
        tests={t.id: t for t in (*map(record, ids[:2]), record(ids[2], ids[3]),
                                 *map(record, ids[3:]))},
        # Two widths that cost the same: one more shard costs nothing.
        shard_overheads={"e2e": ((2, 1.0), (1, 1.0))},
    )  # fmt: skip
    suite = Suite(name="e2e", command=("go", "test", "{greenloop:select}"), image="e2e:1",
                  runner="go", shards=4)  # fmt: skip
    p = suite_plan(suite, state, SuiteSelection("e2e", ids))
    assert p.suite == "e2e"
    # Go's subtests rerun together, a dependent with its dependency; 3 shards of 2 s (a
    # fourth would finish no sooner).
    assert [s.test_ids for s in p.shards] == [
        ("./p::TestA/x", "./p::TestA/y"),
        ("./p::TestB", "./p::TestC"),
        ("./p::TestD", "./p::TestE"),
    ]
