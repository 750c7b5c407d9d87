"""Exit codes of the command line, and the one rule from a round's end to its code."""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for the rule below: `greenloop junit` and `validate` need the codes, and the
    # engine took a third of their start-up.
    from greenloop.core.engine import Phase, Reason

__all__ = ["ExitCode", "exit_code"]


class ExitCode(IntEnum):
    OK = 0  # the goal is met (phase Passed); validate: valid; junit: no failures
    STALLED = 1  # a person must act (the report says why), or the budget ran out
    USAGE = 2  # the spec or the command line is invalid (the message names the field)
    INTERNAL_ERROR = 3  # greenloop itself failed: Stalled/InternalError, report written
    INTERRUPTED = 130  # Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)


def exit_code(phase: Phase, reason: Reason | None) -> ExitCode:
    from greenloop.core.engine import Phase, Reason

    if phase is Phase.PASSED:
        return ExitCode.OK
    if reason is Reason.INTERRUPTED:
        return ExitCode.INTERRUPTED
    if reason is Reason.INTERNAL_ERROR:
        return ExitCode.INTERNAL_ERROR
    return ExitCode.STALLED
