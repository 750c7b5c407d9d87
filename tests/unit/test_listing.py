"""A whole-suite Go run split from a listing of its tests (core/listing.py, docs/design.md
§4.1).

Grouped by rule: the listing is read as gotestsum's ids or refused; the split runs every
test exactly once (the listed ones where the hash puts their name, anything else in shard
0), is stable, never has more shards than names nor an empty one; a listing that cannot
be trusted runs the suite whole in one shard, and says why."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.core.listing import (
    GoListing,
    go_list_args,
    go_packages,
    go_version,
    parse_go_listing,
    split_go,
)
from greenloop.core.shards import Shard, ShardPlan, shard_command, shard_of

COMMAND = ("gotestsum", "--junitfile", "{greenloop:junit}", "--", "{greenloop:select|./...}")

# ---------------------------------------------------------------------------
# The listing: gotestsum's ids, or why it cannot be trusted

LISTING = """\
TestA
TestB
ok  \texample.com/m/a\t0.004s
?   \texample.com/m/tools\t[no test files]
hello from init
TestA
ExampleHello
FuzzParse
BenchmarkSlow
ok  \texample.com/m/b\t0.003s
"""


@pytest.mark.parametrize(
    ("text", "ids", "packages"),
    [
        (
            LISTING,
            (
                "example.com/m/a::TestA",
                "example.com/m/a::TestB",
                "example.com/m/b::TestA",
                "example.com/m/b::ExampleHello",
                "example.com/m/b::FuzzParse",
            ),
            ("example.com/m/a", "example.com/m/tools", "example.com/m/b"),
        ),
        ("", (), ()),
        ("?   \tx/y\t[no test files]\n", (), ("x/y",)),
        ("TestA\nTestA\nok  \tx\t0.1s\n", ("x::TestA",), ("x",)),  # listed twice: once
        ("TestA\r\nok  \tx\t0.1s\r\n", ("x::TestA",), ("x",)),
    ],
    ids=["packages-examples-fuzz-no-benchmarks", "empty", "no-tests", "twice", "crlf"],
)
def test_a_listing_gives_gotestsums_ids(
    text: str, ids: tuple[str, ...], packages: tuple[str, ...]
) -> None:
    assert parse_go_listing(text) == GoListing(ids, packages)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("TestA\nok  \tx\t0.1s\nFAIL\tx/y [build failed]\n", "reported a failure: FAIL"),
        ("# x/y\n./y_test.go:3: undefined: z\nFAIL\tx/y [setup failed]\n", "FAIL\tx/y"),
        ("TestA\n--- FAIL: TestMain\n", "reported a failure"),
        ("TestA\nTestB\n", "2 test names with no package line"),
    ],
    ids=["build-failed", "setup-failed", "fail-marker", "cut-short"],
)
def test_a_listing_that_failed_or_was_cut_short_is_refused(text: str, why: str) -> None:
    found = parse_go_listing(text)
    assert isinstance(found, str) and why in found


@pytest.mark.parametrize(
    ("command", "packages", "listed"),
    [
        (COMMAND, ("./...",), ("./...",)),
        (
            ("go", "test", "{greenloop:select|-tags=e2e ./api/... ./web}"),
            ("-tags=e2e", "./api/...", "./web"),
            ("-tags=e2e", "./api/...", "./web"),
        ),
        (("gotestsum", "--", "{greenloop:select}"), (), ("./...",)),
        (("go", "test"), (), ("./...",)),
    ],
    ids=["default", "words", "bare-placeholder", "no-placeholder"],
)
def test_the_listing_lists_the_packages_of_the_placeholders_default(
    command: tuple[str, ...], packages: tuple[str, ...], listed: tuple[str, ...]
) -> None:
    assert go_packages(command) == packages
    assert go_list_args(command) == ("go", "test", "-list", ".*", *listed)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("go version go1.26.8 linux/amd64\n", (1, 26)),
        ("go version go1.19 linux/arm64", (1, 19)),
        ("go version devel go1.24-abc123 Tue linux/amd64", (1, 24)),
        ("bash: go: command not found", None),
    ],
)
def test_go_version_reads_major_and_minor(text: str, version: tuple[int, int] | None) -> None:
    assert go_version(text) == version


# ---------------------------------------------------------------------------
# The split: every test exactly once, stable, never more shards than names


def runs(shard: Shard, name: str) -> bool:
    """Whether ``go test`` with this shard's arguments runs a top-level test of ``name``
    (Go's -run and -skip match the name against an RE2 pattern; ours are plain
    alternations of escaped literals, which Python's re reads alike)."""
    assert shard.args is not None and shard.args[0] == "-count=1"
    flag, pattern = shard.args[1], shard.args[2]
    matched = re.search(pattern, name) is not None
    return matched if flag == "-run" else not matched


def listing_of(names: dict[str, list[str]]) -> GoListing:
    ids = tuple(f"{package}::{n}" for package, ns in names.items() for n in ns)
    return GoListing(ids, tuple(names))


NAMES = st.from_regex(r"(Test|Example|Fuzz)[A-Za-z0-9_]{0,6}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    packages=st.dictionaries(
        st.sampled_from(["x/a", "x/b", "x/c"]), st.lists(NAMES, max_size=12, unique=True)
    ),
    count=st.integers(1, 8),
    unlisted=st.lists(NAMES, max_size=4),
)
def test_every_test_runs_in_exactly_one_shard(
    packages: dict[str, list[str]], count: int, unlisted: list[str]
) -> None:
    listing = listing_of(packages)
    split = split_go("s", COMMAND, count, listing, (1, 26))
    shards = split.plan.shards
    names = {n for ns in packages.values() for n in ns}
    assert len(shards) <= max(1, min(count, len(names)))
    assert [s.index for s in shards] == list(range(len(shards)))
    assert all(s.count == len(shards) and s.test_ids is None for s in shards)
    if len(shards) == 1:
        assert shards == (Shard(0, 1),)  # whole, as unsharded
        return
    # Listed or not (a build tag, a test added since): each name runs in one shard only.
    for name in names | set(unlisted):
        assert sum(runs(s, name) for s in shards) == 1, name
    for shard in shards[1:]:  # never an empty shard
        assert any(runs(shard, n) for n in names)
    # Every shard runs the command's packages, so a name runs in each package it is in.
    assert all(s.args is not None and s.args[3:] == ("./...",) for s in shards)
    # Stable: the same listing in another order gives the same plan.
    backwards = GoListing(listing.test_ids[::-1], listing.packages[::-1])
    assert split_go("s", COMMAND, count, backwards, (1, 26)).plan == split.plan


