"""Secret values stay secret (docs/design.md §8): the header values greenloop sends
(from a Secret in operator mode, from the environment in local mode) never appear in
anything it writes - status, Events, the report, logs.

An outside library's error text may quote what it was given (h11: ``Illegal header
value b'hunter2\\n'``), so every such text is passed through :func:`masked` where it
becomes a message; and a value HTTP cannot carry is refused before sending by
:func:`header_refusal`, whose message names the header, never the value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from greenloop.core.engine.events import SuiteRun
from greenloop.core.model import Suite

__all__ = [
    "MASK",
    "SecretRef",
    "header_refusal",
    "masked",
    "masked_run",
    "secret_refs",
    "withheld_run",
]

#: A Secret a suite's pod reads: its name, and the one key it reads (None: every key).
SecretRef = tuple[str, str | None]

MASK = "***"
#: A line of a multi-line value shorter than this is not masked on its own (masking
#: every "a" would garble the message and hide nothing); the whole value always is.
MIN_PART = 4


def _forms(value: str) -> set[str]:
    """The value and the forms an error text may show it in: stripped, each line,
    escaped as Python shows a str or bytes."""
    forms = {value, value.strip()}
    forms.update(line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_PART)
    forms.add(repr(value)[1:-1])
    forms.add(repr(value.encode("utf-8", "backslashreplace"))[2:-1])
    return {f for f in forms if f}


def masked(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value, in any of its obvious forms, replaced by
    ``***``; the longest form first, so a value's prefix cannot leave its tail."""
    forms: set[str] = set()
    for value in secrets:
        if value:
            forms |= _forms(value)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def header_refusal(header: str, value: str, source: str) -> str | None:
    """Why ``value`` cannot be sent as header ``header`` (a newline, a control
    character, not ASCII), naming the header and where the value came from
    (``source``), never the value; None when it can."""
    if not value.isascii() or not value.isprintable():
        why = (
            "contains a line break (a trailing newline, as `kubectl create secret "
            "--from-file` or `echo` leave, counts)"
            if "\n" in value or "\r" in value
            else "is not printable ASCII"
        )
        return (
            f"webhook header {header!r} ({source}): its value {why}; HTTP headers cannot carry it"
        )
    return None


def secret_refs(suite: Suite) -> tuple[SecretRef, ...]:
    """The Secrets a suite's pod reads (env valueFrom.secretKeyRef, envFrom secretRef,
    secret volumes), each once, in the order the spec names them: what the operator
    reads by name to mask (docs/design.md §8)."""
    refs: dict[SecretRef, None] = {}
    for var in suite.env:
        ref = (var.value_from or {}).get("secretKeyRef")
        if ref:
            refs[(str(ref["name"]), str(ref["key"]))] = None
    for source in suite.pod.env_from:
        if "secretRef" in source:
            refs[(str(source["secretRef"]["name"]), None)] = None
    for volume in suite.pod.volumes:
        if "secret" in volume.source:
            refs[(str(volume.source["secret"]["secretName"]), None)] = None
    return tuple(refs)


def masked_run(run: SuiteRun, secrets: Iterable[str]) -> SuiteRun:
    """``run`` with every secret value masked in what greenloop keeps and writes of it:
    the RunnerError evidence (pod logs, messages) and each test's message, details and
    output. Test ids and names are kept: a rerun selects by them."""
    values = tuple(v for v in secrets if v)
    if not values:
        return run
    tests = tuple(
        replace(
            t,
            message=masked(t.message, values),
            details=masked(t.details, values),
            output=masked(t.output, values),
        )
        for t in run.tests
    )
    error = None if run.error is None else masked(run.error, values)
    return replace(run, tests=tests, error=error)


def withheld_run(run: SuiteRun, why: str) -> SuiteRun:
    """``run`` with nothing of what it printed: the Secrets it read could not be read to
    mask them, so its texts cannot be shown. A RunnerError a rerun cannot change until
    a person fixes the access (``why`` says which Secret)."""
    return replace(run, tests=(), error=why, exit_code=None, permanent=True)
