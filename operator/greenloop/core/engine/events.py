"""What the shells and the engine say to each other: the phases and reasons a round
reports, the events the shells send (one :class:`SuiteFinished` per suite of a batch,
:class:`RedeployStarted`, :class:`RedeployDone`) and the actions they carry out
(:class:`RunSuites`, :class:`Redeploy`, :class:`AwaitApproval`, :class:`Finish`).
docs/design.md §6."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from greenloop.core.fingerprint import Fingerprint
from greenloop.core.model import FailureClass, TestResult
from greenloop.core.shards import Collected


class Phase(StrEnum):
    PENDING = "Pending"
    TESTING = "Testing"
    WAITING_APPROVAL = "WaitingApproval"  # a redeploy is decided; a person must approve it
    REDEPLOYING = "Redeploying"
    PASSED = "Passed"
    STALLED = "Stalled"


class Reason(StrEnum):
    """Why a round ended (or what it is doing). Each failure class is also a reason: the
    class a person must look at when the round stalls on it."""

    GOAL_MET = "GoalMet"
    RUNNING_TESTS = "RunningTests"
    REDEPLOYING = "Redeploying"
    RETRYING = "RetryingFailedTests"
    REDEPLOY_INEFFECTIVE = "RedeployIneffective"
    REDEPLOY_FAILED = "RedeployFailed"
    EXPECTED_TESTS_MISSING = "ExpectedTestsMissing"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    NO_TESTS = "NoTestsReported"
    NOTHING_PASSED = "NothingPassed"
    SELECTION_IGNORED = "SelectionIgnored"
    TARGET_CHANGED = "TargetChanged"  # someone else changed a target: a new round
    INTERRUPTED = "Interrupted"
    INTERNAL_ERROR = "InternalError"
    INVALID_STATE = "InvalidState"  # a stored state that cannot be this spec's round
    TOO_MANY_TESTS = "TooManyTests"  # more tests than an object's state holds (budget)
    STATUS_REJECTED = "StatusRejected"  # the API server refused the status for good
    WAITING_APPROVAL = "WaitingApproval"
    # Why a round after the first started (State.round_reason).
    SPEC_CHANGED = "SpecChanged"
    RERUN_REQUESTED = "RerunRequested"
    REVALIDATING = "Revalidating"
    # The failure classes, as stall reasons.
    DEPENDENT = FailureClass.DEPENDENT.value
    TEST_CODE_ERROR = FailureClass.TEST_CODE_ERROR.value
    AUTH_ERROR = FailureClass.AUTH_ERROR.value
    SERVICE_UNAVAILABLE = FailureClass.SERVICE_UNAVAILABLE.value
    CONNECTION_ERROR = FailureClass.CONNECTION_ERROR.value
    TIMEOUT = FailureClass.TIMEOUT.value
    SERVER_ERROR = FailureClass.SERVER_ERROR.value
    ASSERTION = FailureClass.ASSERTION.value
    UNKNOWN = FailureClass.UNKNOWN.value
    NOT_RERUN = FailureClass.NOT_RERUN.value
    RUNNER_ERROR = FailureClass.RUNNER_ERROR.value


class ActionKind(StrEnum):
    RUN = "Run"
    REDEPLOY = "Redeploy"
    RERUN = "Rerun"  # a rerun without redeploy: flake retry or runner-error retry
    DONE = "Done"
    STALL = "Stall"


# ---------------------------------------------------------------------------
# Events the shells report


@dataclass(frozen=True, slots=True)
class SuiteRun:
    """What one suite process/Job produced. ``error`` is set when it produced no
    usable results (timeout, crash, missing or unreadable XML): a RunnerError.
    ``permanent`` says the cause cannot change on a rerun (command not found, no such
    directory, permission denied): the round stops without the retry.

    A sharded suite (docs/design.md §4.1) is merged into one SuiteRun by
    :mod:`greenloop.core.shard_results`. When some of its shards produced results and
    others none, ``tests`` holds the results and ``shard_error`` says which shards failed;
    ``unrun`` lists the ids those shards were given (empty on a whole-suite run, where the
    runner chose): each is a RunnerError, never passed. ``split_ignored``: on a
    whole-suite run, the tests more than one shard reported (a runner that ignored
    GREENLOOP_SHARD_INDEX/COUNT): NotRerun and a selection miss, as for a rerun that
    ignored its selection. ``shard_lines``: one line per shard for the report (duration,
    tests, pod or process). ``overhead``: how long the run took beyond its longest shard's
    tests (``shard_results.overhead_seen``; None when its shards' times do not tell) and
    ``width`` the shards it ran in (0: not sharded), from which the suite's next reruns
    learn what one more shard costs (``shard_results.start_cost``). ``collected``: what
    one shard's runner said it collected (the same-collection rule, ``shards.Collected``),
    which the shard merge compares; the engine does not read it."""

    suite: str
    tests: tuple[TestResult, ...] = ()
    error: str | None = None
    exit_code: int | None = None
    started: float = 0.0
    finished: float = 0.0
    selected: tuple[str, ...] | None = None
    permanent: bool = False
    shard_error: str | None = None
    unrun: tuple[str, ...] = ()
    split_ignored: tuple[str, ...] = ()
    shard_lines: tuple[str, ...] = ()
    overhead: float | None = None
    width: int = 0
    collected: Collected | None = None


@dataclass(frozen=True, slots=True)
class SuiteFinished:
    """One suite of the batch in flight is done. ``action_id`` is the id of the
    :class:`RunSuites` it answers; ``observed`` is what the target showed meanwhile
    (health answers, unavailable replicas, warning events): the why-chain's evidence.
    ``fingerprint``: the targets' fingerprint seen when the results were read (None: the
    shell has none, as in local mode)."""

    action_id: str
    run: SuiteRun
    observed: tuple[str, ...] = ()
    fingerprint: Fingerprint | None = None


@dataclass(frozen=True, slots=True)
class RedeployStarted:
    """The shell has triggered the redeploy (written the rollout token, run the command,
    called the webhook); from now on a repeated :class:`Redeploy` says ``started``."""

    action_id: str


@dataclass(frozen=True, slots=True)
class RedeployDone:
    """``fingerprint``: the targets' fingerprint seen after greenloop's own rollout, the
    round's new baseline (None: not observed)."""

    ok: bool
    message: str
    notes: tuple[str, ...] = ()
    action_id: str | None = None  # None: the redeploy in flight, whatever its id
    fingerprint: Fingerprint | None = None


