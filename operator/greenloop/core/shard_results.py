"""One suite's shard results merged into the one result the engine reads (docs/design.md
§4.1): the engine sees a :class:`~greenloop.core.engine.SuiteRun` per suite, whatever the
number of shards, so status, report and history keep their shape; the report gains a
line per shard (:class:`ShardLine`).

The verdict stays a claim (§7): a result counts only when it comes from the shard that
was given the test, once.

- **Complete** only when every scheduled shard has reported or failed (:class:`Waiting`
  until then).
- **No results from a shard** (pod killed, no upload, process crashed): a ``RunnerError``
  for that shard's tests only. The other shards' results are handed on, with
  ``SuiteRun.shard_error`` saying which shards failed and ``SuiteRun.unrun`` the ids they
  were given (on a whole-suite run the runner chose: the engine takes the suite's known
  tests nobody reported). Never Passed: retried once (those tests), then ``Stalled``.
  When no shard produced results the suite is the RunnerError, as unsharded.
- **A test reported by two shards, or by a shard not given it** (a runner that ignored
  its selection or ``GREENLOOP_SHARD_INDEX``): on a rerun its results are all dropped, so
  the engine's line-up (``engine.line_up``) finds the selected test unreported: ``NotRerun``
  and a selection miss, ``SelectionIgnored`` the second time, exactly as for an unsharded
  runner that ignores ``GREENLOOP_SELECT``. On a whole-suite run the ids go to the engine
  as ``SuiteRun.split_ignored``, which it counts the same way (NotRerun, a selection
  miss) — unless every shard reported the test failing (an error collecting it, which
  every shard meets): then it is kept once.
- **Shards that collected different suites** (the same-collection rule,
  ``shards.Collected``): on a whole-suite run each pytest shard deals its part from the
  suite it collected; when the shards' ``collected`` differ, or all agree on N but
  fewer than N distinct tests were reported, a test may have run in no shard, which on a
  first run nothing else would notice. The run is then handled as one with a shard
  without results (``SuiteRun.shard_error``: never Passed, retried once, then
  ``Stalled``). A shard that reports no ``collected`` (a generic runner, an older
  plugin, a shard without results) is not checked.
- Results for tests nobody selected pass through: the engine ignores and counts them as
  it does today.

The merged result does not depend on the order the shards' results arrived in.

Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from greenloop.core.engine import State, SuiteRun, SuiteSelection, durations
from greenloop.core.model import Suite, TestResult
from greenloop.core.pod_listing import command_blocker
from greenloop.core.shards import (
    SHARD_COUNT_ENV,
    SHARD_INDEX_ENV,
    SHARD_START_SECONDS,
    Collected,
    ShardPlan,
    plan,
)
from greenloop.core.words import plural

__all__ = [
    "MAX_NAMED",
    "MergedSuite",
    "ShardLine",
    "ShardOutcome",
    "Waiting",
    "different_collections",
    "merge",
    "overhead_seen",
    "start_cost",
    "suite_plan",
]

# A start cost learnt above this is not a start-up (noise between two runs far apart).
MAX_START_COST = 60.0

# How many shards or test ids one message names before "and N more": a message is one
# line of a note (the engine keeps 400 characters).
MAX_NAMED = 3
# A shard's own note (from its report: tenant text) is cut to this in its line.
MAX_NOTE_CHARS = 200


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    """What one shard produced, as a shell saw it: the operator from one Indexed Job
    index (its sidecar's upload, or the pod that ended without one), local mode from one
    of the suite's N processes. ``error`` is set when it produced no usable results (then
    ``tests`` is ignored); ``permanent`` when a rerun cannot change the cause. ``pod``:
    the pod's name, or a process's label in local mode, for the report; ``pod_gone``
    when that pod (the one last seen for the index, if any was) no longer exists;
    ``note``: what its report says about itself (an index that ran nothing of a split
    from a listing made in the pod says why: ``core/pod_listing``); ``collected``: what
    a shard of a whole-suite run says it collected (its report's ``greenloop.collected``,
    the same-collection rule; None: it does not say)."""

    index: int
    tests: tuple[TestResult, ...] = ()
    error: str | None = None
    permanent: bool = False
    pod: str = ""
    pod_gone: bool = False
    exit_code: int | None = None
    started: float = 0.0
    finished: float = 0.0
    note: str = ""
    collected: Collected | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """Shards of the suite that have neither reported nor failed yet."""

    suite: str
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ShardLine:
    """One shard's line in the report. ``assigned`` is None when the runner split the
    suite; ``counted`` the results that count (given to this shard and reported by it
    alone); ``stray`` results for tests given to another shard or reported twice."""

    index: int
    count: int
    pod: str
    assigned: int | None
    reported: int
    counted: int
    stray: int
    seconds: float
    error: str | None = None
    pod_gone: bool = False
    note: str = ""

    def describe(self) -> str:
        where = f"shard {self.index + 1}/{self.count}"
        if self.pod_gone:
            # A deleted pod (killed, evicted): which one, when the shell saw it.
            where += f" (pod {self.pod}, deleted)" if self.pod else " (pod deleted)"
        elif self.pod:
            where += f" ({self.pod})"
        if self.error is not None:
            return f"{where}: no results: {self.error}"
        given = "" if self.assigned is None else f" of {self.assigned} given"
        line = f"{where}: {plural(self.reported, 'test')}{given} in {self.seconds:.1f} s"
        if self.stray:
            line += f", {self.stray} not its own (ignored)"
        if self.note:
            line += f" ({self.note[:MAX_NOTE_CHARS]})"
        return line


@dataclass(frozen=True, slots=True)
class MergedSuite:
    """The suite's merged result. ``run`` is what the engine reads; ``shards`` one line
    per scheduled shard; ``unrun`` the ids given to shards that produced no results;
    ``conflicts`` the ids reported by two shards or by a shard not given them; ``note``
    one line for progress and the report ("" when the shards lined up)."""

    run: SuiteRun
    shards: tuple[ShardLine, ...]
    unrun: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    note: str = ""


def suite_plan(suite: Suite, state: State, selection: SuiteSelection) -> ShardPlan:
    """The shards one suite of a :class:`~greenloop.core.engine.RunSuites` runs in
    (docs/design.md §4.1): a whole-suite run split by the runner in ``suite.shards``
    (never more than the tests it reported last time); a selection assigned by greenloop,
    balanced by the durations the suite's previous results reported, in as many shards
    as are worth starting (each past the first costing what the suite's runs showed,
    :func:`start_cost`). Both shells call
    this with the state the action came from, so a restarted operator plans the same
    shards."""
    own = [t for t in state.tests.values() if t.suite == suite.name]
    count = suite.shards
    if selection.test_ids is None and command_blocker(suite.runner, suite.command):
        # A Go or Maven command that leaves a listing nowhere to put each shard's part
        # (core/pod_listing): the whole suite in one shard; the report says why.
        count = 1
    return plan(
        suite.name,
        selection.test_ids,
        count,
        runner=suite.runner,
        durations=durations(state, suite.name),
        depends_on={t.id: t.depends_on for t in own if t.depends_on},
        known_tests=len(own) or None,
        start_cost=start_cost(state, suite.name),
    )


def overhead_seen(outcomes: Sequence[ShardOutcome]) -> float | None:
    """**The overhead a run showed**: how long it took, first start to last end, beyond
    its longest shard's tests (the seconds its results reported) — what starting its
    shards cost, paid side by side or one after another. None when the run does not tell
    (a shard without times or results)."""
    if not outcomes or any(
        o.error is not None or o.started <= 0 or o.finished < o.started for o in outcomes
    ):
        return None
    span = max(o.finished for o in outcomes) - min(o.started for o in outcomes)
    tests = max(
        math.fsum(t.time for t in o.tests if math.isfinite(t.time) and t.time > 0) for o in outcomes
    )
    return round(max(0.0, span - tests), 2)


def start_cost(state: State, suite: str) -> float:
    """**What one more shard costs** a rerun of the suite (``shards.shards_worth_starting``):
    how much its overhead grew per shard between the last two widths it ran in
    (``State.shard_overheads``; a width's overhead mixes the start-up every shard pays
    side by side with what each more one adds, and only two widths tell them apart),
    never below 0 nor above :data:`MAX_START_COST`; else ``SHARD_START_SECONDS``."""
    seen = state.shard_overheads.get(suite, ())
    if len(seen) < 2:
        return SHARD_START_SECONDS
    (k1, o1), (k2, o2) = seen[0], seen[1]
    if k1 == k2:
        return SHARD_START_SECONDS
    return round(min(MAX_START_COST, max(0.0, (o1 - o2) / (k1 - k2))), 2)


def _named(items: Sequence[str], sep: str = ", ") -> str:
    shown = sep.join(items[:MAX_NAMED])
    more = len(items) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _outcomes_by_index(
    plan: ShardPlan, outcomes: Iterable[ShardOutcome]
) -> tuple[dict[int, ShardOutcome], tuple[int, ...]]:
    """One outcome per planned shard. Two for one index (a shell that delivered a replay)
    cannot both be believed, whichever came first: that shard failed. Outcomes for
    indexes the plan does not have are ignored."""
    seen: dict[int, list[ShardOutcome]] = {}
    planned = {s.index for s in plan.shards}
    for outcome in outcomes:
        if outcome.index in planned:
            seen.setdefault(outcome.index, []).append(outcome)
    chosen: dict[int, ShardOutcome] = {}
    for index, got in seen.items():
        if len(got) == 1:
            chosen[index] = got[0]
        else:
            pods = sorted({o.pod for o in got if o.pod})
            chosen[index] = ShardOutcome(
                index=index,
                error=f"results reported {len(got)} times for one shard; none believed",
                pod=", ".join(pods),
                started=min(o.started for o in got),
                finished=max(o.finished for o in got),
            )
    waiting = tuple(sorted(planned - chosen.keys()))
    return chosen, waiting


def _exit_code(outcomes: Sequence[ShardOutcome]) -> int | None:
    codes = [o.exit_code for o in outcomes if o.exit_code is not None]
    return next((c for c in codes if c != 0), codes[0] if codes else None)


def merge(plan: ShardPlan, outcomes: Iterable[ShardOutcome]) -> Waiting | MergedSuite:
    """The suite's one result from its shards' outcomes (in any order), or
    :class:`Waiting` while a scheduled shard has neither reported nor failed."""
    chosen, waiting = _outcomes_by_index(plan, outcomes)
    if waiting:
        return Waiting(plan.suite, waiting)
    ordered = [chosen[s.index] for s in plan.shards]
    once, conflicts = _duplicates(plan, ordered)
    tests, lines = _kept_results(plan, ordered, once, set(conflicts))
    failed = [o for o in ordered if o.error is not None]
    given = {s.index: s.test_ids or () for s in plan.shards}
    unrun = tuple(sorted(t for o in failed for t in given[o.index]))
    errors, shard_error, note = _errors_and_note(plan, lines, conflicts)
    if failed and len(failed) == len(ordered):
        errors, shard_error = [e for e in (shard_error,) if e] + errors, None
    elif (different := different_collections(plan, ordered)) is not None:
        shard_error = different if shard_error is None else f"{shard_error}; {different}"
    run = _suite_run(plan, ordered, tests, errors)
    if conflicts and plan.selected is None and run.error is None:
        run = replace(run, split_ignored=conflicts)
    if shard_error is not None and run.error is None:
        run = replace(
            run,
            shard_error=shard_error,
            unrun=unrun,
            permanent=any(o.permanent for o in failed),
        )
    if len(plan.shards) > 1 or any(s.count > 1 for s in plan.shards):
        run = replace(
            run,
            shard_lines=tuple(line.describe() for line in lines),
            overhead=overhead_seen(ordered),
            width=len(ordered),
        )
    return MergedSuite(run, lines, unrun, conflicts, note)


def different_collections(plan: ShardPlan, ordered: Sequence[ShardOutcome]) -> str | None:
    """**The same-collection rule** (``shards.Collected``): why the shards of a whole-suite
    run cannot be trusted to have run every test once (None: they can, or do not say).
    Only the shards that report ``collected`` are compared; the count is checked against
    what was reported only when every shard reported it and produced results."""
    if plan.selected is not None:
        return None  # greenloop assigned the ids: the engine's line-up checks them
    claims = {o.index: o.collected for o in ordered if o.error is None and o.collected}
    if not claims:
        return None
    if len(set(claims.values())) > 1:
        by_claim: dict[Collected, list[int]] = {}
        for index in sorted(claims):
            by_claim.setdefault(claims[index], []).append(index + 1)
        parts, counts_seen = [], set()
        for claim, shards in by_claim.items():
            noun = "shard" if len(shards) == 1 else "shards"
            part = f"{noun} {_named([str(n) for n in shards])} {plural(claim.count, 'test')}"
            if claim.count in counts_seen:
                part += " (other tests)"  # the same count as another: only the digest differs
            counts_seen.add(claim.count)
            parts.append(part)
        return (
            f"shards collected different suites: {_named(parts)}: a test may have run in no shard"
        )
    (claim,) = set(claims.values())
    if len(claims) == len(ordered):
        reported = len({r.id for o in ordered for r in o.tests})
        if reported < claim.count:
            return (
                f"shards collected {plural(claim.count, 'test')}, {reported} reported: "
                "a test ran in no shard"
            )
    return None


def _duplicates(
    plan: ShardPlan, ordered: Sequence[ShardOutcome]
) -> tuple[dict[str, int], tuple[str, ...]]:
    """(tests kept once though several shards reported them -> the shard kept, the tests
    no shard is believed on)."""
    whole = plan.selected is None
    owner: Mapping[str, int] = plan.owner
    # Which shards reported each test (a shard listing a test twice is that runner's own
    # business, as without shards: it counts once here), and whether every report of it
    # is a failure.
    reporters: dict[str, set[int]] = {}
    failing: dict[str, bool] = {}
    for outcome in ordered:
        if outcome.error is None:
            for result in outcome.tests:
                reporters.setdefault(result.id, set()).add(outcome.index)
                failing[result.id] = failing.get(result.id, True) and result.is_failure
    # On a whole-suite run every shard collects every test, so an error collecting one
    # (a module that does not import) is reported by all of them: a failure everywhere is
    # kept once, from the lowest shard. A test that passed or was skipped in two shards
    # is a runner that did not split: not believed.
    once = {t: min(by) for t, by in reporters.items() if whole and len(by) > 1 and failing[t]}
    if whole:
        conflicts = sorted(t for t, by in reporters.items() if len(by) > 1 and t not in once)
    else:
        conflicts = sorted(t for t, by in reporters.items() if t in owner and by != {owner[t]})
    return once, tuple(conflicts)


def _kept_results(
    plan: ShardPlan,
    ordered: Sequence[ShardOutcome],
    once: Mapping[str, int],
    dropped: set[str],
) -> tuple[list[TestResult], tuple[ShardLine, ...]]:
    """The results the merged suite keeps, and each shard's line for the report."""
    whole = plan.selected is None
    owner: Mapping[str, int] = plan.owner
    tests: list[TestResult] = []
    lines: list[ShardLine] = []
    for shard, outcome in zip(plan.shards, ordered, strict=True):
        results = () if outcome.error is not None else outcome.tests
        mine = [
            r for r in results if r.id not in dropped and once.get(r.id, shard.index) == shard.index
        ]
        tests.extend(mine)
        counted = sum(1 for r in mine if whole or owner.get(r.id) == shard.index)
        stray = sum(
            1 for r in results if r.id in dropped and (whole or owner.get(r.id) != shard.index)
        )
        lines.append(
            ShardLine(
                index=shard.index,
                count=shard.count,
                pod=outcome.pod,
                assigned=None if shard.test_ids is None else len(shard.test_ids),
                reported=len(results),
                counted=counted,
                stray=stray,
                seconds=max(0.0, outcome.finished - outcome.started),
                error=outcome.error,
                pod_gone=outcome.pod_gone,
                note=outcome.note if outcome.error is None else "",
            )
        )
    return tests, tuple(lines)


