"""One suite run as a Job: start it (idempotently) and read what it produced.

`start` creates the Job suspended, then its token Secret and selection ConfigMap (owned
by the Job, so they need its uid), then resumes it; each step adopts what a previous
attempt (a restarted or second operator) already made, so it can be repeated at any
point without a twin (docs/design.md §8).

`observe` turns a Job into the engine's `SuiteRun`: the uploaded results when the
results ConfigMap exists; a `RunnerError` (``error`` set) with the pod's own reason and
the container's last log lines when the Job ended without them, or when its pod can
never start (the image is not there); None while it is still running.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from greenloop.core.engine import SuiteRun
from greenloop.core.junit import JUnitError, parse_junit
from greenloop.k8s import failpoints
from greenloop.k8s.gateway import Gateway
from greenloop.k8s.jobs import (
    LABEL_VALIDATION_UID,
    SuiteJob,
    build_job,
    build_selection_configmap,
    build_token_secret,
)
from greenloop.k8s.offload import offload
from greenloop.k8s.results import MAX_XML, RESULTS_KEY

__all__ = ["ForeignObject", "observe", "runner_error", "start"]

#: Waiting reasons after which a pod will never run: report at once, do not wait for
#: the Job's deadline.
NEVER_STARTS = frozenset({"ErrImageNeverPull", "InvalidImageName"})
#: Waiting reasons that are just a pod starting, not a story worth keeping.
STARTING = frozenset({"ContainerCreating", "PodInitializing", "Waiting"})
MAX_EVIDENCE = 400  # the engine keeps this much of a RunnerError's reason
RUNNER_ERROR_ANNOTATION = "greenloop.dev/runner-error"
#: Why the suite container was last seen waiting (ImagePullBackOff, CrashLoopBackOff...):
#: kept on the Job because the Job controller deletes the pod, and its story, when the
#: deadline passes.
WAITING_ANNOTATION = "greenloop.dev/last-waiting"
LOG_LINES = 15


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
    secret, _ = await gw.create_or_adopt(
        build_token_secret(run, job_uid=uid, token=secrets.token_urlsafe(32))
    )
    owners = secret.get("metadata", {}).get("ownerReferences") or []
    if not any(o.get("uid") == uid for o in owners):
        # Left from an older Job of the same name, not yet collected: replace it.
        await gw.delete("Secret", run.owner.namespace, run.secret_name)
        await gw.create(build_token_secret(run, job_uid=uid, token=secrets.token_urlsafe(32)))
    failpoints.hit("secret-created")
    if run.selection is not None:
        await gw.create_or_adopt(build_selection_configmap(run, job_uid=uid))
        failpoints.hit("selection-created")
    if resume and job.get("spec", {}).get("suspend"):
        job = await gw.patch("Job", run.owner.namespace, run.job_name, {"spec": {"suspend": False}})
        failpoints.hit("job-resumed")
    return job


async def stop(gw: Gateway, run: SuiteJob) -> None:
    """Stop a run the round no longer waits for (its deadline passed): delete the Job,
    and with it, through owner references, its pods (SIGTERM), Secret and ConfigMaps.
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
    gw: Gateway, run: SuiteJob, job: Mapping[str, Any], why: str, *, actor: Gateway | None = None
) -> str:
    """The RunnerError evidence, most telling first (the engine keeps 400 characters):
    what the suite container says, why the Job ended, its last log lines (read as the
    object's account, `actor`: a log is the tenant's data, not greenloop's)."""
    ns = run.owner.namespace
    parts: list[str] = []
    pods = await gw.list("Pod", ns, label_selector=f"job-name={run.job_name}")
    items = sorted(
        pods.get("items") or [], key=lambda p: str(p["metadata"].get("creationTimestamp", ""))
    )
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
    raw = (data.get("binaryData") or {}).get(RESULTS_KEY)
    if not isinstance(raw, str):
        return (), f"results ConfigMap {name} has no {RESULTS_KEY}"
    try:
        packed = base64.b64decode(raw, validate=True)
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
            capped = io.BytesIO(stream.read(MAX_XML + 1))
        if len(capped.getbuffer()) > MAX_XML:
            return (), f"uploaded JUnit XML is over {MAX_XML} bytes"
        report = parse_junit(capped, name=name)
    except (binascii.Error, OSError, EOFError) as err:
        return (), f"uploaded results are not readable gzip: {err}"
    except JUnitError as err:
        return (), f"unreadable JUnit XML: {err}"
    return report.tests, None


async def observe(gw: Gateway, run: SuiteJob, *, actor: Gateway | None = None) -> SuiteRun | None:
    """The suite's result once it has one; None while it runs. greenloop's own objects
    (the Job, its results, its pods) are read through `gw`; what is done to the Job and
    the log read are the object's account's (`actor`, docs/design.md §8 "Tenancy")."""
    ns = run.owner.namespace
    act = actor or gw
    job = await gw.find("Job", ns, run.job_name)
    if job is None:
        return SuiteRun(
            suite=run.suite.name,
            error=f"Job {ns}/{run.job_name} was deleted before it reported results",
            selected=run.selection,
        )
    stored = await gw.find("ConfigMap", ns, run.results_name)
    if stored is not None and any(
        o.get("uid") == _uid(job) for o in stored["metadata"].get("ownerReferences") or []
    ):
        # Up to MAX_XML of XML to gunzip and parse: a worker thread's job, not the loop's.
        tests, problem = await offload(_read_results, stored, f"{run.suite.name}.xml")
        if problem is None:
            return _run(run, job, tests=tests)
        return _run(run, job, error=problem)
    noted = (job["metadata"].get("annotations") or {}).get(RUNNER_ERROR_ANNOTATION)
    if noted:
        return _run(run, job, error=str(noted))
    failed = _condition(job, "Failed")
    if failed is not None:
        why = f"Job {run.job_name} failed: {failed.get('reason') or 'Failed'}"
        if failed.get("message"):
            why += f" ({failed['message']})"
        return _run(run, job, error=await runner_error(gw, run, job, why, actor=act))
    if _condition(job, "Complete") is not None:
        why = f"Job {run.job_name} completed without uploading JUnit XML"
        return _run(run, job, error=await runner_error(gw, run, job, why, actor=act))
    pods = await gw.list("Pod", ns, label_selector=f"job-name={run.job_name}")
    annotations = job["metadata"].get("annotations") or {}
    for pod in pods.get("items") or []:
        story, waiting = _container_story(pod)
        if waiting is not None and waiting not in STARTING and waiting not in NEVER_STARTS:
            story = story[:MAX_EVIDENCE]
            if annotations.get(WAITING_ANNOTATION) != story:
                note = {"metadata": {"annotations": {WAITING_ANNOTATION: story}}}
                await act.patch("Job", ns, run.job_name, note)
        if waiting in NEVER_STARTS:
            # The pod would wait for its deadline doing nothing: stop it now, and keep
            # the reason on the Job so a restarted operator reads the same verdict.
            error = f"Job {run.job_name}: pod {pod['metadata']['name']}: {story}"
            patch = {
                "metadata": {"annotations": {RUNNER_ERROR_ANNOTATION: error}},
                "spec": {"suspend": True},
            }
            await act.patch("Job", ns, run.job_name, patch)
            return _run(run, job, error=error)
    return None
