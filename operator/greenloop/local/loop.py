"""Local mode's shell: carry out the engine's actions with processes and HTTP, feed the
engine what happened, until it says Finish. No decisions are made here."""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from greenloop.core import engine
from greenloop.core.capabilities import of_target, webhook_payload
from greenloop.core.classify import compile_rules
from greenloop.core.engine import (
    Decision,
    Finish,
    Phase,
    Redeploy,
    RedeployDone,
    RedeployStarted,
    RunSuites,
    State,
    SuiteFinished,
    SuiteRun,
    SuiteSelection,
)
from greenloop.core.exits import exit_code
from greenloop.core.listing import lists_tests
from greenloop.core.model import StagingValidation, Suite, ValidationSpec
from greenloop.core.outbound import LOCAL_DEFAULT, Policy
from greenloop.core.report import render
from greenloop.core.shard_results import MergedSuite, ShardOutcome, merge, suite_plan
from greenloop.core.shards import Shard, ShardPlan, one_process_locally
from greenloop.core.status import build_status, status_object
from greenloop.core.words import plural
from greenloop.local import interrupts, procs
from greenloop.local import redeploy as rd
from greenloop.local.listing import split_go_suite
from greenloop.local.outdir import OutDir
from greenloop.local.progress import Progress
from greenloop.local.suites import run_suite, suite_files


class _Stopped(BaseException):
    """Raised in a suite's thread to stop it (not an Exception: nothing may swallow it)."""


def _priority_groups(
    spec: ValidationSpec, suites: tuple[SuiteSelection, ...]
) -> list[list[SuiteSelection]]:
    """Consecutive selections of the same priority (the engine orders them P1 first)."""
    groups: list[list[SuiteSelection]] = []
    last = None
    for selection in suites:
        priority = spec.suite(selection.suite).priority
        if groups and priority == last:
            groups[-1].append(selection)
        else:
            groups.append([selection])
        last = priority
    return groups


def _sharded(suite: Suite) -> bool:
    """Whether the suite runs as several processes here (docs/design.md §4.1)."""
    return suite.shards > 1 and not one_process_locally(suite.runner)


def _log_name(suite: Suite) -> str:
    """The suite's log, or its shards' logs, in the iteration's folder."""
    return f"{suite.name}.shard-*.log" if _sharded(suite) else f"{suite.name}.log"


def _where(err: BaseException) -> str:
    """An unexpected error in one line: its type, message and the innermost greenloop frame."""
    frame = next(
        (f for f in reversed(traceback.extract_tb(err.__traceback__)) if "greenloop" in f.filename),
        None,
    )
    at = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return f"{type(err).__name__}: {err}{at}"


@dataclass(frozen=True, slots=True)
class RunResult:
    obj: StagingValidation
    state: State
    status: dict[str, Any]
    report: str
    report_path: Path
    exit_code: int

    def as_object(self) -> dict[str, Any]:
        return status_object(self.obj, self.status)


