"""What a mode can do to the target, decided in one place, and the webhook payload.

The engine asks only "can a redeploy happen here?"; which of the target's parts a mode
can carry out is decided here, for the engine, the shells and ``greenloop validate``'s
warnings alike: local mode runs commands and calls webhooks but has no cluster for
workloads; the operator rolls out workloads and calls webhooks but runs no local commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from greenloop.core.model import Target

__all__ = ["Capabilities", "Mode", "capabilities", "of_target", "webhook_payload"]

Mode = Literal["local", "operator"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The parts of a target a shell will actually carry out."""

    workloads: bool = False
    command: bool = False
    webhook: bool = False

    @property
    def can_redeploy(self) -> bool:
        return self.workloads or self.command or self.webhook

    @property
    def fingerprint(self) -> bool:
        """Whether the shell observes the targets' fingerprint (docs/design.md §8): only
        where it sees workloads' pods — the operator; local mode has none."""
        return self.workloads

    def describe(self) -> str:
        parts = [
            name
            for name, on in (
                ("workloads", self.workloads),
                ("command", self.command),
                ("webhook", self.webhook),
            )
            if on
        ]
        return ", ".join(parts) or "nothing"


def capabilities(
    mode: Mode | None, *, workloads: bool, command: bool, webhook: bool
) -> Capabilities:
    """What ``mode`` can do with a target that has these parts. ``None``: every part
    counts (a mode-neutral view, used by tests and tools)."""
    return Capabilities(
        workloads=workloads and mode != "local",
        command=command and mode != "operator",
        webhook=webhook,
    )


def of_target(target: Target, mode: Mode | None) -> Capabilities:
    return capabilities(
        mode,
        workloads=bool(target.workloads),
        command=bool(target.command),
        webhook=target.webhook is not None,
    )


def webhook_payload(
    *, name: str, namespace: str, iteration: int, reason: str, token: str
) -> dict[str, Any]:
    """The JSON body both shells send to ``target.webhook`` (docs/design.md §6).
    ``token`` is the redeploy action's rollout token: a receiver can use it to treat a
    repeated call (a restarted operator) as the same deploy."""
    return {
        "validation": name,
        "namespace": namespace,
        "iteration": iteration,
        "reason": reason,
        "token": token,
    }
