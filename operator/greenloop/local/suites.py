"""Run one suite as a process under the runner contract (docs/design.md §4)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from greenloop.core import contract, runners, shards
from greenloop.core.engine import SuiteRun, SuiteSelection
from greenloop.core.junit import JUnitError, parse_junit
from greenloop.core.model import Suite, TestResult
from greenloop.core.shards import Collected, Shard
from greenloop.local import procs
from greenloop.local.files import JUNIT_MAX_BYTES, FileRefused, open_regular
from greenloop.local.logs import CappedLog, tail


@dataclass(frozen=True, slots=True)
class SuiteFiles:
    junit: Path
    select: Path
    log: Path


def suite_files(run_dir: Path, suite: str, shard: Shard | None = None) -> SuiteFiles:
    """Where a suite's process writes; each shard of a sharded suite has its own files
    (``<suite>.shard-<i>.xml``, ``.select``, ``.log``)."""
    stem = suite if shard is None else f"{suite}.shard-{shard.index}"
    return SuiteFiles(
        junit=run_dir / f"{stem}.xml",
        select=run_dir / f"{stem}.select",
        log=run_dir / f"{stem}.log",
    )


def shard_selection(selection: SuiteSelection, shard: Shard | None) -> SuiteSelection:
    """What one shard's process selects: its own part of a selection, or the whole suite
    (the runner splits it by GREENLOOP_SHARD_INDEX/COUNT or ``--shard``)."""
    if shard is None:
        return selection
    return SuiteSelection(selection.suite, shard.test_ids)


def child_env() -> dict[str, str]:
    """The environment for suites and redeploy commands: ours, with the folder of the
    Python running greenloop first on PATH, so `python -m pytest` finds greenloop's plugin."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def suite_env(
    suite: Suite,
    files: SuiteFiles,
    selection: SuiteSelection,
    iteration: int,
    shard: Shard | None = None,
) -> dict[str, str]:
    """Ours, without greenloop's own variables (never inherited from whoever ran it),
    and the runner contract's (core/contract.py)."""
    env = child_env()
    for name in contract.OWN_NAMES:
        env.pop(name, None)
    select = None
    if selection.test_ids is not None:
        select = contract.selected(suite.runner, str(files.select), selection.test_ids)
    place = None if shard is None else contract.ShardVars(shard.count, shard.index)
    for var in contract.suite_env(suite, iteration, str(files.junit), select, place):
        env[var.name] = var.value
    return env


def suite_command(
    suite: Suite, files: SuiteFiles, selection: SuiteSelection, shard: Shard | None = None
) -> list[str]:
    """The command with its placeholders filled in (docs/runners.md)."""
    if shard is not None:
        return list(shards.shard_command(suite.command, suite.runner, shard, str(files.junit)))
    select = None
    if selection.test_ids is not None:
        select = runners.select_args(suite.runner, selection.test_ids)
    return list(runners.expand_command(suite.command, select, str(files.junit)))


def _collect_reports(suite: Suite, cwd: Path, junit: Path, started: float) -> None:
    """A runner that writes its reports to a folder of its own (Surefire): the files it
    wrote during this run, as one document at $GREENLOOP_JUNIT_XML."""
    globs = runners.REPORT_GLOBS.get(suite.runner, ())
    if not globs or junit.exists():
        return
    found = sorted({p for g in globs for p in cwd.glob(g) if p.stat().st_mtime >= started - 1})
    if found:
        junit.write_bytes(runners.merge_reports([p.read_bytes() for p in found]))


