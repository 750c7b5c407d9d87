"""One suite run as a Job: start it (idempotently) and read what it produced.

`start` creates the Job suspended, then its selection ConfigMap (owned by the Job, so it
needs its uid), then resumes it; each step adopts what a previous
attempt (a restarted or second operator) already made, so it can be repeated at any
point without a twin (docs/design.md §8).

`observe` turns a Job into the engine's `SuiteRun`: the uploaded results when the
results ConfigMap exists; a `RunnerError` (``error`` set) with the pod's own reason and
the container's last log lines when the Job ended without them, or when its pod can
never start (the image is not there); None while it is still running. It reads the Job,
its pods and whether the results exist through a `Reader` (the operator's watch-fed
store); the results' body, and the absence of results before a verdict without them,
come from the API, since a store may lag it (docs/design.md §8.1).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from greenloop.core.engine import SuiteRun
from greenloop.core.junit import JUnitError, parse_junit
from greenloop.core.pod_listing import not_split_note
from greenloop.core.pod_start import AT_ONCE, never_starts, verdict_changes_at
from greenloop.core.shard_pods import last_seen, noted_pods
from greenloop.core.shard_results import ShardOutcome, Waiting, merge
from greenloop.core.shards import Collected, ShardPlan
from greenloop.k8s import failpoints
from greenloop.k8s.gateway import Gateway
from greenloop.k8s.jobs import (
    COMPLETION_INDEX_ANNOTATION,
    LABEL_VALIDATION_UID,
    SuiteJob,
    build_job,
    build_selection_configmap,
    shard_results_name,
)
from greenloop.k8s.offload import offload
from greenloop.k8s.results import MAX_XML, RESULTS_KEY
from greenloop.k8s.store import Reader, reader_of

__all__ = ["ForeignObject", "Recheck", "observe", "runner_error", "start"]

#: Waiting reasons that are just a pod starting, not a story worth keeping.
STARTING = frozenset({"ContainerCreating", "PodInitializing", "Waiting"})
MAX_EVIDENCE = 400  # the engine keeps this much of a RunnerError's reason
RUNNER_ERROR_ANNOTATION = "greenloop.dev/runner-error"
#: Why the suite container was last seen waiting (ImagePullBackOff, CrashLoopBackOff...):
#: kept on the Job because the Job controller deletes the pod, and its story, when the
#: deadline passes.
WAITING_ANNOTATION = "greenloop.dev/last-waiting"
#: The pod last seen for each index of a sharded run (core/shard_pods.py).
SHARD_PODS_ANNOTATION = "greenloop.dev/shard-pods"
LOG_LINES = 15


@dataclass
class Recheck:
    """When a running suite's verdict can next change with no event to say so (a pod
    waiting through the kubelet's retries: ``pod_start.verdict_changes_at``): `observe`
    keeps the earliest such time in ``at`` (epoch seconds; None: only an event can), and
    the reconcile sleeps until then instead of ticking on a timer."""

    at: float | None = None

    def by(self, when: float | None) -> None:
        if when is not None and (self.at is None or when < self.at):
            self.at = when

    def wait(self, now: float, idle: float) -> float:
        """How long to sleep unwoken: until ``at``, at most ``idle``."""
        return idle if self.at is None else max(0.05, min(idle, self.at - now))


class ForeignObject(Exception):
    """An object with greenloop's deterministic name exists but is not this run's."""


def _uid(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("uid", ""))


async def start(gw: Gateway, run: SuiteJob, *, resume: bool = True) -> dict[str, Any]:
    """Create (or adopt) the Job and what it needs; resume it. Returns the Job."""
    job, _ = await gw.create_or_adopt(build_job(run))
    failpoints.hit("job-created")
    labels = job.get("metadata", {}).get("labels") or {}
    if labels.get(LABEL_VALIDATION_UID) != run.owner.uid:
        raise ForeignObject(
            f"Job {run.owner.namespace}/{run.job_name} exists but belongs to another object"
        )
    uid = _uid(job)
    # No upload credential to make: the pod's sidecar proves itself with the pod's own
    # bound ServiceAccount token (jobs.py, results.py).
    if run.selection is not None:
        await gw.create_or_adopt(build_selection_configmap(run, job_uid=uid))
        failpoints.hit("selection-created")
    if resume and job.get("spec", {}).get("suspend"):
        job = await gw.patch("Job", run.owner.namespace, run.job_name, {"spec": {"suspend": False}})
        failpoints.hit("job-resumed")
    return job


async def stop(gw: Gateway, run: SuiteJob) -> None:
    """Stop a run the round no longer waits for (its deadline passed): delete the Job,
    and with it, through owner references, its pods (SIGTERM) and ConfigMaps.
    Repeatable: a Job already gone is no error."""
    await gw.delete("Job", run.owner.namespace, run.job_name, propagation="Background")


def _epoch(stamp: Any) -> float:
    if not isinstance(stamp, str):
        return 0.0
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in job.get("status", {}).get("conditions") or ():
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def _run(run: SuiteJob, job: Mapping[str, Any], **fields: Any) -> SuiteRun:
    status = job.get("status", {})
    return SuiteRun(
        suite=run.suite.name,
        started=_epoch(status.get("startTime")),
        finished=_epoch(status.get("completionTime")) or _epoch(status.get("startTime")),
        selected=run.selection,
        **fields,
    )


def _container_story(pod: Mapping[str, Any]) -> tuple[str, str | None]:
    """What the pod's suite container says about itself, and its waiting reason."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    for cs in statuses:
        if cs.get("name") != "suite":
            continue
        state = cs.get("state") or {}
        if "waiting" in state:
            reason = str(state["waiting"].get("reason", "Waiting"))
            message = str(state["waiting"].get("message", ""))
            text = f"container suite is waiting: {reason}" + (f" ({message})" if message else "")
            return text, reason
        ended = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if ended:
            reason = str(ended.get("reason", "Terminated"))
            return f"container suite ended: {reason}, exit code {ended.get('exitCode')}", None
    phase = pod.get("status", {}).get("phase", "Unknown")
    reason = pod.get("status", {}).get("reason")
    return f"pod phase {phase}" + (f" ({reason})" if reason else ""), None