# ---------------------------------------------------------------------------
# Actions the shells carry out. Every action has an ``id`` derived from (round,
# iteration, step): a restarted shell compares it with what it already did.


@dataclass(frozen=True, slots=True)
class SuiteSelection:
    suite: str
    test_ids: tuple[str, ...] | None = None  # None: the whole suite


@dataclass(frozen=True, slots=True)
class RunSuites:
    """Run these suites (those of the batch not yet reported) and send one
    :class:`SuiteFinished` for each."""

    id: str
    iteration: int
    suites: tuple[SuiteSelection, ...]


@dataclass(frozen=True, slots=True)
class Redeploy:
    """Redeploy the target. ``token`` is what the operator writes into each workload's
    pod template (so writing it twice is one rollout) and sends in the webhook payload.
    ``started``: the shell already triggered it before a restart; wait for the rollout
    and health only, then send :class:`RedeployDone`."""

    id: str
    iteration: int
    reason: str
    token: str
    started: bool = False


@dataclass(frozen=True, slots=True)
class AwaitApproval:
    """A redeploy is decided and ``spec.policy.redeploy`` is RequireApproval: start
    nothing; wait until a person hands ``token`` back (:func:`on_approved`). The token is
    the id the :class:`Redeploy` will have, so the rollout token is the approved one."""

    id: str
    iteration: int
    reason: str
    token: str


@dataclass(frozen=True, slots=True)
class Finish:
    id: str
    phase: Phase
    reason: Reason
    message: str


Action = RunSuites | Redeploy | AwaitApproval | Finish


def action_id(round_: int, iteration: int, step: int) -> str:
    """``r<round>-i<iteration>-s<step>``: safe as a label value, an annotation value and in
    a Kubernetes name."""
    return f"r{round_}-i{iteration}-s{step}"
