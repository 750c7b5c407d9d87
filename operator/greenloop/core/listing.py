"""A whole-suite run of a Go suite split across shards from a listing of its tests
(docs/design.md §4.1, issue 16).

``go test`` cannot split a suite by itself, but it can list it: ``go test -list '.*'``
prints each package's test names, then ``ok  <import path>``. From that listing greenloop
gives each shard its own ``-run``, as a rerun does, with one rule that keeps the verdict
honest whatever the listing missed (a test in a file behind a build tag the listing was
not given, a test added since):

- **the split is by top-level test name**, :func:`~greenloop.core.shards.shard_of` of the
  name: Go takes one ``-run`` for every package of the command, so two tests of one name
  in two packages must share a shard, or each shard would run the other's too;
- **every shard runs every package** of the command's own default (``./...``), and
  **shard 0 runs everything the others were not given** (``-skip`` of their names, Go
  1.20+), so a test the listing did not see still runs, once, in shard 0.

A command without ``{greenloop:select}`` (nowhere for a shard's ``-run``), a listing
that failed, that found no test, or a Go older than 1.20 (no ``-skip``) gives no split:
the suite runs whole in one shard, as before, and the shell says why.

Maven is not split from a listing in local mode: shards of one project share its
``target/`` (the compiled classes, and Surefire's reports, whose folder no property
moves), so each shard would read the others' reports as its own. In operator mode each
pod has its own, and Go and Maven are split from a listing made in the pod
(``core/pod_listing``).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from greenloop.core.runners import SELECT_PLACEHOLDER, regex_literal, uses_placeholder
from greenloop.core.shards import Shard, ShardPlan, shard_of
from greenloop.core.words import plural

__all__ = [
    "GO_DEFAULT_PACKAGES",
    "GO_MIN_SKIP",
    "MAX_PATTERN_CHARS",
    "GoListing",
    "ListedSplit",
    "go_list_args",
    "go_packages",
    "go_version",
    "lists_tests",
    "parse_go_listing",
    "split_go",
    "takes_args",
]

# What a Go suite runs when its placeholder names no packages: gotestsum's own default.
GO_DEFAULT_PACKAGES = ("./...",)
# -skip (run all but these) came with Go 1.20: shard 0 needs it to run what no listing saw.
GO_MIN_SKIP = (1, 20)

# What go test -list prints for a test it would run: tests, fuzz targets and examples
# (-run selects all three). Benchmarks run only with -bench, which -run does not govern.
# Linux refuses one argument over 128 KiB (MAX_ARG_STRLEN): a shard whose -run or -skip
# pattern is longer could never start, so such a suite is not split.
MAX_PATTERN_CHARS = 100_000

_RUN_NAME = re.compile(r"(?:Test|Fuzz|Example)\w*")
_VERSION = re.compile(r"\bgo(\d+)\.(\d+)")


def lists_tests(runner: str) -> bool:
    """Whether a whole-suite run of this runner is split from a listing of its tests."""
    return runner == "go"


@dataclass(frozen=True, slots=True)
class GoListing:
    """The tests a listing found, as gotestsum's ids (``import/path::TestName``), in
    the order listed; ``packages`` every package it reported (with tests or without)."""

    test_ids: tuple[str, ...]
    packages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListedSplit:
    """The plan for a whole-suite run, and the progress line that says how it was split
    or why it was not."""

    plan: ShardPlan
    note: str


def go_packages(command: Sequence[str]) -> tuple[str, ...]:
    """The words of the command's ``{greenloop:select|ARGS}`` default (packages, and any
    flags given there), empty when it has none."""
    for arg in command:
        if uses_placeholder(arg) and arg != SELECT_PLACEHOLDER:
            return tuple(arg[arg.index("|") + 1 : -1].split())
    return ()


def takes_args(command: Sequence[str]) -> bool:
    """Whether the command has a ``{greenloop:select}`` for each shard's arguments
    (without it every shard would run the whole suite)."""
    return any(uses_placeholder(arg) for arg in command)


def go_list_args(command: Sequence[str]) -> tuple[str, ...]:
    """The listing's command line, run in the suite's workingDir."""
    return ("go", "test", "-list", ".*", *(go_packages(command) or GO_DEFAULT_PACKAGES))


def go_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from ``go version``'s output, None when it does not say."""
    found = _VERSION.search(text)
    return (int(found[1]), int(found[2])) if found else None