async def runner_error(
    gw: Gateway,
    run: SuiteJob,
    job: Mapping[str, Any],
    why: str,
    reader: Reader | None = None,
    *,
    actor: Gateway | None = None,
) -> str:
    """The RunnerError evidence, most telling first (the engine keeps 400 characters):
    what the suite container says, why the Job ended, its last log lines (read as the
    object's account, `actor`: a log is the tenant's data, not greenloop's)."""
    ns = run.owner.namespace
    parts: list[str] = []
    pods = await reader_of(reader or gw).select("Pod", ns, f"job-name={run.job_name}")
    items = sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp", "")))
    tail = ""
    waited = (job.get("metadata", {}).get("annotations") or {}).get(WAITING_ANNOTATION)
    if items:
        pod = items[-1]
        story, waiting = _container_story(pod)
        if waited and waiting is None:
            parts.append(str(waited))  # the pod is going: what it waited for tells more
        parts.append(story)
        log = await (actor or gw).pod_log(ns, pod["metadata"]["name"], "suite", lines=LOG_LINES)
        lines = [line.strip() for line in log.splitlines() if line.strip()]
        tail = " | ".join(lines[-3:])
    elif waited:
        parts.append(str(waited))
    parts.append(why)
    if tail:
        parts.append(f"last log lines: {tail}")
    text = "; ".join(parts)
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"


def _read_results(data: Mapping[str, Any], name: str) -> tuple[tuple[Any, ...], str | None]:
    tests, problem, _, _ = _read_report(data, name)
    return tests, problem


def _read_report(
    data: Mapping[str, Any], name: str
) -> tuple[tuple[Any, ...], str | None, str, Collected | None]:
    """The uploaded tests, why they cannot be read, the report's own note and what it
    says it collected (the same-collection rule)."""
    raw = (data.get("binaryData") or {}).get(RESULTS_KEY)
    if not isinstance(raw, str):
        return (), f"results ConfigMap {name} has no {RESULTS_KEY}", "", None
    try:
        packed = base64.b64decode(raw, validate=True)
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
            capped = io.BytesIO(stream.read(MAX_XML + 1))
        if len(capped.getbuffer()) > MAX_XML:
            return (), f"uploaded JUnit XML is over {MAX_XML} bytes", "", None
        report = parse_junit(capped, name=name)
    except (binascii.Error, OSError, EOFError) as err:
        return (), f"uploaded results are not readable gzip: {err}", "", None
    except JUnitError as err:
        return (), f"unreadable JUnit XML: {err}", "", None
    return report.tests, None, "; ".join(report.notes), report.collected