def _errors_and_note(
    plan: ShardPlan, lines: Sequence[ShardLine], conflicts: Sequence[str]
) -> tuple[list[str], str | None, str]:
    """Why the suite has no result (a runner that did not split), which shards produced
    none (None: every shard did), and the note a person reads about tests a shard
    reported without being given them."""
    errors: list[str] = []
    described = [line.describe() for line in lines if line.error is not None]
    shard_error = _named(described, "; ") if described else None
    note = ""
    if conflicts and plan.selected is None:
        note = (
            f"suite {plan.suite}: {plural(len(conflicts), 'test')} reported by more than one "
            f"shard ({_named(conflicts)}): the runner ignored {SHARD_INDEX_ENV} and "
            f"{SHARD_COUNT_ENV}; not counted (NotRerun); make its command split by them "
            "(docs/runners.md) or run the suite in one shard"
        )
    elif conflicts:
        note = (
            f"suite {plan.suite}: {plural(len(conflicts), 'test')} reported by a shard not "
            f"given {'it' if len(conflicts) == 1 else 'them'} ({_named(conflicts)}): the "
            "runner ignored its selection; not counted (NotRerun)"
        )
    return errors, shard_error, note


def _suite_run(
    plan: ShardPlan,
    ordered: Sequence[ShardOutcome],
    tests: Sequence[TestResult],
    errors: Sequence[str],
) -> SuiteRun:
    """The one SuiteRun the engine reads: with any error (no shard produced results, or
    a whole-suite run whose runner did not split), a RunnerError for the whole suite."""
    started = min((o.started for o in ordered), default=0.0)
    finished = max((o.finished for o in ordered), default=0.0)
    if errors:
        return SuiteRun(
            suite=plan.suite,
            error="; ".join(errors),
            permanent=any(o.permanent for o in ordered if o.error is not None),
            exit_code=_exit_code(ordered),
            started=started,
            finished=finished,
            selected=plan.selected,
        )
    return SuiteRun(
        suite=plan.suite,
        tests=tuple(tests),
        exit_code=_exit_code(ordered),
        started=started,
        finished=finished,
        selected=plan.selected,
    )