class LocalRun:
    def __init__(
        self,
        obj: StagingValidation,
        *,
        out_dir: Path,
        report_path: Path | None = None,
        progress: Progress | None = None,
        verbose: bool = False,
        clock: Callable[[], float] = time.time,
        outbound: Policy = LOCAL_DEFAULT,
    ) -> None:
        self.obj = obj
        self.outbound = outbound  # where webhook and health calls may go (--deny-outbound)
        self.base_dir = Path(obj.source).resolve().parent if obj.source else Path.cwd()
        self.out_dir = out_dir.resolve()  # suites run elsewhere; their paths must not be relative
        self.report_path = report_path or self.out_dir / "report.md"
        self.progress = progress or Progress()
        self.verbose = verbose
        self.clock = clock
        self.signal_exit: int | None = None  # 128 + the signal that stopped the run
        self.outdir = OutDir(self.out_dir)
        self._stop_by: float | None = None
        self._plans: dict[str, ShardPlan] = {}  # the batch's sharded suites
        # Progress is written from suite threads too (policy.parallelism): one at a time.
        self._lock = threading.Lock()
        self.spec: ValidationSpec = obj.spec
        # What this mode can do with the target (no cluster: no workloads) is decided
        # in the core, once; the engine and this shell both follow it.
        self.caps = of_target(obj.spec.target, "local")
        self.rules = compile_rules(obj.spec.classification)

    def run(self) -> RunResult:
        """Raises OutDirError (before running anything) when the folder is unusable."""
        # One run at a time per folder; the previous run's files (and only those) go.
        self.outdir.claim(f"validation {self.obj.namespace}/{self.obj.name}")
        try:
            self.outdir.clean()
            return self._run_held()
        finally:
            self.outdir.release()

    def _run_held(self) -> RunResult:
        spec = self.spec
        goal = f"{spec.expected_tests} tests" if spec.expected_tests else "every reported test"
        self.progress.line(
            f"greenloop: {self.obj.name}: {plural(len(spec.suites), 'suite')}, "
            f"goal {goal} passing, at most {spec.policy.max_iterations} iterations"
        )
        for suite in spec.suites:
            if suite.shards > 1 and not _sharded(suite):
                self.progress.line(
                    f"greenloop: suite {suite.name}: runs in one process, not {suite.shards} "
                    "shards: shards of one Maven project share its target/ (docs/runners.md)"
                )
        decision = engine.begin(spec, self.clock(), generation=self.obj.generation)
        with interrupts.handled():
            try:
                while not isinstance(decision.action, Finish):
                    before = decision.state
                    decision = self._step(decision)
                    self._announce_closed(before, decision.state)
            except KeyboardInterrupt as err:
                # Ctrl-C, SIGTERM, SIGHUP: what was started is stopped, what is known is
                # reported, and the exit code says which signal (130, 143, 129).
                interrupts.settle()
                procs.stop_all()
                what = err.what if isinstance(err, interrupts.Interrupted) else "Ctrl-C"
                self.progress.line(f"greenloop: interrupted ({what}); what it started was stopped")
                before = decision.state
                decision = engine.interrupt(before, self.clock(), f"interrupted ({what})")
                self._announce_closed(before, decision.state)
                self.signal_exit = interrupts.exit_code(err)
            except Exception as err:
                interrupts.settle()
                procs.stop_all()
                where = _where(err)
                self.progress.line(f"greenloop: internal error: {where}")
                decision = engine.internal_error(decision.state, self.clock(), where)
            finally:
                interrupts.settle()
                procs.stop_all()
            return self._finish(decision)

    def _step(self, decision: Decision) -> Decision:
        action, state = decision.action, decision.state
        if isinstance(action, RunSuites):
            # spec.policy.deadlineSeconds cuts a running suite short.
            if state.started_at is not None:
                self._stop_by = state.started_at + self.spec.policy.deadline_seconds
            return self._run(action, state)
        if isinstance(action, Redeploy):
            state = engine.on_redeploy_started(state, RedeployStarted(action.id)).state
            done = replace(self._redeploy(action), action_id=action.id)
            return engine.on_redeploy(self.spec, state, done, self.clock())
        raise AssertionError(f"unexpected action {action!r}")

    def _run(self, action: RunSuites, state: State) -> Decision:
        """Run the suites, feeding each one's results to the engine as it finishes, the
        way the operator feeds it Jobs. Suites of one priority run up to
        policy.parallelism at a time; priorities still run in order."""
        run_dir = self.out_dir / f"iteration-{action.iteration}"
        self.outdir.wrote(run_dir.name)
        so_far = {"passed": 0, "failed": 0}
        decision = Decision(state, action)
        width = max(1, self.spec.policy.parallelism)
        # Planned from the state the action came from: a suite's durations change only
        # when its own results merge (docs/design.md §4.1).
        self._plans = {
            s.suite: suite_plan(self.spec.suite(s.suite), state, s)
            for s in action.suites
            if _sharded(self.spec.suite(s.suite))
        }
        for group in _priority_groups(self.spec, action.suites):
            # A sharded suite's processes take the width: it runs beside no other suite,
            # so no more than policy.parallelism processes run at once.
            for selection in [s for s in group if s.suite in self._plans]:
                prefix = self._announce(action, selection)
                tick = self._ticker(prefix, selection, so_far)
                run = self._run_one(action, selection, run_dir, tick)
                decision = self._fed(decision, action, selection, run, run_dir, so_far)
            group = [s for s in group if s.suite not in self._plans]
            if not group:
                continue
            if width == 1 or len(group) == 1:
                for selection in group:
                    prefix = self._announce(action, selection)
                    tick = self._ticker(prefix, selection, so_far)
                    run = self._run_one(action, selection, run_dir, tick)
                    decision = self._fed(decision, action, selection, run, run_dir, so_far)
            else:
                decision = self._run_together(action, group, run_dir, so_far, decision, width)
        return decision

    def _announce(self, action: RunSuites, selection: SuiteSelection) -> str:
        suite = self.spec.suite(selection.suite)
        what = (
            "all tests"
            if selection.test_ids is None
            else plural(len(selection.test_ids), "selected test")
        )
        prefix = f"[iteration {action.iteration}] {suite.name} ({suite.priority})"
        with self._lock:
            self.progress.line(f"{prefix}: running {what}")
        return prefix

    def _ticker(
        self, prefix: str, selection: SuiteSelection, so_far: dict[str, int]
    ) -> Callable[[float], None]:
        timeout = self.spec.suite(selection.suite).timeout_seconds

        def tick(elapsed: float) -> None:
            with self._lock:
                self.progress.tick(
                    f"{prefix}: running {elapsed:.0f} s (timeout {timeout} s); "
                    f"this iteration so far: {so_far['passed']} passed, {so_far['failed']} failed"
                )

        return tick

    def _run_one(
        self,
        action: RunSuites,
        selection: SuiteSelection,
        run_dir: Path,
        tick: Callable[[float], None],
    ) -> SuiteRun:
        suite = self.spec.suite(selection.suite)
        started = time.time()
        try:
            if selection.suite in self._plans:
                return self._run_shards(action, selection, run_dir, tick)
            return run_suite(
                suite,
                selection,
                iteration=action.iteration,
                base_dir=self.base_dir,
                run_dir=run_dir,
                verbose=self.verbose,
                tick=tick,
                stop_by=self._stop_by,
            )
        except Exception as err:  # the last resort: a suite error the engine understands
            return SuiteRun(
                suite=suite.name,
                tests=(),
                error=f"greenloop could not run it: {_where(err)}",
                exit_code=None,
                started=started,
                finished=time.time(),
                selected=selection.test_ids,
            )

    def _run_shards(
        self,
        action: RunSuites,
        selection: SuiteSelection,
        run_dir: Path,
        tick: Callable[[float], None],
    ) -> SuiteRun:
        """One process per shard of the suite's plan, policy.parallelism at a time, each
        with its own files, selection and GREENLOOP_SHARD_INDEX/COUNT; their results
        merged into the one run the engine reads (core/shard_results)."""
        suite = self.spec.suite(selection.suite)
        plan = self._plans[selection.suite]
        if plan.selected is None and lists_tests(suite.runner):
            # Go splits a whole-suite run from a listing of its tests (core/listing).
            split = split_go_suite(suite, self.base_dir, run_dir, self._stop_by, tick)
            plan = self._plans[selection.suite] = split.plan
            with self._lock:
                self.progress.line(f"[iteration {action.iteration}] {suite.name}: {split.note}")
        if not plan.shards:  # an empty selection: nothing to run
            merged = merge(plan, ())
            assert isinstance(merged, MergedSuite)
            return merged.run
        width = max(1, min(self.spec.policy.parallelism, len(plan.shards)))
        stop = threading.Event()
        started = time.time()

        def shard_tick(elapsed: float) -> None:
            if stop.is_set():
                raise _Stopped
            tick(time.time() - started)

        def one(shard: Shard) -> ShardOutcome:
            run = run_suite(
                suite,
                selection,
                iteration=action.iteration,
                base_dir=self.base_dir,
                run_dir=run_dir,
                verbose=self.verbose,
                tick=shard_tick,
                stop_by=self._stop_by,
                shard=shard,
            )
            label = suite_files(run_dir, suite.name, shard).log.name
            return ShardOutcome(
                shard.index,
                run.tests,
                run.error,
                run.permanent,
                pod=f"process, log {label}",
                exit_code=run.exit_code,
                started=run.started,
                finished=run.finished,
                collected=run.collected,
            )

        pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="shard")
        try:
            outcomes = list(pool.map(one, plan.shards))
        except BaseException:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        merged = merge(plan, outcomes)
        assert isinstance(merged, MergedSuite)  # every shard is in: each returned
        if merged.note:
            with self._lock:
                self.progress.line(f"[iteration {action.iteration}] warning: {merged.note}")
        return merged.run

    def _run_together(
        self,
        action: RunSuites,
        group: list[SuiteSelection],
        run_dir: Path,
        so_far: dict[str, int],
        decision: Decision,
        width: int,
    ) -> Decision:
        """Up to ``width`` suites at once, each its own process group, log and timeout;
        the ticking line shows them side by side. Results reach the engine one at a time,
        in the order the suites finish."""
        running: dict[str, float] = {}
        stop = threading.Event()

        def ticker(name: str) -> Callable[[float], None]:
            def tick(elapsed: float) -> None:
                if stop.is_set():
                    raise _Stopped  # run_suite stops the suite's processes on its way out
                with self._lock:
                    running[name] = elapsed
                    side_by_side = " | ".join(f"{n} {e:.0f} s" for n, e in running.items())
                    self.progress.tick(
                        f"[iteration {action.iteration}] running {side_by_side}; so far: "
                        f"{so_far['passed']} passed, {so_far['failed']} failed"
                    )

            return tick

        pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="suite")
        try:
            futures: dict[Future[SuiteRun], SuiteSelection] = {}
            for selection in group:
                self._announce(action, selection)
                running[selection.suite] = 0.0
                tick = ticker(selection.suite)
                futures[pool.submit(self._run_one, action, selection, run_dir, tick)] = selection
            for future in as_completed(futures):
                selection = futures[future]
                run = future.result()
                with self._lock:
                    running.pop(selection.suite, None)
                decision = self._fed(decision, action, selection, run, run_dir, so_far)
        except BaseException:
            # Ctrl-C or a signal: every running suite stops at its next tick (within a
            # second), and its processes with it, before greenloop moves on.
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return decision

    def _fed(
        self,
        decision: Decision,
        action: RunSuites,
        selection: SuiteSelection,
        run: SuiteRun,
        run_dir: Path,
        so_far: dict[str, int],
    ) -> Decision:
        """The engine's decision after one suite's results, and the progress line."""
        suite = self.spec.suite(selection.suite)
        prefix = f"[iteration {action.iteration}] {suite.name} ({suite.priority})"
        took = run.finished - run.started
        # One look at the target while the results are fresh: the why-chain's evidence.
        health = self.spec.target.health
        observed = (rd.probe(health, self.outbound),) if health is not None else ()
        decision = engine.on_suite(
            self.spec,
            decision.state,
            SuiteFinished(action.id, run, observed),
            self.clock(),
            caps=self.caps,
            rules=self.rules,
        )
        with self._lock:
            if run.error is not None:
                self.progress.line(f"{prefix}: no results ({took:.1f} s): {run.error}")
                return decision
            counted = engine.tally_results(run.tests)
            bad, good, skipped = counted.failed, counted.passed, counted.skipped
            so_far["passed"] += good
            so_far["failed"] += bad
            self.progress.line(
                f"{prefix}: {good} passed, {bad} failed, {skipped} skipped in {took:.1f} s"
                + ("" if bad == 0 else f" (log: {run_dir / _log_name(suite)})")
            )
            for line in run.shard_lines:
                self.progress.line(f"{prefix}: {line}")
            if run.shard_error is not None:
                self.progress.line(f"{prefix}: RunnerError for its tests: {run.shard_error}")
            mismatch = engine.line_up(selection, run.tests).message
            if mismatch and run.shard_error is None:
                self.progress.line(f"{prefix}: warning: {mismatch}")
        return decision

    def _redeploy(self, action: Redeploy) -> RedeployDone:
        target = self.spec.target
        log = self.out_dir / f"redeploy-{action.iteration}.log"
        self.outdir.wrote(log.name)
        notes: list[str] = []
        steps: list[tuple[str, Callable[[], rd.Outcome]]] = []
        if target.command:
            cmd = " ".join(target.command)
            steps.append((f"running {cmd}", lambda: rd.run_command(target, self.base_dir, log)))
        if target.webhook is not None:
            webhook = target.webhook
            payload = webhook_payload(
                name=self.obj.name,
                namespace=self.obj.namespace,
                iteration=action.iteration,
                reason=action.reason,
                token=action.token,
            )
            steps.append(
                (
                    f"calling {webhook.method} {webhook.url}",
                    lambda: rd.call_webhook(webhook, payload, self.outbound),
                )
            )
        if target.health is not None:
            health = target.health

            def tick(elapsed: float) -> None:
                self.progress.tick(
                    f"[redeploy] waiting for {health.url}: {elapsed:.0f} s "
                    f"(timeout {health.timeout_seconds} s)"
                )

            steps.append(
                (
                    f"waiting until {health.url} answers HTTP {health.expect_status}",
                    lambda: rd.wait_healthy(health, tick, policy=self.outbound),
                )
            )
        messages: list[str] = []
        for what, step in steps:
            self.progress.line(f"[redeploy] {what}")
            try:
                outcome = step()
            except Exception as err:  # the last resort: a failed redeploy, never a crash
                outcome = rd.Outcome(False, f"{what} failed: {_where(err)}")
            notes.extend(outcome.notes)
            self.progress.line(f"[redeploy] {'ok' if outcome.ok else 'FAILED'}: {outcome.message}")
            if not outcome.ok:
                return RedeployDone(False, outcome.message, tuple(notes))
            messages.append(outcome.message)
        return RedeployDone(True, "; ".join(messages), tuple(notes))

    def _announce_closed(self, before: State, after: State) -> None:
        """Say what was decided, once, when the engine closes an iteration."""
        open_before = {r.iteration for r in before.history if r.finished is None}
        for rec in after.history:
            if rec.finished is not None and rec.iteration in open_before:
                self.progress.line(
                    f"[iteration {rec.iteration}] {rec.passed} passed, {rec.failed} failing "
                    f"-> {rec.action}: {rec.detail}"
                )

    def _finish(self, decision: Decision) -> RunResult:
        interrupts.settle()
        state = decision.state
        now = self.clock()
        status = build_status(self.obj, state, now)
        report = render(self.obj, state, now)
        obj = status_object(self.obj, status)
        self.outdir.wrote("status.json")
        (self.out_dir / "status.json").write_text(json.dumps(obj, indent=2) + "\n")
        if self.report_path == self.out_dir / "report.md":
            self.outdir.wrote("report.md")
        try:
            self.report_path.parent.mkdir(parents=True, exist_ok=True)
            self.report_path.write_text(report)
        except OSError as err:
            # The verdict stands; the report goes where it surely can.
            fallback = self.out_dir / "report.md"
            self.progress.line(
                f"greenloop: cannot write the report to {self.report_path}: "
                f"{err.strerror or err}; writing it to {fallback}"
            )
            self.outdir.wrote("report.md")
            fallback.write_text(report)
            self.report_path = fallback
        summary = status["summary"]
        verdict = "Passed" if state.phase is Phase.PASSED else f"Stalled ({state.reason})"
        self.progress.line(
            f"greenloop: {self.obj.name}: {verdict}: {state.message} "
            f"[{summary['passed']}/{summary['expected']} passed, "
            f"{plural(state.iteration, 'iteration')}, {plural(state.redeploys, 'redeploy')}]"
        )
        self.progress.line(f"greenloop: report: {self.report_path}")
        code = int(exit_code(state.phase, state.reason))
        if state.reason is engine.Reason.INTERRUPTED and self.signal_exit:
            code = self.signal_exit  # 143 for SIGTERM, 129 for SIGHUP
        return RunResult(self.obj, state, status, report, self.report_path, code)
