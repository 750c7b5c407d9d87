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
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from greenloop.core import health as rule
from greenloop.core import outbound
from greenloop.core.model import Health, Webhook, Workload
from greenloop.core.secrets import header_refusal, masked
from greenloop.k8s import failpoints
from greenloop.k8s.gateway import Gateway, NotFound
from greenloop.k8s.rollout import Progress, RolloutStatus, rollout_status

__all__ = [
    "ROLLOUT_ANNOTATION",
    "Outcome",
    "TargetMissing",
    "call_webhook",
    "patch_workload",
    "preflight",
    "redeploy",
    "wait_healthy",
    "wait_observed",
    "wait_rollout",
]

ROLLOUT_ANNOTATION = "greenloop.dev/rollout"
#: Where webhook and health calls may go when the operator is given no flags
#: (docs/design.md §8 "Outbound calls").
OPERATOR_DEFAULT = outbound.operator_policy()
#: How long resolving a URL's host may take.
RESOLVE_SECONDS = 5.0


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


def _rollout_patch(token: str) -> dict[str, Any]:
    return {"spec": {"template": {"metadata": {"annotations": {ROLLOUT_ANNOTATION: token}}}}}


async def preflight(
    gw: Gateway,
    namespace: str,
    workloads: Sequence[Workload],
    webhook: Webhook | None,
    token: str,
) -> None:
    """Ask, changing nothing, whether `gw`'s account may do the whole redeploy: a
    server-side dry run of each workload's patch (authorized as the real one), a read
    of the webhook's header Secret. A refusal (`Forbidden`) is raised before anything
    is patched or sent, so no workload rolls half-way (issue 19, probes 1 and 3)."""
    for workload in workloads:
        try:
            await gw.patch(
                workload.kind, namespace, workload.name, _rollout_patch(token), dry_run=True
            )
        except NotFound:
            raise TargetMissing(workload, namespace) from None
    if webhook is not None and webhook.headers_from and webhook.headers_from.secret_name:
        await gw.find("Secret", namespace, webhook.headers_from.secret_name)


async def patch_workload(gw: Gateway, namespace: str, workload: Workload, token: str) -> int:
    """Write the token into the pod template; the generation the API server answered."""
    try:
        obj = await gw.patch(workload.kind, namespace, workload.name, _rollout_patch(token))
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


class _Denied(Exception):
    # Raised from the connect trace: ends the call before the request is written.
    pass


async def refused(url: str, policy: outbound.Policy, what: str) -> str | None:
    """Why ``policy`` does not allow ``url``: its host is resolved once and every
    address checked; a policy that denies nothing resolves nothing."""
    if not policy.denied:
        return None
    host = outbound.host_of(url)
    addresses: list[str] = []
    if host is not None:
        try:
            async with asyncio.timeout(RESOLVE_SECONDS):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, proto=socket.IPPROTO_TCP
                )
            addresses = [str(info[4][0]) for info in infos]
        except (OSError, UnicodeError, TimeoutError):
            pass
    return outbound.refusal(policy, what, url, addresses)


def _connect_guard(
    policy: outbound.Policy, what: str, url: str
) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore trace hook that checks the address each connection reached, before
    a byte is sent: the name may have resolved to another address since `refused`
    looked (DNS rebinding), and this is the one the request would go to. Re-checking
    the connected peer, rather than pinning the checked address into the URL, keeps
    the Host header, TLS SNI and certificate check on the name. (With a proxy the
    peer is the proxy: the platform allows it by address.)"""
    host = outbound.host_of(url) or ""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if not policy.denied or not event.endswith("connect_tcp.complete"):
            return
        stream = info.get("return_value")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        why = (
            outbound.address_refusal(policy, what, str(peer[0]), host)
            if isinstance(peer, tuple) and peer
            else f"{what}: the connection has no peer address"
        )
        if why is not None:
            if stream is not None:
                await stream.aclose()
            raise _Denied(why)

    return trace


async def _headers_from_secret(
    gw: Gateway, namespace: str, secret_name: str
) -> dict[str, str] | str:
    """The headers (each key one) or why they cannot be sent - never quoting a value."""
    secret = await gw.find("Secret", namespace, secret_name)
    if secret is None:
        return f"Secret {namespace}/{secret_name} (webhook headers) not found"
    headers: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            headers[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            return f"Secret {namespace}/{secret_name}: key {key} is not text"
        why = header_refusal(key, headers[key], f"Secret {namespace}/{secret_name} key {key}")
        if why is not None:
            return why
    return headers


async def call_webhook(
    gw: Gateway,
    namespace: str,
    webhook: Webhook,
    payload: Mapping[str, Any],
    policy: outbound.Policy = OPERATOR_DEFAULT,
) -> tuple[bool, str]:
    """POST the redeploy payload to `target.webhook`, with headers from its Secret (each
    key a header). (ok, what happened); bounded by the webhook's timeout. Refused, with
    nothing sent, where `policy` does not allow the URL; a message keeps the status
    code and reason phrase of an answer, never its body, and never a header's value
    (docs/design.md §8)."""
    headers: dict[str, str] = {}
    secret_name = webhook.headers_from.secret_name if webhook.headers_from else None
    if secret_name:
        found = await _headers_from_secret(gw, namespace, secret_name)
        if isinstance(found, str):
            return False, found
        headers = found
    why = await refused(webhook.url, policy, "target.webhook.url")
    if why is not None:
        return False, why
    guard = _connect_guard(policy, "target.webhook.url", webhook.url)
    try:
        async with (
            asyncio.timeout(float(webhook.timeout_seconds)),
            httpx.AsyncClient(timeout=float(webhook.timeout_seconds)) as client,
            client.stream(
                webhook.method, webhook.url, json=dict(payload), headers=headers,
                extensions={"trace": guard},
            ) as response,
        ):  # fmt: skip
            answer = outbound.answer_summary(response.status_code, response.reason_phrase)
            ok = 200 <= response.status_code < 300
    except _Denied as err:
        return False, str(err)
    except TimeoutError:
        return False, f"webhook {webhook.url}: no answer within {webhook.timeout_seconds} s"
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as err:
        text = f"webhook {webhook.url}: {type(err).__name__}: {err}"
        return False, masked(text, headers.values())
    return ok, f"webhook {webhook.url} answered {answer}"


async def wait_healthy(
    health: Health,
    *,
    clock: Callable[[], float] = time.monotonic,
    policy: outbound.Policy = OPERATOR_DEFAULT,
) -> tuple[bool, str]:
    """Probe the health URL until it answers the expected status, on the schedule of
    `greenloop.core.health`: backing off to one request a second (a URL has no watch),
    and no probe running past the timeout - each is cut at min(call timeout, time left)
    whatever the server does, and its body is never read."""
    why = await refused(health.url, policy, "target.health.url")
    if why is not None:
        return False, why
    guard = _connect_guard(policy, "target.health.url", health.url)
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
                    client.stream("GET", health.url, extensions={"trace": guard}) as response,
                ):
                    status = response.status_code
                if status == health.expect_status:
                    return True, rule.healthy_note(health.url, status, clock() - started)
                last = f"HTTP {status}"
            except _Denied as err:
                return False, str(err)
            except TimeoutError:
                last = f"no complete answer within {step.timeout:.1f} s"
            except (httpx.HTTPError, httpx.InvalidURL) as err:
                last = f"{type(err).__name__}: {err}"
            probes, last_end = probes + 1, clock() - started