def _owned(obj: Mapping[str, Any] | None, job: Mapping[str, Any]) -> bool:
    refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
    return any(o.get("uid") == _uid(job) for o in refs)


async def _results(
    gw: Gateway, rd: Reader, run: SuiteJob, job: Mapping[str, Any], *, fresh: bool
) -> SuiteRun | None:
    """The Job's uploaded results, when they exist (`fresh`: ask the API, not the store,
    whether they do); None when not (yet)."""
    ns = run.owner.namespace
    if not fresh and not _owned(await rd.find("ConfigMap", ns, run.results_name), job):
        return None
    # The store keeps a results ConfigMap's metadata only: its body comes from the API.
    stored = await gw.find("ConfigMap", ns, run.results_name)
    if stored is None or not _owned(stored, job):
        return None
    # Up to MAX_XML of XML to gunzip and parse: a worker thread's job, not the loop's.
    tests, problem = await offload(_read_results, stored, f"{run.suite.name}.xml")
    if problem is None:
        return _run(run, job, tests=tests)
    return _run(run, job, error=problem)


async def observe(
    gw: Gateway,
    run: SuiteJob,
    reader: Reader | None = None,
    *,
    actor: Gateway | None = None,
    now: float | None = None,
    recheck: Recheck | None = None,
) -> SuiteRun | None:
    """The suite's result once it has one; None while it runs. greenloop's own objects
    (the Job, its results, its pods) are read through `reader` (the API when None); what
    is done to the Job and the log read are the object's account's (`actor`,
    docs/design.md §8 "Tenancy"). ``now``: the clock that times how long a pod has
    waited to start (time.time() when None)."""
    rd = reader_of(reader or gw)
    ns = run.owner.namespace
    act = actor or gw
    job = await rd.find("Job", ns, run.job_name)
    if job is None and rd.cached:
        job = await gw.find("Job", ns, run.job_name)  # absent is a verdict: make sure
    if job is None:
        return SuiteRun(
            suite=run.suite.name,
            error=f"Job {ns}/{run.job_name} was deleted before it reported results",
            selected=run.selection,
        )
    if run.indexed:
        return await observe_shards(gw, run, job, act, rd, now=now, recheck=recheck)
    found = await _results(gw, rd, run, job, fresh=False)
    if found is not None:
        return found
    noted = (job["metadata"].get("annotations") or {}).get(RUNNER_ERROR_ANNOTATION)
    ended = noted or _condition(job, "Failed") or _condition(job, "Complete")
    if ended and rd.cached:
        # A verdict without results: the store may not have the upload yet (its watch is
        # not ordered with the Job's), so ask the API whether it exists.
        found = await _results(gw, rd, run, job, fresh=True)
        if found is not None:
            return found
    if noted:
        return _run(run, job, error=str(noted), permanent=True)
    failed = _condition(job, "Failed")
    if failed is not None:
        why = f"Job {run.job_name} failed: {failed.get('reason') or 'Failed'}"
        if failed.get("message"):
            why += f" ({failed['message']})"
        return _run(run, job, error=await runner_error(gw, run, job, why, rd, actor=act))
    if _condition(job, "Complete") is not None:
        why = f"Job {run.job_name} completed without uploading JUnit XML"
        return _run(run, job, error=await runner_error(gw, run, job, why, rd, actor=act))
    pods = await rd.select("Pod", ns, f"job-name={run.job_name}")
    stuck = await _never_started(act, run, job, pods, now, recheck, note_waiting=True)
    if stuck is not None:
        return _run(run, job, error=stuck, permanent=True)
    return None


async def _never_started(
    act: Gateway,
    run: SuiteJob,
    job: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    now: float | None,
    recheck: Recheck | None,
    *,
    note_waiting: bool,
) -> str | None:
    """The rule ``pod_start.never_starts`` applied to each pod of the run (a one-pod
    Job's, or every index's of an Indexed Job): the RunnerError of the first that will
    never start, the Job suspended and annotated (:func:`_suspend`); None while none is,
    `recheck` told when a waiting pod's verdict turns. ``note_waiting``: keep a one-pod
    Job's waiting reason on the Job (its pod, and story, go at the deadline)."""
    annotations = job["metadata"].get("annotations") or {}
    for pod in pods:
        story, waiting = _container_story(pod)
        if note_waiting and waiting is not None and waiting not in STARTING | AT_ONCE:
            story = story[:MAX_EVIDENCE]
            if annotations.get(WAITING_ANNOTATION) != story:
                note = {"metadata": {"annotations": {WAITING_ANNOTATION: story}}}
                await act.patch("Job", run.owner.namespace, run.job_name, note)
        if never_starts(waiting, _waited(pod, now)):
            return await _suspend(act, run, pod, story)
        if recheck is not None:
            began = _epoch((pod.get("status") or {}).get("startTime"))
            recheck.by(verdict_changes_at(waiting, began))
    return None


