"""Deterministic kill points for the restart tests (docs/design.md §8), like etcd's gofail.

    GREENLOOP_FAILPOINTS=status-written:2,rollout-patched greenloop operator ...

At the n-th hit (default 1) of a named point the process logs one line and SIGKILLs
itself — no cleanup, no flush beyond that line — so a test can stop the operator exactly
between two steps instead of guessing the moment by polling. Off unless the variable is
set; `hit` is then one truthiness test of an empty dict. A test hook, not a feature:
nothing in production sets it.
"""

from __future__ import annotations

import logging
import os
import signal

__all__ = ["ENV", "POINTS", "FailpointError", "arm", "arm_from_env", "hit"]

ENV = "GREENLOOP_FAILPOINTS"

#: Every point, in the order a redeploying round meets them.
POINTS = frozenset(
    {
        "job-created",  # the Job exists, suspended; nothing else yet
        "selection-created",  # a rerun's selection ConfigMap exists; still suspended
        "job-resumed",  # the Job was resumed: its pod may start
        "results-stored",  # the upload is stored, the sidecar has no answer yet
        "report-written",  # the report ConfigMap is written, the status is not
        "status-written",  # status (and engine state) written, its Event not posted
        "rollout-patched",  # every workload has the rollout token; not marked started
        "rollout-waiting",  # a rollout is in progress and being waited for
        "health-wait",  # rolled out; target.health not yet answered
        "redeploy-done",  # RedeployDone decided and written
    }
)

log = logging.getLogger("greenloop.failpoints")
_armed: dict[str, int] = {}
_hits: dict[str, int] = {}


class FailpointError(ValueError):
    """The failpoint setting cannot be read."""


def parse(text: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition(":")
        if name not in POINTS:
            raise FailpointError(
                f"{ENV}: unknown failpoint {name!r}; known: {', '.join(sorted(POINTS))}"
            )
        try:
            n = int(count) if count else 1
        except ValueError:
            n = 0
        if n < 1:
            raise FailpointError(f"{ENV}: {item!r}: the count after ':' must be a number ≥ 1")
        armed[name] = n
    return armed


def arm(text: str | None) -> None:
    """Arm the points named in `text` (the variable's value); None or empty: all off."""
    _armed.clear()
    _hits.clear()
    _armed.update(parse(text or ""))
    if _armed:
        log.warning("failpoints armed (a test hook): %s", text)


def arm_from_env() -> None:
    arm(os.environ.get(ENV))


def hit(name: str) -> None:
    """Pass the point `name`; SIGKILL this process if it is armed and this is hit n."""
    if not _armed or name not in _armed:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != _armed[name]:
        return
    log.critical("failpoint %s reached (hit %d): SIGKILL", name, _hits[name])
    for handler in (*logging.getLogger().handlers, *log.handlers):
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
