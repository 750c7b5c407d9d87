"""The pure decision: (spec, state, event, now) -> (state, next action).

No I/O and no clock reads: both shells (the local runner and the operator) observe the
world, feed the engine the same events and carry out the action it returns. Everything
the engine needs to remember lives in ``State``, which serializes to plain data
(:mod:`greenloop.core.snapshot`) so the operator can keep it in the object and survive a
restart. The API is described in docs/design.md §6; the rules in §1 and §7.

Events: :class:`SuiteFinished` (one per suite of a batch, in any order),
:class:`RedeployStarted`, :class:`RedeployDone`; transitions :func:`begin`,
:func:`on_suite`, :func:`on_redeploy_started`, :func:`on_redeploy`,
:func:`on_spec_changed`, :func:`on_target_observed`, :func:`on_rerun`, :func:`on_approved`,
:func:`on_tick`, :func:`on_invalid_state`, :func:`on_too_many_tests`,
:func:`on_status_rejected`, :func:`interrupt`, :func:`internal_error`; :func:`current_action` to
resume from a state alone and :func:`wake_at` for when time alone changes something. An
event whose ``action_id`` is not
the action in flight (a duplicate, or a stale one from before a restart) changes nothing.

The package, one concern a file (each imports only the ones above it):

- ``events``: phases, reasons, the events the shells send and the actions they carry out;
- ``state``: the state, its records, and the queries status and report share;
- ``history``: the iteration record: open, note, close, finish; the storage bounds;
- ``verdict``: the verdict rule (§7): how a rerun lines up with its selection;
- ``merge``: one suite's results into state;
- ``rules``: the decision rules of §1, one named function each;
- ``decide``: the decision after a batch, trying those rules in order;
- ``rounds``: what starts a round (spec, rerun annotation, target change, time);
- ``transitions``: a suite's results, the redeploy, the approval, the shells' ends.

Everything a caller uses is imported from here, ``greenloop.core.engine``.
"""

from __future__ import annotations

# The words of the API, what the shells send, and what they carry out.
from greenloop.core.engine.events import ActionKind, Phase, Reason

# isort: split
from greenloop.core.engine.events import RedeployDone, RedeployStarted, SuiteFinished, SuiteRun

# isort: split
from greenloop.core.engine.events import (
    Action,
    AwaitApproval,
    Finish,
    Redeploy,
    RunSuites,
    SuiteSelection,
    action_id,
)

# isort: split
from greenloop.core.engine.history import _bounded as _bounded  # the notes' bound, for tests
from greenloop.core.engine.rounds import (
    begin,
    on_invalid_state,
    on_rerun,
    on_spec_changed,
    on_status_rejected,
    on_target_observed,
    on_tick,
    on_too_many_tests,
    wake_at,
)
from greenloop.core.engine.state import (
    MAX_EVIDENCE,
    MAX_HISTORY,
    MAX_NOTE,
    MAX_NOTES,
    Counts,
    Decision,
    FirstFailure,
    FlakyTest,
    IterationRecord,
    State,
    TestRecord,
    counts,
    current_action,
    durations,
    effective_class,
    failing,
    root_of,
    roots_of,
    signature,
    signature_digest,
    tally,
    tally_results,
)
from greenloop.core.engine.transitions import (
    internal_error,
    interrupt,
    on_approved,
    on_redeploy,
    on_redeploy_started,
    on_suite,
)
from greenloop.core.engine.verdict import LineUp, line_up

__all__ = [
    "MAX_EVIDENCE",
    "MAX_HISTORY",
    "MAX_NOTE",
    "MAX_NOTES",
    "Action",
    "ActionKind",
    "AwaitApproval",
    "Counts",
    "Decision",
    "Finish",
    "FirstFailure",
    "FlakyTest",
    "IterationRecord",
    "LineUp",
    "Phase",
    "Reason",
    "Redeploy",
    "RedeployDone",
    "RedeployStarted",
    "RunSuites",
    "State",
    "SuiteFinished",
    "SuiteRun",
    "SuiteSelection",
    "TestRecord",
    "action_id",
    "begin",
    "counts",
    "current_action",
    "durations",
    "effective_class",
    "failing",
    "internal_error",
    "interrupt",
    "line_up",
    "on_approved",
    "on_invalid_state",
    "on_redeploy",
    "on_redeploy_started",
    "on_rerun",
    "on_spec_changed",
    "on_status_rejected",
    "on_suite",
    "on_target_observed",
    "on_tick",
    "on_too_many_tests",
    "root_of",
    "roots_of",
    "signature",
    "signature_digest",
    "tally",
    "tally_results",
    "wake_at",
]
