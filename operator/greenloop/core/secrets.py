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

__all__ = ["MASK", "header_refusal", "masked"]

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