def run_suite(
    suite: Suite,
    selection: SuiteSelection,
    *,
    iteration: int,
    base_dir: Path,
    run_dir: Path,
    verbose: bool = False,
    tick: Callable[[float], None] | None = None,
    stop_by: float | None = None,
    shard: Shard | None = None,
) -> SuiteRun:
    """Run the suite's command; return its results or, if it produced none, why.
    ``stop_by`` (epoch seconds) cuts it short when the round's deadline comes first.
    ``shard``: run one shard of a sharded suite (its own files, selection and
    GREENLOOP_SHARD_INDEX/COUNT); the caller merges the shards' runs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    files = suite_files(run_dir, suite.name, shard)
    selection = shard_selection(selection, shard)
    files.junit.unlink(missing_ok=True)
    if selection.test_ids is not None:
        files.select.write_text("".join(f"{t}\n" for t in selection.test_ids))
    cwd = (base_dir / suite.working_dir).resolve()
    result = _Result(suite, selection, started=time.time())
    if not cwd.is_dir():
        # Causes a rerun cannot change: the round stops at once (docs/design.md §7).
        return result(
            f"workingDir {suite.working_dir!r} does not exist ({cwd}); fix "
            "spec.suites[].workingDir",
            permanent=True,
        )
    timeout, cut_by_deadline = _timeout(suite, result.started, stop_by)
    # Output goes through a pipe into a log capped at its head and tail.
    log = None if verbose else CappedLog(files.log)
    try:
        child = procs.start(
            suite_command(suite, files, selection, shard),
            cwd=cwd,
            env=suite_env(suite, files, selection, iteration, shard),
            stdout=None if log is None else log.write_fd,
            stderr=subprocess.STDOUT if log is not None else None,
        )
    except OSError as err:
        if log is not None:
            log.abandon()
        return result(_not_started(suite, err), permanent=True)
    if _waited_out(child, timeout, tick, log):
        if cut_by_deadline:
            return result(
                f"stopped after {timeout:.0f} s: spec.policy.deadlineSeconds passed while it "
                "ran; everything it started was stopped"
            )
        return result(
            f"timed out after {suite.timeout_seconds} s; everything it started was stopped"
        )
    _collect_reports(suite, cwd, files.junit, result.started)
    return _read_results(suite, files, child.proc.returncode, result)


@dataclass(frozen=True, slots=True)
class _Result:
    """Makes the suite's SuiteRun, finished when made."""

    suite: Suite
    selection: SuiteSelection
    started: float

    def __call__(
        self,
        error: str | None = None,
        exit_code: int | None = None,
        tests: Iterable[TestResult] = (),
        *,
        permanent: bool = False,
        collected: Collected | None = None,
    ) -> SuiteRun:
        return SuiteRun(
            permanent=permanent,
            collected=collected,
            suite=self.suite.name,
            tests=tuple(tests),
            error=error,
            exit_code=exit_code,
            started=self.started,
            finished=time.time(),
            selected=self.selection.test_ids,
        )


def _timeout(suite: Suite, started: float, stop_by: float | None) -> tuple[float, bool]:
    """The suite's timeout, and whether the deadline of the whole round cuts it shorter."""
    timeout: float = suite.timeout_seconds
    cut_by_deadline = stop_by is not None and stop_by - started < timeout
    if stop_by is not None and cut_by_deadline:
        timeout = max(stop_by - started, 0.0)
    return timeout, cut_by_deadline


def _not_started(suite: Suite, err: OSError) -> str:
    """Why the command could not start: a cause a rerun cannot change."""
    if isinstance(err, FileNotFoundError):
        return (
            f"command not found: {suite.command[0]!r} (not on PATH, or no such file "
            "relative to workingDir); fix spec.suites[].command"
        )
    if isinstance(err, PermissionError):
        return (
            f"command is not executable: {suite.command[0]!r} (permission denied); "
            "chmod +x it or run it through its interpreter"
        )
    # e.g. ENOEXEC: not a program at all
    return f"command cannot be started: {suite.command[0]!r}: {err.strerror or err}"


def _waited_out(
    child: procs.Child,
    timeout: float,
    tick: Callable[[float], None] | None,
    log: CappedLog | None,
) -> bool:
    """Wait for the suite; True when it ran out of time."""
    if log is not None:
        log.start()
    try:
        return procs.wait(child, timeout, tick)
    finally:
        # On every path (exit, timeout, Ctrl-C): its group and whatever it started.
        procs.stop(child)
        if log is not None:
            log.finish()


def _read_results(suite: Suite, files: SuiteFiles, code: int | None, result: _Result) -> SuiteRun:
    """The results in the suite's JUnit XML, or why there are none."""
    if not files.junit.exists() and not files.junit.is_symlink():
        return result(
            f"exited with code {code} and wrote no JUnit XML to $GREENLOOP_JUNIT_XML"
            + _tail_hint(files.log),
            code,
        )
    try:
        with open_regular(files.junit, JUNIT_MAX_BYTES) as stream:
            report = parse_junit(stream, name=files.junit.name)
    except FileRefused as err:
        return result(f"unreadable JUnit XML: {files.junit.name} {err.reason}", code)
    except JUnitError as err:
        return result(f"unreadable JUnit XML: {err}", code)
    if not report.tests and code != 0:
        return result(
            f"exited with code {code} and reported no tests" + _tail_hint(files.log), code
        )
    return result(None, code, report.tests, collected=report.collected)


def _tail_hint(log: Path) -> str:
    last = tail(log)
    return f"; last output: {last}" if last else ""
