"""The same-collection rule (docs/design.md §4.1): on a whole-suite run the pytest plugin
deals the suite each shard collected, so shards that collected different suites (a test
defined only where an environment variable says so, an import that fails in one pod) may
leave a test in no shard. Each shard reports what it collected (``greenloop.collected``:
count and digest); the merge refuses to call such a run complete."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from greenloop.core.junit import parse_junit
from greenloop.core.shard_results import MergedSuite, ShardOutcome, merge
from greenloop.core.shards import COLLECTED_PROPERTY, Collected, collected, parse_collected, plan
from tests.unit.scenario import ok

# ---------------------------------------------------------------------------
# What a shard collected: its count and a digest of its sorted node ids


def test_the_digest_is_the_first_16_hex_of_sha256_over_the_sorted_ids() -> None:
    ids = ["b.py::t", "a.py::t[1]", "a.py::t[0]"]
    text = "\n".join(sorted(ids)).encode("utf-8")
    assert collected(ids) == Collected(3, hashlib.sha256(text).hexdigest()[:16])
    assert collected(reversed(ids)) == collected(ids)  # the order collected does not count
    assert collected(ids).describe() == f"3:{collected(ids).digest}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("64:0123456789abcdef", Collected(64, "0123456789abcdef")),
        (" 0:0123456789abcdef ", Collected(0, "0123456789abcdef")),
        ("", None),
        ("64", None),
        ("64:", None),
        ("-1:0123456789abcdef", None),
        ("x:0123456789abcdef", None),
        ("64:0123456789ABCDEF", None),  # not how greenloop writes it
        ("64:0123456789abcde", None),  # too short
        ("64:0123456789abcdef0", None),  # too long
        ("1" * 11 + ":0123456789abcdef", None),  # a count no suite has
        ("64:0123456789abcdef:1", None),
        ("x" * 10_000, None),
    ],
)
def test_a_collected_value_is_read_only_when_well_formed(
    value: str, expected: Collected | None
) -> None:
    assert parse_collected(value) == expected


# ---------------------------------------------------------------------------
# The JUnit report carries it as a suite-level property


def junit(*properties: str, cases: int = 1) -> bytes:
    props = "".join(
        f'<property name="{COLLECTED_PROPERTY}" value="{value}"/>' for value in properties
    )
    tests = "".join(f'<testcase classname="m" name="t{n}"/>' for n in range(cases))
    suite = f"<testsuite><properties>{props}</properties>{tests}</testsuite>"
    return f"<testsuites>{suite}</testsuites>".encode()


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (("2:0123456789abcdef",), Collected(2, "0123456789abcdef")),
        ((), None),  # a generic runner, an older plugin
        (("two:tests",), None),  # malformed: ignored, as if absent
        (("x" * 100_000,), None),
        # The first well-formed value counts; a report says once what it collected.
        (("bad", "2:0123456789abcdef", "3:fedcba9876543210"), Collected(2, "0123456789abcdef")),
    ],
)
def test_the_report_reads_the_collected_property(
    properties: tuple[str, ...], expected: Collected | None
) -> None:
    report = parse_junit(junit(*properties, cases=2))
    assert report.collected == expected
    assert len(report.tests) == 2 and report.notes == ()


def test_a_testcase_property_of_that_name_is_not_the_reports() -> None:
    xml = (
        '<testsuite><testcase classname="m" name="t"><properties>'
        f'<property name="{COLLECTED_PROPERTY}" value="1:0123456789abcdef"/>'
        "</properties></testcase></testsuite>"
    )
    assert parse_junit(xml.encode()).collected is None


# ---------------------------------------------------------------------------
# The merge: different collections, or fewer reported than collected, are never a pass

SUITE = [f"t{n}" for n in range(6)]
ALL = collected(SUITE)
MORE = collected([*SUITE, "t_extra"])


def outcome(index: int, ids: Sequence[str], claim: Collected | None) -> ShardOutcome:
    return ShardOutcome(index, tuple(ok(t) for t in ids), collected=claim, pod=f"p{index}")


def merged(outcomes: Sequence[ShardOutcome], selected: Sequence[str] | None = None) -> MergedSuite:
    p = plan("e2e", selected, 3, runner="pytest")
    out = merge(p, outcomes)
    assert isinstance(out, MergedSuite)
    return out


@pytest.mark.parametrize(
    ("claims", "parts", "error"),
    [
        # Every shard collected the same suite and together they reported all of it.
        ((ALL, ALL, ALL), (["t0", "t1"], ["t2", "t3"], ["t4", "t5"]), None),
        # A shard that reports nothing is not checked (a generic runner, an older plugin).
        ((None, None, None), (["t0", "t1"], ["t2"], ["t4", "t5"]), None),
        ((ALL, None, ALL), (["t0", "t1"], ["t2", "t3"], ["t4", "t5"]), None),
        # Shard 2 collected one test more: the others' parts may have shifted.
        (
            (ALL, MORE, ALL),
            (["t0", "t1"], ["t2", "t3", "t_extra"], ["t4", "t5"]),
            "shards collected different suites: shards 1, 3 6 tests, shard 2 7 tests: "
            "a test may have run in no shard",
        ),
        # Same count, different tests: the digest tells them apart.
        (
            (ALL, ALL, collected([*SUITE[:5], "t_other"])),
            (["t0", "t1"], ["t2", "t3"], ["t4", "t_other"]),
            "shards collected different suites: shards 1, 2 6 tests, shard 3 6 tests "
            "(other tests): a test may have run in no shard",
        ),
        # They agree, but one test ran in no shard.
        (
            (ALL, ALL, ALL),
            (["t0", "t1"], ["t2"], ["t4", "t5"]),
            "shards collected 6 tests, 5 reported: a test ran in no shard",
        ),
    ],
)
def test_shards_must_report_the_suite_they_all_collected(
    claims: tuple[Collected | None, ...], parts: tuple[list[str], ...], error: str | None
) -> None:
    pairs = enumerate(zip(parts, claims, strict=True))
    m = merged([outcome(i, ids, claim) for i, (ids, claim) in pairs])
    assert m.run.error is None
    assert m.run.shard_error == error
    # Never the new truth of a whole-suite run while in doubt; what ran is handed on.
    assert sorted(t.id for t in m.run.tests) == sorted(t for ids in parts for t in ids)


def test_a_shard_without_results_is_not_also_a_different_collection() -> None:
    m = merged(
        [
            outcome(0, ["t0", "t1"], ALL),
            ShardOutcome(1, error="pod p1 produced no results", pod="p1"),
            outcome(2, ["t4", "t5"], ALL),
        ]
    )
    assert m.run.shard_error == "shard 2/3 (p1): no results: pod p1 produced no results"


def test_a_selection_is_not_checked() -> None:
    # A rerun: greenloop assigned the ids, the line-up checks them (engine.line_up).
    m = merged([outcome(i, [f"t{i}"], collected([f"t{i}"])) for i in range(3)], SUITE[:3])
    assert m.run.shard_error is None