def _waited(pod: Mapping[str, Any], now: float | None) -> float:
    """Seconds since the pod started (was taken by its kubelet), 0 before."""
    status = pod.get("status") or {}
    began = _epoch(status.get("startTime"))
    return 0.0 if began <= 0 else (time.time() if now is None else now) - began


async def _suspend(gw: Gateway, run: SuiteJob, pod: Mapping[str, Any], story: str) -> str:
    """The pod would wait for its deadline doing nothing (greenloop.core.pod_start):
    stop the Job now (every index: they share the image and the Secrets), and keep the
    reason on it so a restarted operator reads the same verdict. A rerun cannot help:
    the error is permanent. Returns the error."""
    error = f"Job {run.job_name}: pod {pod['metadata']['name']}: {story}"[:MAX_EVIDENCE]
    patch = {
        "metadata": {"annotations": {RUNNER_ERROR_ANNOTATION: error}},
        "spec": {"suspend": True},
    }
    await gw.patch("Job", run.owner.namespace, run.job_name, patch)
    return error


# ---- A sharded run: one Indexed Job (docs/design.md §4.1) -------------------------------


def _failed_indexes(job: Mapping[str, Any]) -> set[int]:
    """``status.failedIndexes`` ("1,3-5") as a set: the indexes whose pod failed (with
    backoffLimitPerIndex 0, for good)."""
    out: set[int] = set()
    for part in str(job.get("status", {}).get("failedIndexes") or "").split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            out.update(range(int(first), int(last or first) + 1))
    return out


