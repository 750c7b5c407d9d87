"""Carry out a redeploy in local mode: a command and/or a webhook, then a health wait."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from greenloop.core import health as rule
from greenloop.core import outbound
from greenloop.core.model import Health, Target, Webhook
from greenloop.core.secrets import header_refusal, masked
from greenloop.local import http, procs
from greenloop.local.logs import cap_file
from greenloop.local.logs import tail as log_tail
from greenloop.local.suites import child_env

PROBE_SECONDS = rule.CALL_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str
    notes: tuple[str, ...] = ()


def probe(health: Health, policy: outbound.Policy = outbound.LOCAL_DEFAULT) -> str:
    """One look at the health endpoint, as evidence of what the target showed."""
    try:
        answer = http.request(
            "GET", health.url, seconds=PROBE_SECONDS, max_body=0, policy=policy,
            what="target.health.url",
        )  # fmt: skip
    except http.HttpFailed as err:
        return f"GET {health.url} -> {err}"
    return f"GET {health.url} -> HTTP {answer.status} in {answer.ms:.0f} ms"


def run_command(target: Target, base_dir: Path, log: Path) -> Outcome:
    started = time.monotonic()
    with log.open("ab") as out:
        try:
            child = procs.start(
                target.command, cwd=base_dir, env=child_env(), stdout=out, stderr=subprocess.STDOUT
            )
        except FileNotFoundError:
            return Outcome(False, f"redeploy command not found: {target.command[0]!r}")
        except PermissionError:
            return Outcome(False, f"redeploy command is not executable: {target.command[0]!r}")
        except OSError as err:
            return Outcome(
                False, f"redeploy command {target.command[0]!r} cannot start: {err.strerror or err}"
            )
        try:
            timed_out = procs.wait(child, target.command_timeout_seconds)
        except BaseException:
            procs.stop(child)  # Ctrl-C: it and everything it started
            raise
        if timed_out or child.proc.returncode != 0:
            # A failed redeploy leaves nothing behind; a successful one may leave the
            # service it started, which is what it is for.
            procs.stop(child)
        else:
            procs.forget(child)
        cap_file(log)
        if timed_out:
            return Outcome(
                False,
                f"redeploy command timed out after {target.command_timeout_seconds} s; "
                "everything it started was stopped",
            )
    proc = child.proc
    took = time.monotonic() - started
    tail = log_tail(log)
    cmd = " ".join(target.command)
    if proc.returncode != 0:
        return Outcome(
            False, f"redeploy command `{cmd}` exited with code {proc.returncode}: {tail}"
        )
    return Outcome(
        True, f"ran `{cmd}` ({took:.1f} s)", (f"redeploy `{cmd}`: {tail}",) if tail else ()
    )


def call_webhook(
    webhook: Webhook,
    payload: dict[str, object],
    policy: outbound.Policy = outbound.LOCAL_DEFAULT,
) -> Outcome:
    """Send the redeploy payload; the header values (from the environment) appear in
    no message: a value HTTP cannot carry is refused before sending, naming the header,
    and an error's text is masked (docs/design.md §8)."""
    headers = {"Content-Type": "application/json"}
    if webhook.headers_from is not None:
        for header, var in webhook.headers_from.env.items():
            value = os.environ.get(var)
            if value is None:
                return Outcome(
                    False,
                    f"webhook header {header!r} needs environment variable {var} "
                    "(spec.target.webhook.headersFrom.env), which is not set",
                )
            headers[header] = value
    for header, value in headers.items():
        why = header_refusal(header, value, "spec.target.webhook.headersFrom.env")
        if why is not None:
            return Outcome(False, why + ": check the environment variable")
    secrets = [v for h, v in headers.items() if h != "Content-Type"]
    what = f"webhook {webhook.method} {webhook.url}"
    try:
        answer = http.request(
            webhook.method,
            webhook.url,
            headers=headers,
            content=json.dumps(payload).encode(),
            seconds=webhook.timeout_seconds,
            policy=policy,
            what="target.webhook.url",
        )
    except http.HttpFailed as err:
        return Outcome(False, masked(f"{what} failed: {err}", secrets))
    if not answer.ok:
        body = answer.text(200) + ("..." if answer.cut or len(answer.body) > 200 else "")
        return Outcome(False, masked(f"{what} answered HTTP {answer.status}: {body}", secrets))
    return Outcome(True, f"{what} answered HTTP {answer.status}")


def wait_healthy(
    health: Health,
    tick: Callable[[float], None] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    policy: outbound.Policy = outbound.LOCAL_DEFAULT,
) -> Outcome:
    """Probe until the endpoint answers the expected status, on the schedule of
    `greenloop.core.health` (no probe runs past the timeout)."""
    started = clock()
    probes, last_end, last = 0, 0.0, "no answer yet"
    while True:
        step = rule.next_step(health.timeout_seconds, clock() - started, probes, last_end)
        if isinstance(step, rule.GiveUp):
            return Outcome(False, rule.gave_up_message(health.url, health.timeout_seconds, last))
        if isinstance(step, rule.Sleep):
            sleep(step.seconds)
            continue
        try:
            answer = http.request(
                "GET", health.url, seconds=step.timeout, max_body=0, policy=policy,
                what="target.health.url",
            )  # fmt: skip
            if answer.status == health.expect_status:
                took = clock() - started
                return Outcome(
                    True,
                    f"{health.url} healthy after {took:.1f} s",
                    (rule.healthy_note(health.url, answer.status, took),),
                )
            last = f"HTTP {answer.status}"
        except http.Refused as err:
            return Outcome(False, str(err))  # asking again cannot help
        except http.HttpFailed as err:
            last = str(err)
        probes, last_end = probes + 1, clock() - started
        if tick:
            tick(last_end)