def test_a_listed_name_goes_where_its_hash_puts_it() -> None:
    names = [f"Test{n:02d}" for n in range(20)]
    split = split_go("s", COMMAND, 4, listing_of({"x/a": names}), (1, 26))
    assert len(split.plan.shards) == 4
    # Shards 1.. are the non-empty hash buckets in order after the first one.
    buckets = sorted({shard_of(n, 4) for n in names})
    for shard, bucket in zip(split.plan.shards[1:], buckets[1:], strict=True):
        assert {n for n in names if runs(shard, n)} == {
            n for n in names if shard_of(n, 4) == bucket
        }
    assert "split 20 listed tests (20 names, 1 packages) into 4 shards" in split.note


def test_one_name_in_two_packages_shares_a_shard() -> None:
    # Go's one -run covers every package of the command: split apart, each shard would
    # run the other's test too.
    listing = listing_of({"x/a": ["TestShared", "TestA"], "x/b": ["TestShared", "TestB"]})
    for count in (2, 3):
        shards = split_go("s", COMMAND, count, listing, (1, 26)).plan.shards
        assert sum(runs(s, "TestShared") for s in shards) == 1


def test_each_shards_args_replace_the_placeholder() -> None:
    shard = Shard(1, 2, args=("-count=1", "-run", "^(?:TestA)$", "./..."))
    assert shard_command(COMMAND, "go", shard, "/out/go.xml") == (
        "gotestsum",
        "--junitfile",
        "/out/go.xml",
        "--",
        "-count=1",
        "-run",
        "^(?:TestA)$",
        "./...",
    )


# ---------------------------------------------------------------------------
# A listing that cannot be trusted: the suite runs whole, in one shard, and says why

WHOLE = ShardPlan("s", None, (Shard(0, 1),))


@pytest.mark.parametrize(
    ("listing", "version", "why"),
    [
        ("go test -list exited with code 1: FAIL x", (1, 26), "the test listing failed (go test"),
        (listing_of({"x/a": ["TestA", "TestB"]}), (1, 19), "Go 1.19 has no -skip"),
        (listing_of({"x/a": ["TestA", "TestB"]}), None, "an unknown Go has no -skip"),
        (listing_of({}), (1, 26), "found no tests"),
        (listing_of({"x/a": ["TestA"], "x/b": ["TestA"]}), (1, 26), "1 test name listed"),
    ],
    ids=["listing-failed", "old-go", "unknown-go", "no-tests", "one-name"],
)
def test_a_listing_that_cannot_split_runs_the_suite_whole(
    listing: GoListing | str, version: tuple[int, int] | None, why: str
) -> None:
    split = split_go("s", COMMAND, 3, listing, version)
    assert split.plan == WHOLE
    assert why in split.note and "one shard" in split.note


def test_a_pattern_longer_than_one_argument_may_be_runs_the_suite_whole() -> None:
    # Linux refuses a single argument over 128 KiB: the shard would never start.
    names = [f"TestAVeryLongDescriptiveName{n:05d}" for n in range(8000)]
    split = split_go("s", COMMAND, 2, listing_of({"x/a": names}), (1, 26))
    assert split.plan == WHOLE
    assert "longer than one argument may be" in split.note


def test_a_command_without_the_placeholder_runs_the_suite_whole() -> None:
    # Each shard's -run would have nowhere to go: every shard would run every test.
    listing = listing_of({"x/a": [f"Test{n}" for n in range(9)]})
    split = split_go("s", ("go", "test", "./..."), 3, listing, (1, 26))
    assert split.plan == WHOLE
    assert "no {greenloop:select} in its command" in split.note
