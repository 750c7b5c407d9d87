"""Catch a local run's mistakes before iteration 1: a suite command that is not on the PATH
it will run with, a workingDir that does not exist, a redeploy command that cannot start.

Each would otherwise be a RunnerError or a failed redeploy minutes into a run; here it is
an error that names the field, like the spec's own checks (``greenloop validate`` and
``greenloop run`` exit 2)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from greenloop.core import runners
from greenloop.core.model import StagingValidation, Suite
from greenloop.core.schema import FieldError
from greenloop.local.suites import child_env

__all__ = ["base_dir", "check"]


def base_dir(obj: StagingValidation) -> Path:
    """The folder a spec's relative paths start from: its file's (as LocalRun does)."""
    return Path(obj.source).resolve().parent if obj.source else Path.cwd()


def check(obj: StagingValidation, prefix: str = "") -> list[FieldError]:
    """Every problem found, each naming its field (``spec.suites[0].command[0]``)."""
    base = base_dir(obj)
    errors: list[FieldError] = []
    for index, suite in enumerate(obj.spec.suites):
        where = f"{prefix}spec.suites[{index}]"
        cwd = base / suite.working_dir
        if not cwd.is_dir():
            what = "is not a directory" if cwd.exists() else "no such directory"
            errors.append(
                FieldError(
                    f"{where}.workingDir", f"{suite.working_dir!r}: {what} ({cwd.resolve()})"
                )
            )
            continue
        problem = _unresolvable(suite.command, cwd, _suite_path(suite))
        if problem:
            errors.append(FieldError(f"{where}.command[0]", problem))
    command = obj.spec.target.command
    if command:
        problem = _unresolvable(command, base, child_env().get("PATH", ""))
        if problem:
            errors.append(FieldError(f"{prefix}spec.target.command[0]", problem))
    return errors


def _suite_path(suite: Suite) -> str:
    path = child_env().get("PATH", "")
    for var in suite.env:
        if var.name == "PATH":
            path = var.value
    return path


def _unresolvable(command: Sequence[str], cwd: Path, path: str) -> str | None:
    """Why ``command[0]`` cannot be started from ``cwd`` with ``PATH=path``, or None."""
    exe = command[0]
    if runners.uses_placeholder(exe) or runners.JUNIT_PLACEHOLDER in exe:
        return None
    if "/" in exe:
        target = cwd / exe
        if not target.exists():
            return f"{exe!r}: no such file (relative paths start at {cwd.resolve()})"
        if target.is_dir():
            return f"{exe!r} is a directory, not a command"
        # A file without its x bit is left to the run, which says so as a RunnerError or
        # RedeployFailed: permissions may be fixed by the time it starts.
        return None
    if shutil.which(exe, path=path) is None:
        return (
            f"{exe!r} not found on PATH (suites run with greenloop's Python folder first, "
            "then your PATH); install it, or give its path"
        )
    return None
