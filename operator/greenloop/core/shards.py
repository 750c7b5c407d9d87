"""Which tests go where when one suite runs in several shards (docs/design.md §4.1).

Two ways to split, chosen by what greenloop knows:

- **the runner splits** (a whole-suite run: the first of a suite, ``rerun: All``, a new
  round): greenloop does not know the ids (and a whole-suite run must also run tests added
  since), so each shard is told only ``(index, count)`` and the runner splits by its own
  means: the pytest plugin keeps what :func:`split_collected` deals its index (and
  says what it collected: the same-collection rule, :class:`Collected`); Jest,
  Vitest and Playwright get ``--shard=i/n`` (:func:`shard_args`); go and maven are split
  from a listing of their tests: go in local mode by ``core/listing`` (each shard gets
  its own ``args``), both in operator mode in each pod (``core/pod_listing``); local
  mode runs a maven suite in one process even for a rerun (:func:`one_process_locally`);
- **greenloop assigns the ids** (a rerun of a selection): each shard gets its own
  selection file, balanced by the durations the previous results reported: longest first
  onto the least-loaded shard (LPT, :func:`assign`), in as many shards as shorten the run
  and never more than there are tests to run.

Pure: no I/O, no clock, no randomness; the same input gives the same plan on any machine.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from greenloop.core.runners import expand_command, rerun_unit, select_args

__all__ = [
    "COLLECTED_PROPERTY",
    "DEFAULT_DURATION",
    "MAX_SHARDS",
    "SHARD_COUNT_ENV",
    "SHARD_INDEX_ENV",
    "SHARD_START_SECONDS",
    "Collected",
    "Shard",
    "ShardPlan",
    "assign",
    "collected",
    "estimate",
    "makespan",
    "one_process_locally",
    "parse_collected",
    "plan",
    "runner_args",
    "runner_splits",
    "shard_args",
    "shard_command",
    "shard_env",
    "shard_of",
    "shards_worth_starting",
    "split_collected",
    "splits_by_flag",
]

# At most 64 shards per suite (issue 16): every shard is a pod (operator) or a process
# (local) with its own selection file, results upload and credential, and the engine waits
# for all of them; 64 keeps one suite run well inside a namespace's pod quota and the
# operator's per-run work (64 uploads, 64 Secrets) bounded, while 466 tests of 0.5-30 s
# already run in under a minute at that width. Past it, pod start-up dominates.
MAX_SHARDS = 64

# A test whose duration is unknown (never reported, or reported as 0) is estimated at the
# median of the known ones; with none known, at 1 s, so the tests spread evenly by count.
DEFAULT_DURATION = 1.0

# What one more shard costs a rerun when the suite's own runs do not tell
# (:func:`shards_worth_starting`, docs/design.md §4.1): not a pod's whole start-up (the
# 4.9 s one shard spends beyond its tests on the real node), which every shard pays side
# by side, but what starting one more beside the others adds to the wall time. Measured
# on this project's 2-core node (bench/shards.py --node, 64 tests of 0.5 s): 1 -> 4
# shards added 1.3 s (0.4 s a shard), the rerun's 1 -> 2 -> 4 shards 0.9 and 0.55 s a
# shard, 4 -> 8 shards 1.2-1.8 s a shard. 1 s: a rerun of 8 tests of 0.1 s runs in one
# shard, of 8 x 0.5 s in two, 64 x 0.5 s in five. On a cluster of nodes, where pods start
# side by side, less: the suite's own runs say so (``start_cost`` of :func:`plan`).
SHARD_START_SECONDS = 1.0

# What each shard's pod or process is told (docs/runners.md): 0-based, as Kubernetes'
# JOB_COMPLETION_INDEX of an Indexed Job.
SHARD_INDEX_ENV = "GREENLOOP_SHARD_INDEX"
SHARD_COUNT_ENV = "GREENLOOP_SHARD_COUNT"

# The runners whose own command line splits a suite: ``--shard=<i>/<n>``, 1-based.
_SHARD_FLAG_RUNNERS = frozenset({"jest", "vitest", "playwright"})
# Runners that split by GREENLOOP_SHARD_INDEX/COUNT: the pytest plugin, and a generic
# command that may read them (if it does not, every shard reports every test, which the
# merge detects: docs/design.md §4.1).
_SHARD_ENV_RUNNERS = frozenset({"pytest", "generic"})

# Runners whose whole-suite run is split from a listing of its tests: in local mode by
# core/listing (Go), in operator mode in each pod (core/pod_listing, Go and Maven).
_LISTING_RUNNERS = frozenset({"go", "maven"})

# Runners whose local shards would read each other's output (one_process_locally).
_ONE_PROCESS_LOCALLY = frozenset({"maven"})

# Two plans whose makespans differ by less than this are equally fast (float sums in a
# different order differ in the last bits).
_SAME = 1e-9


@dataclass(frozen=True, slots=True)
class Shard:
    """What one shard is told. ``index`` is 0-based, ``count`` the number of shards that
    run (``GREENLOOP_SHARD_INDEX`` / ``GREENLOOP_SHARD_COUNT``). ``test_ids``: its own
    selection (one selection file per shard); None when the runner splits the whole suite
    by ``(index, count)``. ``estimate``: the seconds its tests took last time (0 when
    unknown). ``args``: on a whole-suite run split from a listing (``core/listing``),
    the runner arguments of this shard's part, which replace ``{greenloop:select}``
    (``test_ids`` stays None: the runner still chooses, and the merge treats it as a
    runner's split)."""

    index: int
    count: int
    test_ids: tuple[str, ...] | None = None
    estimate: float = 0.0
    args: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """How one suite of a :class:`~greenloop.core.engine.RunSuites` runs. ``selected`` is
    the engine's selection for the suite (None: the whole suite), which the shards'
    selections partition; ``shards`` are those to schedule (never an empty one)."""

    suite: str
    selected: tuple[str, ...] | None
    shards: tuple[Shard, ...]

    @property
    def owner(self) -> Mapping[str, int]:
        """Test id -> the index of the shard that was given it (empty for a whole-suite
        run, where the runner chose)."""
        return {t: s.index for s in self.shards for t in s.test_ids or ()}


def shard_of(test_id: str, count: int) -> int:
    """The shard (0-based) a test belongs to when the runner splits by a hash: the first 8
    bytes of the SHA-256 of its UTF-8 id, modulo ``count``. Stable across processes,
    machines and Python versions (never ``hash()``, which is salted per process), so every
    shard's pytest session, collecting the same tests, keeps a disjoint part and together
    they keep each test exactly once."""
    if count < 1:
        raise ValueError(f"shard count must be at least 1, got {count}")
    return _digest(test_id) % count


def _digest(test_id: str) -> int:
    digest = hashlib.sha256(test_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def split_collected(groups: Mapping[str, int], count: int) -> dict[str, int]:
    """**The runner's balanced split** of a whole suite (the pytest plugin, docs/design.md
    §4.1): each group of tests that must share a shard (its key, the group's smallest node
    id -> how many tests it holds) -> its shard (0-based). The groups are taken in the
    order of the same SHA-256 :func:`shard_of` reads (ties by key), each onto the shard
    holding the fewest tests so far (ties: the lower index): every shard, collecting the
    same tests, computes the same split, and the shards' counts differ by at most the
    largest group, where the hash alone (:func:`shard_of`) left 64 tests as 9/14/20/21 in
    4 shards. Deterministic, whatever order the groups were collected in; O(g log g).

    As Jest's and Playwright's ``--shard``, it ranks the suite every shard collected, so
    a shard that collected a different suite (a test defined only where an environment
    variable says so, a parametrize id that differs per process, a module whose import
    fails in one pod only) can shift the others' parts: a test then runs twice (the merge
    never counts it as a pass: ``SelectionIgnored``) or in no shard. On a first run
    greenloop does not know such a test, so nothing else would miss it: hence **the
    same-collection rule** (:class:`Collected`): each pytest shard reports what it dealt
    from, and the merge (``shard_results``) refuses a run whose shards disagree, or that
    reported fewer tests than they all collected."""
    if count < 1:
        raise ValueError(f"shard count must be at least 1, got {count}")
    order = sorted(groups, key=lambda key: (_digest(key), key))
    loads = [(0, index) for index in range(count)]
    where: dict[str, int] = {}
    for key in order:
        load, index = heapq.heappop(loads)
        where[key] = index
        heapq.heappush(loads, (load + groups[key], index))
    return where


# The suite-level JUnit property in which a shard of a whole-suite run says what it
# collected (the same-collection rule, :class:`Collected`): ``<count>:<digest>``.
COLLECTED_PROPERTY = "greenloop.collected"
_DIGEST_HEX = 16
# A count of more digits is no suite's (and would cost a big int to read).
_MAX_COUNT_DIGITS = 10


@dataclass(frozen=True, slots=True)
class Collected:
    """**The same-collection rule** (docs/design.md §4.1): what one shard of a whole-suite
    run collected and dealt its part from (:func:`split_collected`): how many tests, and
    the first 16 hex digits of the SHA-256 of their node ids, sorted, one a line. The
    shards of one run must all report the same, and together report at least ``count``
    tests: otherwise a test may have run in no shard, which on a first run nothing else
    would notice (``shard_results.merge`` makes it a RunnerError, never Passed)."""

    count: int
    digest: str

    def describe(self) -> str:
        """The property's value: ``<count>:<digest>``."""
        return f"{self.count}:{self.digest}"


def collected(node_ids: Iterable[str]) -> Collected:
    """What a shard collected (:class:`Collected`), whatever order it collected in."""
    ids = sorted(node_ids)
    text = "\n".join(ids).encode("utf-8", "surrogatepass")
    return Collected(len(ids), hashlib.sha256(text).hexdigest()[:_DIGEST_HEX])


def parse_collected(value: str) -> Collected | None:
    """A ``greenloop.collected`` value as :func:`collected` writes it; None for anything
    else (a report that says nothing readable is not checked, as one that says nothing)."""
    count, sep, digest = value.strip().partition(":")
    if (
        not sep
        or not count.isascii()
        or not count.isdigit()
        or len(count) > _MAX_COUNT_DIGITS
        or len(digest) != _DIGEST_HEX
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        return None
    return Collected(int(count), digest)


def one_process_locally(runner: str) -> bool:
    """Whether local mode runs a suite of this runner in one process whatever its
    ``shards``: Maven's shards of one project would share its ``target/`` (the compiled
    classes, and Surefire's reports, whose folder no property moves), so each would read
    the others' reports as its own and none would count."""
    return runner in _ONE_PROCESS_LOCALLY


def runner_splits(runner: str) -> bool:
    """Whether a whole-suite run of this runner can be split across shards (Go and
    Maven from a listing of their tests, when their command lets them:
    ``shard_results.suite_plan``)."""
    return (
        runner in _SHARD_FLAG_RUNNERS or runner in _SHARD_ENV_RUNNERS or runner in _LISTING_RUNNERS
    )


def splits_by_flag(runner: str) -> bool:
    """Whether a whole-suite shard of this runner is told its part by a ``--shard``
    argument (:func:`shard_args`) rather than by the two variables."""
    return runner in _SHARD_FLAG_RUNNERS


def shard_args(runner: str, index: int, count: int) -> tuple[str, ...]:
    """The runner's own arguments that run shard ``index`` (0-based) of ``count`` of the
    whole suite. Jest (28+), Vitest and Playwright number shards from 1, so greenloop's
    index 0 is their ``--shard=1/<count>``. pytest and generic runners read
    ``GREENLOOP_SHARD_INDEX`` / ``GREENLOOP_SHARD_COUNT`` instead (no arguments), and one
    shard needs none."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in 0..{count - 1}")
    if count == 1 or runner not in _SHARD_FLAG_RUNNERS:
        return ()
    return (f"--shard={index + 1}/{count}",)


def runner_args(runner: str, shard: Shard) -> tuple[str, ...]:
    """What replaces the command's ``{greenloop:select}`` for this shard: its selection's
    arguments when greenloop assigned ids (never ``--shard`` as well: the selection is
    already this shard's part), else the runner's own split."""
    if shard.test_ids is not None:
        return select_args(runner, shard.test_ids)
    if shard.args is not None:
        return shard.args
    return shard_args(runner, shard.index, shard.count)


def shard_command(
    command: Sequence[str], runner: str, shard: Shard, junit_path: str
) -> tuple[str, ...]:
    """The suite's command for this shard, placeholders filled in: its selection where
    ``{greenloop:select}`` stands when greenloop assigned ids; on a whole-suite run the
    command as unsharded, with the runner's own ``--shard=i/n`` (Jest, Vitest,
    Playwright) last, where those runners take it whatever came before."""
    if shard.test_ids is not None:
        return expand_command(command, select_args(runner, shard.test_ids), junit_path)
    if shard.args is not None:
        return expand_command(command, shard.args, junit_path)
    whole = expand_command(command, None, junit_path)
    return (*whole, *shard_args(runner, shard.index, shard.count))


def shard_env(shard: Shard) -> Mapping[str, str]:
    """The two variables every shard's pod or process gets (docs/runners.md)."""
    return {SHARD_INDEX_ENV: str(shard.index), SHARD_COUNT_ENV: str(shard.count)}


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"shards must be 1..{MAX_SHARDS}, got {count}")


def _usable(seconds: float) -> bool:
    return math.isfinite(seconds) and seconds > 0


def estimate(test_ids: Sequence[str], durations: Mapping[str, float]) -> dict[str, float]:
    """Each test's expected seconds: what it reported last time, else the median of the
    durations known, else :data:`DEFAULT_DURATION`. A duration of 0, negative or not
    finite counts as unknown (JUnit writers put ``time="0"`` for "not measured")."""
    known = [d for d in durations.values() if _usable(d)]
    fallback = statistics.median(known) if known else DEFAULT_DURATION
    out: dict[str, float] = {}
    for test_id in test_ids:
        seconds = durations.get(test_id, 0.0)
        out[test_id] = seconds if _usable(seconds) else fallback
    return out


def _groups(
    test_ids: Sequence[str], depends_on: Mapping[str, Sequence[str]], runner: str
) -> list[tuple[str, ...]]:
    """The tests that must share a shard: each test with the selected tests it depends on
    (transitively), so a dependent still sees its dependency's outcome, and with the tests
    its runner cannot rerun apart from it (``runners.rerun_unit``: a Go test's subtests,
    and Go tests of one name in several packages, which one ``-run`` selects together).
    Union-find over the selection, each group's ids sorted."""
    parent = {t: t for t in test_ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(x: str, y: str) -> None:
        a, b = find(x), find(y)
        if a != b:
            parent[max(a, b)] = min(a, b)

    units: dict[str, str] = {}
    for test_id in test_ids:
        union(test_id, units.setdefault(rerun_unit(runner, test_id), test_id))
        if runner == "go":
            # Go's one -run covers every package of the shard's selection: a name
            # selected in two packages, apart, would run in both shards.
            top = rerun_unit(runner, test_id).split("::", 1)[-1]
            union(test_id, units.setdefault(f"go-name::{top}", test_id))
        for dependency in depends_on.get(test_id, ()):
            if dependency in parent:
                union(test_id, dependency)
    members: dict[str, list[str]] = {}
    for test_id in test_ids:
        members.setdefault(find(test_id), []).append(test_id)
    return [tuple(sorted(m)) for m in members.values()]


def _lpt(jobs: Sequence[tuple[float, tuple[str, ...]]], count: int) -> list[list[int]]:
    """Longest processing time first: each job (already sorted longest first, ties by id)
    onto the least-loaded shard; ties by fewer jobs, then the lower index. Returns the job
    positions per shard."""
    heap = [(0.0, 0, i) for i in range(count)]
    placed: list[list[int]] = [[] for _ in range(count)]
    for position, (seconds, _) in enumerate(jobs):
        load, n, index = heapq.heappop(heap)
        placed[index].append(position)
        heapq.heappush(heap, (load + seconds, n + 1, index))
    return placed


def _load(jobs: Sequence[tuple[float, tuple[str, ...]]], positions: Sequence[int]) -> float:
    return math.fsum(jobs[p][0] for p in positions)


def makespan(shards: Sequence[Shard]) -> float:
    """How long the slowest shard runs, by the estimates."""
    return max((s.estimate for s in shards), default=0.0)


def shards_worth_starting(
    jobs: Sequence[tuple[float, tuple[str, ...]]], count: int, start_cost: float
) -> list[list[int]]:
    """**Shards worth starting** (docs/design.md §4.1): of 1..``count`` shards, the width
    k whose predicted wall time, LPT's makespan on k shards plus ``(k - 1) * start_cost``
    (each shard past the first starts a pod or process the others wait beside), is the
    least; the fewest shards on a tie. With ``start_cost`` 0 it is the fewest shards that
    give the shortest LPT makespan. Returns LPT's placement on that width.

    Linear-ish: each width's lower bound ``max(longest, total / k) + (k - 1) * start_cost``
    is cheap, and LPT (O(n log k)) runs only for the widths whose bound could still win,
    tried best bound first, so a plan of 5,000 tests into 64 shards runs LPT a few times,
    never 64."""
    widest = min(count, len(jobs))
    longest = max((job[0] for job in jobs), default=0.0)
    total = math.fsum(job[0] for job in jobs)

    def bound(k: int) -> float:
        return max(longest, total / k) + (k - 1) * start_cost

    best_cost, best_width, best_placed = math.inf, 0, [list(range(len(jobs)))]
    for width in sorted(range(1, widest + 1), key=lambda k: (bound(k), k)):
        if not best_width:  # the best bound: always tried
            best_placed = _lpt(jobs, width)
            best_width = width
            best_cost = max(_load(jobs, p) for p in best_placed) + (width - 1) * start_cost
            continue
        slack = _SAME * max(1.0, best_cost)
        if bound(width) > best_cost + slack:
            break  # every width left has a bound at least this high
        if width > best_width and bound(width) >= best_cost - slack:
            continue  # at best a tie, and a tie goes to fewer shards
        placed = _lpt(jobs, width)
        cost = max(_load(jobs, p) for p in placed) + (width - 1) * start_cost
        if cost < best_cost - slack or (cost <= best_cost + slack and width < best_width):
            best_cost, best_width, best_placed = cost, width, placed
    return best_placed


def assign(
    test_ids: Sequence[str],
    count: int,
    durations: Mapping[str, float] | None = None,
    depends_on: Mapping[str, Sequence[str]] | None = None,
    runner: str = "generic",
    start_cost: float = 0.0,
) -> tuple[Shard, ...]:
    """Split ``test_ids`` across at most ``count`` shards by duration (LPT, within 4/3 of
    the optimal makespan on the width chosen), in as many shards as are worth starting
    (:func:`shards_worth_starting`: the least makespan plus ``start_cost`` seconds per
    shard past the first; never more than the groups of tests that must share a shard:
    linked by ``depends_on`` or one rerun unit of ``runner``; never an empty shard).
    Each shard's ids are sorted; the shards are numbered 0.. in order. Deterministic:
    ties go by test id and shard index."""
    _check_count(count)
    if not (math.isfinite(start_cost) and start_cost >= 0):
        raise ValueError(f"a shard's start cost must be a finite number >= 0, got {start_cost}")
    ids = list(dict.fromkeys(test_ids))
    if not ids:
        return ()
    seconds = estimate(ids, durations or {})
    jobs = sorted(
        ((math.fsum(seconds[t] for t in g), g) for g in _groups(ids, depends_on or {}, runner)),
        key=lambda job: (-job[0], job[1]),
    )
    shards = [p for p in shards_worth_starting(jobs, count, start_cost) if p]
    return tuple(
        Shard(
            index=i,
            count=len(shards),
            test_ids=tuple(sorted(t for p in positions for t in jobs[p][1])),
            estimate=_load(jobs, positions),
        )
        for i, positions in enumerate(shards)
    )


def plan(
    suite: str,
    selected: Sequence[str] | None,
    count: int,
    *,
    runner: str = "generic",
    durations: Mapping[str, float] | None = None,
    depends_on: Mapping[str, Sequence[str]] | None = None,
    known_tests: int | None = None,
    start_cost: float = 0.0,
) -> ShardPlan:
    """The shards for one suite of a batch. ``selected`` is the engine's selection (None:
    the whole suite); ``count`` the suite's ``shards``; ``known_tests`` how many tests the
    suite reported last time (a whole-suite run then uses no more shards than that);
    ``start_cost`` what each shard past the first costs a selection's run
    (:func:`shards_worth_starting`).

    A whole-suite run is split by the runner (``(index, count)``, no ids) if it can split,
    else runs in one shard; a selection is split by :func:`assign`. An empty selection
    schedules no shard (the merge of no shards is an empty, complete result)."""
    _check_count(count)
    if selected is None:
        width = count if runner_splits(runner) else 1
        if known_tests is not None:
            width = max(1, min(width, known_tests))
        return ShardPlan(suite, None, tuple(Shard(i, width) for i in range(width)))
    chosen = tuple(dict.fromkeys(selected))
    shards = assign(chosen, count, durations, depends_on, runner, start_cost)
    return ShardPlan(suite, chosen, shards)
