"""Redeploy the target workloads: a pod-template annotation, then wait for the rollout.

The annotation's value is the engine's rollout token for this redeploy, so carrying out
the same Redeploy twice (a restarted operator, a second operator) patches the same value
again: the API server sees no change, the generation stays, no second rollout starts
(docs/design.md §8). The generation the patch returned is what the controller must
observe before `rollout.rollout_status` judges the counts.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from greenloop.core import health as rule
from greenloop.core.model import Health, Webhook, Workload
from greenloop.k8s import failpoints
from greenloop.k8s.gateway import Gateway, NotFound
from greenloop.k8s.rollout import Progress, RolloutStatus, rollout_status

__all__ = [
    "ROLLOUT_ANNOTATION",
    "Outcome",
    "TargetMissing",
    "call_webhook",
    "patch_workload",
    "redeploy",
    "wait_healthy",
    "wait_observed",
    "wait_rollout",
]

ROLLOUT_ANNOTATION = "greenloop.dev/rollout"


class TargetMissing(Exception):
    """A target workload does not exist: waiting or retrying cannot help."""

    def __init__(self, workload: Workload, namespace: str) -> None:
        super().__init__(
            f"{workload.kind} {namespace}/{workload.name} not found: create it, or fix "
            "spec.target.workloads"
        )
        self.workload = workload


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str
    notes: tuple[str, ...] = ()
    missing: Workload | None = None


async def patch_workload(gw: Gateway, namespace: str, workload: Workload, token: str) -> int:
    """Write the token into the pod template; the generation the API server answered."""
    patch = {"spec": {"template": {"metadata": {"annotations": {ROLLOUT_ANNOTATION: token}}}}}
    try:
        obj = await gw.patch(workload.kind, namespace, workload.name, patch)
    except NotFound:
        raise TargetMissing(workload, namespace) from None
    generation = obj.get("metadata", {}).get("generation")
    return generation if isinstance(generation, int) else 0


async def wait_observed(
    gw: Gateway, namespace: str, workload: Workload, generation: int, *, timeout: float
) -> bool:
    """Watch until the workload's controller has observed `generation` (its new revision
    exists); False when it has not within `timeout` or the workload is gone."""

    def seen(obj: dict[str, Any]) -> bool:
        observed = (obj.get("status") or {}).get("observedGeneration")
        return isinstance(observed, int) and observed >= generation

    obj = await gw.wait_for(workload.kind, namespace, workload.name, seen, timeout=timeout)
    return obj is not None and seen(obj)


async def wait_rollout(
    gw: Gateway, namespace: str, workload: Workload, generation: int, *, timeout: float
) -> RolloutStatus:
    """Watch the workload until its rollout is complete or failed, or `timeout` passes."""

    def done(obj: dict[str, Any]) -> bool:
        return rollout_status(obj, min_generation=generation).done

    failpoints.hit("rollout-waiting")
    obj = await gw.wait_for(workload.kind, namespace, workload.name, done, timeout=timeout)
    if obj is None:
        raise TargetMissing(workload, namespace)
    last = rollout_status(obj, min_generation=generation)
    if last.done:
        return last
    return RolloutStatus(
        Progress.FAILED,
        f"{workload.kind} {workload.name} not rolled out after {timeout:.0f}s: {last.message}",
    )


async def redeploy(
    gw: Gateway,
    namespace: str,
    workloads: Sequence[Workload],
    token: str,
    *,
    timeout: float,
) -> Outcome:
    """Patch every workload, then wait for all of them within one deadline."""
    deadline = time.monotonic() + timeout
    missing: list[TargetMissing] = []
    try:
        generations = [await patch_workload(gw, namespace, w, token) for w in workloads]
    except TargetMissing as err:
        return Outcome(False, str(err), missing=err.workload)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    wait_rollout(gw, namespace, w, g, timeout=max(1.0, deadline - time.monotonic()))
                )
                for w, g in zip(workloads, generations, strict=True)
            ]
    except* TargetMissing as group_error:  # deleted while we waited
        missing.extend(e for e in group_error.exceptions if isinstance(e, TargetMissing))
    if missing:
        return Outcome(False, str(missing[0]), missing=missing[0].workload)
    results = [t.result() for t in tasks]
    notes = tuple(r.message for r in results)
    failed = [r.message for r in results if r.progress is not Progress.COMPLETE]
    if failed:
        return Outcome(False, "; ".join(failed), notes)
    return Outcome(True, "rolled out: " + ", ".join(f"{w.kind}/{w.name}" for w in workloads), notes)


async def call_webhook(
    gw: Gateway, namespace: str, webhook: Webhook, payload: Mapping[str, Any]
) -> tuple[bool, str]:
    """POST the redeploy payload to `target.webhook`, with headers from its Secret (each
    key a header). (ok, what happened); bounded by the webhook's timeout."""
    headers: dict[str, str] = {}
    secret_name = webhook.headers_from.secret_name if webhook.headers_from else None
    if secret_name:
        secret = await gw.find("Secret", namespace, secret_name)
        if secret is None:
            return False, f"Secret {namespace}/{secret_name} (webhook headers) not found"
        for key, value in (secret.get("data") or {}).items():
            try:
                headers[key] = base64.b64decode(value).decode()
            except (ValueError, UnicodeDecodeError):
                return False, f"Secret {namespace}/{secret_name}: key {key} is not text"
    try:
        async with httpx.AsyncClient(timeout=float(webhook.timeout_seconds)) as client:
            response = await client.request(
                webhook.method, webhook.url, json=dict(payload), headers=headers
            )
    except httpx.HTTPError as err:
        return False, f"webhook {webhook.url}: {type(err).__name__}: {err}"
    if 200 <= response.status_code < 300:
        return True, f"webhook {webhook.url} answered HTTP {response.status_code}"
    return (
        False,
        f"webhook {webhook.url} answered HTTP {response.status_code}: {response.text[:200]}",
    )


async def wait_healthy(
    health: Health, *, clock: Callable[[], float] = time.monotonic
) -> tuple[bool, str]:
    """Probe the health URL until it answers the expected status, on the schedule of
    `greenloop.core.health`: backing off to one request a second (a URL has no watch),
    and no probe running past the timeout - each is cut at min(call timeout, time left)
    whatever the server does, and its body is never read."""
    started = clock()
    probes, last_end, last = 0, 0.0, "no answer yet"
    async with httpx.AsyncClient(timeout=httpx.Timeout(rule.CALL_TIMEOUT_SECONDS)) as client:
        while True:
            step = rule.next_step(health.timeout_seconds, clock() - started, probes, last_end)
            if isinstance(step, rule.GiveUp):
                return False, rule.gave_up_message(health.url, health.timeout_seconds, last)
            if isinstance(step, rule.Sleep):
                await asyncio.sleep(step.seconds)
                continue
            try:
                async with (
                    asyncio.timeout(step.timeout),
                    client.stream("GET", health.url) as response,
                ):
                    status = response.status_code
                if status == health.expect_status:
                    return True, rule.healthy_note(health.url, status, clock() - started)
                last = f"HTTP {status}"
            except TimeoutError:
                last = f"no complete answer within {step.timeout:.1f} s"
            except (httpx.HTTPError, httpx.InvalidURL) as err:
                last = f"{type(err).__name__}: {err}"
            probes, last_end = probes + 1, clock() - started