def _pods_by_index(pods: Iterable[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """The latest pod of each completion index."""
    items = sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp", "")))
    out: dict[int, Mapping[str, Any]] = {}
    for pod in items:
        raw = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION, "")
        if str(raw).isdigit():
            out[int(raw)] = pod
    return out


def _pod_times(pod: Mapping[str, Any] | None) -> tuple[float, float]:
    """When the pod's suite container started and ended (0 when unknown)."""
    if pod is None:
        return 0.0, 0.0
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        ended = (cs.get("state") or {}).get("terminated") if cs.get("name") == "suite" else None
        if ended:
            return _epoch(ended.get("startedAt")), _epoch(ended.get("finishedAt"))
    return _epoch(pod.get("status", {}).get("startTime")), 0.0


async def _shard_outcome(
    gw: Gateway,
    rd: Reader,
    actor: Gateway,
    run: SuiteJob,
    job: Mapping[str, Any],
    index: int,
    pod: Mapping[str, Any] | None,
    why_ended: str | None,
    *,
    permanent: bool = False,
    last_pod: str = "",
    failed: bool = False,
) -> ShardOutcome | None:
    """One index's outcome: its stored upload, or, once it failed or the Job ended
    without one, why it has none (the pod's story and last log lines); None while it
    runs (``permanent``: the Job was stopped for a pod that can never start, whose
    reason `why_ended` is). ``last_pod``: the index's pod last seen, named when it is
    gone; ``failed``: the Job counts the index failed (so it had a pod). Whether the
    index uploaded is read from `rd` (the store keeps a results ConfigMap's metadata),
    confirmed with the API before "no upload" is a verdict; the upload's body comes from
    the API."""
    ns = run.owner.namespace
    name = str(pod["metadata"]["name"]) if pod is not None else last_pod
    started, finished = _pod_times(pod)
    results = shard_results_name(run.results_name, index)
    stored = await rd.find("ConfigMap", ns, results)
    if rd.cached and (_owned(stored, job) or why_ended is not None):
        stored = await gw.find("ConfigMap", ns, results)
    if _owned(stored, job):
        assert stored is not None  # owned: found
        xml = f"{run.suite.name}-{index}.xml"
        tests, problem, note, claim = await offload(_read_report, stored, xml)
        return ShardOutcome(
            index, tests, problem, pod=name, started=started, finished=finished, note=note,
            collected=claim,
        )  # fmt: skip
    if why_ended is None:
        return None
    parts = [why_ended]
    if pod is not None and not permanent:
        parts.insert(0, _container_story(pod)[0])
        log = await actor.pod_log(ns, name, "suite", lines=LOG_LINES)  # the tenant's data
        lines = [line.strip() for line in log.splitlines() if line.strip()]
        if lines:
            parts.append(f"last log lines: {' | '.join(lines[-3:])}")
    text = "; ".join(parts)[:MAX_EVIDENCE]
    # A failed index had a pod; if it is not there now, it was deleted (killed, evicted).
    gone = pod is None and (bool(last_pod) or failed)
    return ShardOutcome(
        index, error=text, permanent=permanent, pod=name, pod_gone=gone,
        started=started, finished=finished,
    )  # fmt: skip


async def _note_pods(
    act: Gateway, run: SuiteJob, job: Mapping[str, Any], pods: Mapping[int, Mapping[str, Any]]
) -> dict[int, str]:
    """The pod last seen for each index (core/shard_pods.py), noted on the Job when a new
    one appears, so that a restarted operator names a pod deleted meanwhile."""
    annotations = job["metadata"].get("annotations") or {}
    noted = noted_pods(annotations.get(SHARD_PODS_ANNOTATION))
    seen = {i: str(p["metadata"]["name"]) for i, p in pods.items()}
    names, text = last_seen(noted, seen)
    if text is not None:
        note = {"metadata": {"annotations": {SHARD_PODS_ANNOTATION: text}}}
        await act.patch("Job", run.owner.namespace, run.job_name, note)
    return names


async def observe_shards(
    gw: Gateway,
    run: SuiteJob,
    job: Mapping[str, Any],
    actor: Gateway | None = None,
    reader: Reader | None = None,
    *,
    now: float | None = None,
    recheck: Recheck | None = None,
) -> SuiteRun | None:
    """A sharded run's one result (core/shard_results.merge), once every index has
    uploaded or failed (``status.failedIndexes``, or the Job ended); None until then.
    Its pods and which indexes uploaded are read through `reader` (the API when None):
    a wake while the shards run asks the API nothing (issue 17). An index's pod that can
    never start stops the whole run at once, as a one-pod Job's does
    (:func:`_never_started`): the indexes share the image and the Secrets."""
    ns = run.owner.namespace
    rd = reader_of(reader or gw)
    act = actor or gw
    failed = _failed_indexes(job)
    ended = _condition(job, "Failed") or _condition(job, "Complete")
    noted = (job["metadata"].get("annotations") or {}).get(RUNNER_ERROR_ANNOTATION)
    pods = _pods_by_index(await rd.select("Pod", ns, f"job-name={run.job_name}"))
    last_seen = await _note_pods(act, run, job, pods)
    if not noted and ended is None:
        noted = await _never_started(act, run, job, pods.values(), now, recheck, note_waiting=False)
    outcomes: list[ShardOutcome] = []
    for shard in run.shards:
        why: str | None = None
        if noted:
            why = str(noted)
        elif shard.index in failed:
            why = f"index {shard.index} of Job {run.job_name} failed without uploading JUnit XML"
        elif ended is not None:
            why = f"Job {run.job_name} ended ({ended.get('reason') or ended.get('type')}) "
            why += f"before index {shard.index} uploaded JUnit XML"
        outcome = await _shard_outcome(
            gw, rd, act, run, job, shard.index, pods.get(shard.index), why,
            permanent=bool(noted), last_pod=last_seen.get(shard.index, ""),
            failed=shard.index in failed,
        )  # fmt: skip
        if outcome is not None:
            outcomes.append(outcome)
    if noted and all(o.error is not None for o in outcomes):
        # No index ran: the one reason, as a one-pod Job gives it, not once per shard.
        return _run(run, job, error=str(noted), permanent=True)
    merged = merge(ShardPlan(run.suite.name, run.selection, run.shards), outcomes)
    if isinstance(merged, Waiting):
        return None
    suite = run.suite
    blocked = not_split_note(suite.runner, suite.command, suite.shards)
    if blocked is not None and run.selection is None:
        # A Go or Maven command that keeps its whole-suite run in one shard: said.
        return replace(merged.run, shard_lines=(*merged.run.shard_lines, blocked))
    return merged.run