def parse_go_listing(text: str) -> GoListing | str:
    """The tests of ``go test -list '.*'``'s output, or why it cannot be trusted. Each
    package's names come before its ``ok  <import path>`` line; ``?  <path>  [no test
    files]`` is a package without tests; a ``FAIL`` line (a package that does not build,
    a TestMain that exits) makes the listing unusable. Other output (a package's init
    printing) is not a test name and is ignored."""
    ids: list[str] = []
    packages: list[str] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split()
        if not words:
            continue
        if words[0] == "FAIL" or words[0].startswith("---"):
            return f"it reported a failure: {line[:200]}"
        if words[0] in ("ok", "?") and len(words) >= 2:
            packages.append(words[1])
            ids.extend(f"{words[1]}::{name}" for name in dict.fromkeys(pending))
            pending = []
        elif len(words) == 1 and _RUN_NAME.fullmatch(words[0]):
            pending.append(words[0])
    if pending:
        return f"{len(pending)} test names with no package line after them"
    return GoListing(tuple(dict.fromkeys(ids)), tuple(dict.fromkeys(packages)))


def _alternation(names: Sequence[str]) -> str:
    return "^(?:" + "|".join(regex_literal(n) for n in names) + ")$"


def split_go(
    suite: str,
    command: Sequence[str],
    count: int,
    listing: GoListing | str,
    version: tuple[int, int] | None,
) -> ListedSplit:
    """The shards of a whole-suite Go run from its listing: at most ``count``, never more
    than the distinct names listed, never an empty one. Each shard's ``args`` replace the
    command's placeholder; shard 0 runs all but the other shards' names. Without a usable
    listing, or without ``-skip``, one shard runs the whole suite."""
    whole = ShardPlan(suite, None, (Shard(0, 1),))
    if not takes_args(command):
        return ListedSplit(
            whole,
            f"not split: no {SELECT_PLACEHOLDER} in its command for each shard's -run; one shard",
        )
    if isinstance(listing, str):
        return ListedSplit(whole, f"not split: the test listing failed ({listing}); one shard")
    if version is None or version < GO_MIN_SKIP:
        have = "an unknown Go" if version is None else f"Go {version[0]}.{version[1]}"
        return ListedSplit(whole, f"not split: {have} has no -skip (Go 1.20+ needed); one shard")
    names = sorted({test_id.split("::", 1)[1] for test_id in listing.test_ids})
    if not names:
        return ListedSplit(whole, "not split: the test listing found no tests; one shard")
    width = min(count, len(names))
    parts: list[list[str]] = [[] for _ in range(width)]
    for name in names:
        parts[shard_of(name, width)].append(name)
    used = [p for p in parts if p]
    packages = go_packages(command)
    if len(used) == 1:
        return ListedSplit(whole, f"not split: {plural(len(names), 'test name')} listed, one shard")
    others = [n for p in used[1:] for n in p]
    longest = max(len(_alternation(p)) for p in [others, *used[1:]])
    if longest > MAX_PATTERN_CHARS:
        return ListedSplit(
            whole,
            f"not split: a shard's -run/-skip pattern of {longest} characters is longer than "
            f"one argument may be ({MAX_PATTERN_CHARS}); one shard",
        )
    shards = [Shard(0, len(used), args=("-count=1", "-skip", _alternation(others), *packages))]
    shards += [
        Shard(i, len(used), args=("-count=1", "-run", _alternation(p), *packages))
        for i, p in enumerate(used[1:], start=1)
    ]
    sizes = ", ".join(str(len(p)) for p in used)
    note = (
        f"split {len(listing.test_ids)} listed tests ({len(names)} names, "
        f"{len(listing.packages)} packages) into {len(used)} shards by name: {sizes}; "
        "shard 1 also runs any test the listing did not show"
    )
    return ListedSplit(ShardPlan(suite, None, tuple(shards)), note)
