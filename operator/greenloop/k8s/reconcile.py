"""One tick of one StagingValidation: re-read it, ask the engine for the current action,
carry out at most one idempotent step, write status (docs/design.md §8).

No decisions here: the engine decides (`greenloop.core.engine`); this module observes
(Jobs, results, rollouts), builds the engine's events from what it saw, and writes the
engine's answer back — state in `status.engine`, written in the same conflict-checked
status patch as the status a user reads (docs/design.md §5). A 409 on that write means
someone wrote in between: the tick ends and the next one re-reads and decides again.

Whatever is done *for* the object is done as its ServiceAccount (`actor`, an
impersonating view of the gateway; docs/design.md §8 "Tenancy"): a refusal stops the
object `Stalled`, naming account, verb and resource, and nothing is done for it.

Every step can be repeated after a crash at any point: Jobs and their objects have
deterministic names and are adopted; a redeploy writes the same rollout token; an event
for an action that is no longer in flight is ignored by the engine.

Reads come from the operator's watch-fed store (greenloop.k8s.store, docs/design.md
§8.1) when it has one: a tick makes no request until it writes. Fresh reads go to the
API: the object after a 409 (the store may not have the write that won yet), before
concluding it is gone, and the targets' fingerprint right after greenloop's own rollout.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenloop.core import crd, engine, snapshot
from greenloop.core.budget import status_refusal
from greenloop.core.capabilities import Capabilities, of_target, webhook_payload
from greenloop.core.engine import (
    AwaitApproval,
    Decision,
    Finish,
    Redeploy,
    RedeployDone,
    RedeployStarted,
    RunSuites,
    State,
    SuiteFinished,
    SuiteSelection,
)
from greenloop.core.fingerprint import Fingerprint
from greenloop.core.model import StagingValidation, Workload
from greenloop.core.names import report_name
from greenloop.core.notices import notices
from greenloop.core.outbound import Policy
from greenloop.core.secrets import masked_run, withheld_run
from greenloop.core.shard_results import suite_plan
from greenloop.core.shards import Shard
from greenloop.core.spec import SpecError, from_object
from greenloop.core.status import (
    APPROVE_ANNOTATION,
    RERUN_ANNOTATION,
    invalid_spec_reported,
    stalled_reported,
    stalled_status,
)
from greenloop.core.tenancy import Refusal, acting_account, refusal_condition
from greenloop.k8s import failpoints, metrics, suites
from greenloop.k8s import redeploy as rd
from greenloop.k8s.events import post_event
from greenloop.k8s.evidence import observe_targets
from greenloop.k8s.fingerprint import observe_fingerprint
from greenloop.k8s.gateway import ApiError, Conflict, Forbidden, Gateway
from greenloop.k8s.jobs import Owner, SuiteJob
from greenloop.k8s.masking import Unreadable, suite_secret_values
from greenloop.k8s.offload import offload
from greenloop.k8s.redeploy import OPERATOR_DEFAULT
from greenloop.k8s.rendered import rendered
from greenloop.k8s.reports import write_report
from greenloop.k8s.store import ApiReader, Reader
from greenloop.k8s.suites import RUNNER_ERROR_ANNOTATION

__all__ = ["Reconciler", "Settings", "Tick"]

log = logging.getLogger("greenloop.reconcile")
#: How long a tick waits before looking again when nothing woke it (a Job or results
#: event normally does, within a second).
IDLE_SECONDS = 10.0
#: The same wait with a watch-fed store: every change the tick depends on wakes it, so
#: the timer is only a safety net (a missed wake costs minutes, not a wrong verdict).
SAFETY_SECONDS = 300.0
#: Objects whose next tick reads the object from the API (after a 409); bounded.
MAX_FRESH = 4096
FINISHED_SECONDS = 300.0
#: How often an object stopped by a refusal tries again: granting a Role to its account
#: sends no event; a change to the object itself wakes it at once.
REFUSED_SECONDS = 60.0
#: Decoded states kept (one per object), so an unchanged status is not decoded again.
DECODED_STATES = 2048
CONFLICT = "status changed since it was read"
#: How long a failed redeploy waits for a controller to see greenloop's patch.
OBSERVE_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Settings:
    reporter_image: str
    results_url: str
    default_health_timeout: float = 300.0
    outbound: Policy = OPERATOR_DEFAULT  # where webhook and health calls may go
    # The account an object without spec.serviceAccountName acts as; None: it stalls.
    default_service_account: str | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """What the unit does next: tick again after `wait` seconds (or when woken);
    `stop` when the object is gone."""

    wait: float
    stop: bool = False
    note: str = ""


def _again(note: str = "") -> Tick:
    return Tick(0.0, note=note)


class Reconciler:
    def __init__(
        self,
        gw: Gateway,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        reader: Reader | None = None,
    ) -> None:
        self.gw = gw
        self.settings = settings
        self.clock = clock
        # Where ticks read (the store), and the API for reads that must be fresh.
        self.reader: Reader = reader or ApiReader(gw)
        self.api: Reader = ApiReader(gw)
        self.idle = SAFETY_SECONDS if self.reader.cached else IDLE_SECONDS
        self._fresh: set[str] = set()
        # uid -> (status.engine as read, its State): a tick whose stored state has not
        # changed (most ticks) skips the decode, seconds of CPU for a 100k-test state.
        # Decoding is pure, so equal data is the same State. Bounded, oldest out first.
        self._decoded: OrderedDict[str, tuple[Any, State]] = OrderedDict()

    # ---- the tick ---------------------------------------------------------------------

    async def tick(self, namespace: str, name: str, uid: str = "") -> Tick:
        """One tick of the object `uid` (any object of the name when empty)."""
        fresh = uid in self._fresh or not uid
        self._fresh.discard(uid)
        tick = await self._tick(namespace, name, uid, fresh=fresh)
        if tick.note.startswith(CONFLICT) and uid:
            # Someone wrote in between: the store may not have that write yet, and a
            # decision on what it holds would only meet the same 409 again.
            if len(self._fresh) >= MAX_FRESH:
                self._fresh.clear()
            self._fresh.add(uid)
        return tick

    async def _read(self, namespace: str, name: str, *, fresh: bool) -> dict[str, Any] | None:
        raw = await (self.api if fresh else self.reader).find(crd.KIND, namespace, name)
        if (
            not fresh
            and self.reader.cached
            and (raw is None or raw["metadata"].get("deletionTimestamp"))
        ):
            raw = await self.api.find(crd.KIND, namespace, name)  # gone is final: make sure
        return raw

    async def _tick(self, namespace: str, name: str, uid: str, *, fresh: bool) -> Tick:
        raw = await self._read(namespace, name, fresh=fresh)
        if raw is None or raw["metadata"].get("deletionTimestamp"):
            return Tick(0.0, stop=True, note="object gone")
        if uid and raw["metadata"].get("uid") != uid:
            # The name is another object's now: that object has its own unit.
            return Tick(0.0, stop=True, note="object gone (its name was reused)")
        try:
            # In a worker: checking the spec compiles its classification rules, seconds
            # for 100 large ones when they are not in the cache (classify.compile_rules).
            obj = await offload(from_object, raw, source=f"{namespace}/{name}", mode="operator")
        except SpecError as err:
            return await self._invalid(raw, str(err), err.reason)
        account = acting_account(
            namespace, obj.spec.service_account_name, self.settings.default_service_account
        )
        if account is None:
            return await self._stalled(raw, None)
        try:
            return await self._step(raw, obj, self.gw.acting_as(account))
        except Forbidden as refused:
            return await self._stalled(raw, refused.refusal)

    async def _step(self, raw: dict[str, Any], obj: StagingValidation, actor: Gateway) -> Tick:
        """The engine's next step for the object, what is done for it done by `actor`."""
        namespace = obj.namespace
        caps = of_target(obj.spec.target, "operator")
        now = self.clock()
        state = await self._stored_state(raw)
        if state is not None:
            metrics.PHASES.set(namespace, obj.name, state.phase.value)
        # What a person asked for through annotations (docs/design.md §8): fed to the
        # engine each tick; the engine compares them with what it recorded.
        rerun = obj.annotations.get(RERUN_ANNOTATION, "")
        if state is None:
            fp = await self._fingerprint(obj, caps)
            decision = engine.begin(
                obj.spec, now, generation=obj.generation, fingerprint=fp, rerun=rerun
            )
            return await self._write(actor, raw, obj, None, decision)
        if state.generation != obj.generation:
            fp = await self._fingerprint(obj, caps)
            decision = engine.on_spec_changed(
                obj.spec,
                state,
                now,
                generation=obj.generation,
                fingerprint=fp,
                rerun=rerun,
            )
            return await self._write(actor, raw, obj, state, decision)
        if why := snapshot.problem(state, obj.spec):
            # A hand-edited status.engine: stalled naming the field, nothing it names run;
            # the rerun annotation then starts a new round from the stalled state.
            decision = engine.on_invalid_state(obj.spec, state, why, now)
            return await self._write(actor, raw, obj, state, decision)
        decision = engine.on_rerun(obj.spec, state, rerun, now)
        if decision.state == state:  # no rerun asked for: has time changed anything?
            decision = engine.on_tick(obj.spec, state, now)
            action = engine.current_action(state)
            if decision.state != state and isinstance(action, RunSuites):
                # The deadline ended the round mid-run: stop what still runs, once the
                # verdict is written (a 409 re-decides, and stops, next tick).
                tick = await self._write(actor, raw, obj, state, decision)
                if not tick.note.startswith(CONFLICT):
                    await self._stop_runs(actor, raw, obj, state, action)
                return tick
        if decision.state != state:
            return await self._write(actor, raw, obj, state, decision)
        action = engine.current_action(state)
        if caps.fingerprint and not isinstance(action, Redeploy):
            # Someone else may have changed a target since the last look (docs/design.md
            # §8): stale results start a new round, on a Passed object as mid-round.
            fp = await self._fingerprint(obj, caps)
            decision = engine.on_target_observed(obj.spec, state, fp, now)
            if decision.state is not state:
                return await self._write(actor, raw, obj, state, decision)
        if isinstance(action, RunSuites):
            return await self._run(actor, raw, obj, state, action, caps)
        if isinstance(action, Redeploy):
            return await self._redeploy(actor, raw, obj, state, action, caps)
        if isinstance(action, AwaitApproval):
            token = obj.annotations.get(APPROVE_ANNOTATION, "")
            decision = engine.on_approved(state, token)
            if decision.state != state:
                return await self._write(actor, raw, obj, state, decision)
            # Any change to the object (the annotation) wakes the unit before this ends.
            return Tick(
                self._until(obj, state, now), note=f"waiting for approval of {action.token}"
            )
        assert isinstance(action, Finish)
        return Tick(self._until(obj, state, now), note=f"finished: {action.phase.value}")

    @staticmethod
    def _until(
        obj: StagingValidation, state: State, now: float, idle: float = FINISHED_SECONDS
    ) -> float:
        """How long to sleep when nothing wakes the unit: the idle wait, or less when the
        deadline or the next revalidation comes sooner."""
        due = engine.wake_at(obj.spec, state)
        if due is None:
            return idle
        return max(0.05, min(idle, due - now))

    # ---- state --------------------------------------------------------------------------

    async def _stored_state(self, raw: Mapping[str, Any]) -> State | None:
        """The engine state stored in the object's status; decoded in a worker unless it
        is the one decoded (or written) last time."""
        uid = str(raw["metadata"].get("uid", ""))
        data = (raw.get("status") or {}).get("engine")
        known = self._decoded.get(uid)
        if data and known is not None and known[0] == data:
            self._decoded.move_to_end(uid)
            return known[1]
        state = await offload(self._state, raw)
        if state is not None:
            self._remember(uid, data, state)
        return state

    def _remember(self, uid: str, data: Any, state: State) -> None:
        self._decoded[uid] = (data, state)
        self._decoded.move_to_end(uid)
        while len(self._decoded) > DECODED_STATES:
            self._decoded.popitem(last=False)

    @staticmethod
    def _state(raw: Mapping[str, Any]) -> State | None:
        data = (raw.get("status") or {}).get("engine")
        if not data:
            return None
        try:
            return snapshot.from_data(data)
        except snapshot.SnapshotError as err:
            log.warning("status.engine of %s is unreadable (%s); starting over", _key(raw), err)
            return None

    async def _fingerprint(
        self, obj: StagingValidation, caps: Capabilities, *, fresh: bool = False
    ) -> Fingerprint | None:
        """From the store; `fresh`: from the API (greenloop's own rollout has just
        completed, the store may be a moment behind it). What the API answered goes
        into the store too (Gateway observers), so the store is not behind the baseline."""
        if not caps.fingerprint:
            return None
        reader = self.api if fresh else self.reader
        return await observe_fingerprint(reader, obj.namespace, obj.spec.target.workloads)

    # ---- RunSuites ----------------------------------------------------------------------

    def _suite_job(
        self, raw: Mapping[str, Any], obj: StagingValidation, state: State, iteration: int,
        selection: SuiteSelection,
    ) -> SuiteJob:  # fmt: skip
        return SuiteJob(
            owner=_owner(raw),
            iteration=iteration,
            round=state.round,
            suite=obj.spec.suite(selection.suite),
            reporter_image=self.settings.reporter_image,
            results_url=self.settings.results_url,
            selection=selection.test_ids,
            service_account=obj.spec.service_account_name or "default",
            shards=_shards(obj, state, selection),
            max_pods=obj.spec.policy.parallelism,
        )

    async def _run(
        self, actor: Gateway, raw: dict[str, Any], obj: StagingValidation, state: State,
        action: RunSuites, caps: Capabilities,
    ) -> Tick:  # fmt: skip
        names = {s.name for s in obj.spec.suites}
        started = 0
        recheck = suites.Recheck()  # when a waiting pod's verdict turns, unannounced
        for selection in action.suites:
            if selection.suite not in names:
                continue  # dropped from the spec; the engine no longer waits for it
            run = self._suite_job(raw, obj, state, action.iteration, selection)
            job = await self.reader.find("Job", run.owner.namespace, run.job_name)
            noted = job is not None and RUNNER_ERROR_ANNOTATION in (
                job["metadata"].get("annotations") or {}
            )
            if job is None or (job.get("spec", {}).get("suspend") and not noted):
                await suites.start(actor, run)
                started += 1
                continue
            result = await suites.observe(
                self.gw, run, self.reader, actor=actor, now=self.clock(), recheck=recheck
            )
            if result is None:
                continue
            # Before anything of the run is kept: status, report, Events and log show
            # its Secrets' values as *** (docs/design.md §8).
            try:
                values = await suite_secret_values(actor, obj.namespace, run.suite)
                result = await offload(masked_run, result, values)
            except Unreadable as err:
                result = withheld_run(result, str(err))
            observed: tuple[str, ...] = ()
            if obj.spec.target.workloads and (
                result.error or any(t.is_failure for t in result.tests)
            ):
                observed = await observe_targets(
                    actor, obj.namespace, obj.spec.target.workloads, self.reader
                )
            fp = await self._fingerprint(obj, caps)  # what the targets run as results are read
            event = SuiteFinished(action.id, result, observed, fingerprint=fp)
            # The merge and classification of the suite's results: in a worker thread.
            decision = await offload(
                engine.on_suite, obj.spec, state, event, self.clock(), caps=caps
            )
            took = result.finished - result.started if result.started > 0 else None
            return await self._write(actor, raw, obj, state, decision, suite_seconds=took)
        note = f"started {started} Job(s)" if started else "waiting for Jobs"
        # `pod_start.never_starts` turns on time, unseen by the store: look again when it
        # turns (`recheck`), else on an event or the idle safety tick. Store reads only.
        now = self.clock()
        return Tick(self._until(obj, state, now, recheck.wait(now, self.idle)), note=note)

    async def _stop_runs(
        self, actor: Gateway, raw: dict[str, Any], obj: StagingValidation, state: State,
        action: RunSuites,
    ) -> None:  # fmt: skip
        names = {s.name for s in obj.spec.suites}
        for selection in action.suites:
            if selection.suite in names:
                await suites.stop(
                    actor, self._suite_job(raw, obj, state, action.iteration, selection)
                )

    # ---- Redeploy -----------------------------------------------------------------------

    def _token(self, raw: Mapping[str, Any], action: Redeploy) -> str:
        # The object's uid keeps two objects that redeploy the same workload apart.
        return f"{raw['metadata']['uid']}/{action.token}"

    async def _redeploy(
        self, actor: Gateway, raw: dict[str, Any], obj: StagingValidation, state: State,
        action: Redeploy, caps: Capabilities,
    ) -> Tick:  # fmt: skip
        ns = obj.namespace
        workloads = obj.spec.target.workloads
        health = obj.spec.target.health
        timeout = float(health.timeout_seconds) if health else self.settings.default_health_timeout
        if not action.started:
            patched: list[tuple[Workload, int]] = []
            webhook = obj.spec.target.webhook if caps.webhook else None
            try:
                # All or nothing: a refusal for any part is raised before any is done.
                await rd.preflight(actor, ns, workloads, webhook, self._token(raw, action))
                for workload in workloads:
                    generation = await rd.patch_workload(
                        actor, ns, workload, self._token(raw, action)
                    )
                    patched.append((workload, generation))
                failpoints.hit("rollout-patched")
            except rd.TargetMissing as missing:
                fp = await self._own_fingerprint(actor, obj, caps, patched)
                done = RedeployDone(False, str(missing), action_id=action.id, fingerprint=fp)
                decision = engine.on_redeploy(obj.spec, state, done, self.clock())
                return await self._write(actor, raw, obj, state, decision)
            if webhook is not None:
                payload = webhook_payload(
                    name=obj.name, namespace=ns, iteration=action.iteration,
                    reason=action.reason, token=self._token(raw, action),
                )  # fmt: skip
                ok, answer = await rd.call_webhook(
                    actor, ns, webhook, payload, self.settings.outbound
                )
                if not ok:
                    fp = await self._own_fingerprint(actor, obj, caps, patched)
                    done = RedeployDone(
                        False, answer, (answer,), action_id=action.id, fingerprint=fp
                    )
                    decision = engine.on_redeploy(obj.spec, state, done, self.clock())
                    return await self._write(actor, raw, obj, state, decision)
            decision = engine.on_redeploy_started(state, RedeployStarted(action.id))
            return await self._write(actor, raw, obj, state, decision)
        outcome = await rd.redeploy(actor, ns, workloads, self._token(raw, action), timeout=timeout)
        notes = list(outcome.notes)
        ok, message = outcome.ok, outcome.message
        if ok and health is not None:
            failpoints.hit("health-wait")
            ok, answer = await rd.wait_healthy(health, policy=self.settings.outbound)
            notes.append(answer)
            if not ok:
                message = answer
        # After greenloop's own rollout: the round's new baseline, read fresh.
        fp = await self._fingerprint(obj, caps, fresh=True)
        done = RedeployDone(ok, message, tuple(notes), action_id=action.id, fingerprint=fp)
        decision = engine.on_redeploy(obj.spec, state, done, self.clock())
        tick = await self._write(actor, raw, obj, state, decision)
        failpoints.hit("redeploy-done")
        return tick

    async def _own_fingerprint(
        self, actor: Gateway, obj: StagingValidation, caps: Capabilities,
        patched: Sequence[tuple[Workload, int]],
    ) -> Fingerprint | None:  # fmt: skip
        """The fingerprint after greenloop's own patches, once each workload's controller
        has seen them (its new revision exists): a redeploy that then fails must not leave
        a baseline its own rollout later looks different from (a TargetChanged loop)."""
        for workload, generation in patched:
            await rd.wait_observed(
                actor, obj.namespace, workload, generation, timeout=OBSERVE_SECONDS
            )
        return await self._fingerprint(obj, caps, fresh=True)

    # ---- writing ------------------------------------------------------------------------

    async def _write(
        self, actor: Gateway, raw: dict[str, Any], obj: StagingValidation,
        before: State | None, decision: Decision, *, suite_seconds: float | None = None,
        refused: bool = False,
    ) -> Tick:  # fmt: skip
        """Write the decision: report, then status (one conflict-checked patch), then
        metrics and Events - only once the status is written, so a decision repeated
        after a 409 is counted and told once. ``suite_seconds``: how long the suite whose
        result led to it ran. A state over the object's budget is written as the
        engine's TooManyTests stall instead (`_rendered`); a status the API server
        refuses for good (`budget.status_refusal`) as its StatusRejected stall, small
        and once: ``refused`` marks that second write (docs/design.md §5)."""
        meta = raw["metadata"]
        report_cm = report_name(meta["name"], meta["uid"])
        out = await offload(
            rendered, obj, before, decision, raw.get("status") or {}, report_cm, self.clock()
        )
        decision = out.decision
        state = decision.state
        await write_report(actor, _owner(raw), report_cm, out.report)
        failpoints.hit("report-written")
        try:
            await self.gw.patch_status(
                crd.KIND, meta["namespace"], meta["name"], out.patch,
                resource_version=meta["resourceVersion"],
            )  # fmt: skip
        except Conflict:
            return _again(f"{CONFLICT}: re-reading")
        except ApiError as err:
            why = status_refusal(err.status, err.message)
            if not why:
                raise  # may pass next time: the unit retries with backoff
            if refused:  # even the small stall is refused: told in the log, not retried
                log.error("status of %s refused again, not retried until woken: %s", _key(raw), why)
                return Tick(FINISHED_SECONDS, note=f"status refused: {why}")
            log.warning("status of %s refused for good: %s", _key(raw), why)
            stall = engine.on_status_rejected(state, why, self.clock())
            return await self._write(actor, raw, obj, before, stall, refused=True)
        failpoints.hit("status-written")
        self._remember(meta["uid"], out.engine, state)  # what the next tick reads back
        metrics.record(obj.namespace, out.observed)
        if suite_seconds is not None and suite_seconds >= 0:
            metrics.SUITE_SECONDS.labels(obj.namespace).observe(suite_seconds)
        metrics.PHASES.set(obj.namespace, obj.name, state.phase.value)
        for notice in notices(before, decision, obj):
            await post_event(self.gw, raw, notice.reason, notice.message, warning=notice.warning)
        return _again(f"{state.phase.value}: {state.message}")

    async def _stalled(self, raw: dict[str, Any], refusal: Refusal | None) -> Tick:
        """Stop the object on a refusal (`refusal_condition`): Stalled naming the account
        (or its absence), one Event, nothing else done; the status and Event are the
        operator's own, so the tenant learns what its account lacks. Written once per
        generation and cause; tried again after REFUSED_SECONDS or on any change."""
        reason, message = refusal_condition(refusal)
        then = Tick(REFUSED_SECONDS, note=f"stalled: {message}")
        generation = raw["metadata"].get("generation", 0)
        if stalled_reported(raw.get("status") or {}, generation, reason, message):
            return then
        return await self._write_stall(raw, reason, message, then)

    async def _invalid(self, raw: dict[str, Any], message: str, reason: str) -> Tick:
        """Stop the object on a spec greenloop refuses: Stalled naming the field, once per
        generation and reason (`invalid_spec_reported`), until the spec changes."""
        generation = raw["metadata"].get("generation", 0)
        if invalid_spec_reported(raw.get("status") or {}, generation, reason):
            return Tick(FINISHED_SECONDS, note="invalid spec (already reported)")
        return await self._write_stall(
            raw, reason, message, Tick(FINISHED_SECONDS, note="invalid spec")
        )

    async def _write_stall(
        self, raw: dict[str, Any], reason: str, message: str, then: Tick
    ) -> Tick:
        """Write the operator's own Stalled status (`stalled_status`; the engine's state is
        left as it is) in one conflict-checked patch, then the phase metric and one warning
        Event - only once written, so a 409 repeats neither. `then` once it is written."""
        meta = raw["metadata"]
        new = stalled_status(meta.get("generation", 0), reason, message, self.clock())
        try:
            await self.gw.patch_status(
                crd.KIND, meta["namespace"], meta["name"], new,
                resource_version=meta["resourceVersion"],
            )  # fmt: skip
        except Conflict:
            return _again(f"{CONFLICT}: re-reading")
        metrics.PHASES.set(meta["namespace"], meta["name"], new["phase"])
        await post_event(self.gw, raw, reason, message, warning=True)
        return then


def _shards(obj: StagingValidation, state: State, selection: SuiteSelection) -> tuple[Shard, ...]:
    """A sharded suite's shards for this run (docs/design.md §4.1), planned from the
    state the action came from, so every tick (and a restarted operator) plans the same;
    () for a suite of one shard: one pod, as before."""
    suite = obj.spec.suite(selection.suite)
    if suite.shards == 1:
        return ()
    return suite_plan(suite, state, selection).shards


def _owner(raw: Mapping[str, Any]) -> Owner:
    meta = raw["metadata"]
    return Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def _key(raw: Mapping[str, Any]) -> str:
    meta = raw.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"
