"""Names for the objects the operator creates (Jobs, Secrets, ConfigMaps).

Every name is derived from (object name, object uid, iteration, suite) alone, so a
restarted operator finds the objects it made and creating one twice is a no-op
(docs/design.md §3). Names are DNS-1123 labels (lowercase alphanumerics and '-', at
most 63 characters, so they also fit a Job's pod label): readable parts first, then a
short hash of the full input, which keeps them distinct when the readable parts had to
be cut or cleaned.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum

__all__ = ["MAX_NAME", "NameKind", "dns_label", "job_name", "object_name", "report_name"]

MAX_NAME = 63
_HASH_LEN = 8
_NOT_ALLOWED = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")


class NameKind(StrEnum):
    """What a name is for; part of the hash, so a Job and its Secret never collide."""

    JOB = "job"
    SECRET = "secret"
    RESULTS = "results"  # the ConfigMap holding one Job's uploaded results
    REPORT = "report"  # the ConfigMap holding the Markdown report
    STATE = "state"  # the ConfigMap holding engine state, if it lives outside status


def _clean(part: str) -> str:
    part = _NOT_ALLOWED.sub("-", part.lower())
    return _DASHES.sub("-", part).strip("-")


def dns_label(*parts: str, key: str) -> str:
    """``parts`` joined by '-', cleaned to a DNS label, cut so that '-' + an 8-character
    hash of ``key`` fits in 63 characters. Deterministic: same input, same name."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:_HASH_LEN]
    room = MAX_NAME - _HASH_LEN - 1
    readable = "-".join(p for p in (_clean(p) for p in parts) if p)
    readable = readable[:room].rstrip("-")
    return f"{readable or 'gl'}-{digest}"


def object_name(kind: NameKind, name: str, uid: str, iteration: int, suite: str) -> str:
    """The name of a per-suite, per-iteration object: ``<name>-<iteration>-<suite>-<hash>``
    (plus ``-secret`` / ``-results`` for those kinds when there is room)."""
    key = f"{kind.value}\0{uid}\0{name}\0{iteration}\0{suite}"
    parts = [name, str(iteration), suite]
    if kind is not NameKind.JOB:
        parts.append(kind.value)
    return dns_label(*parts, key=key)


def job_name(name: str, uid: str, iteration: int, suite: str) -> str:
    return object_name(NameKind.JOB, name, uid, iteration, suite)


def report_name(name: str, uid: str, kind: NameKind = NameKind.REPORT) -> str:
    """The per-object ConfigMap name (the report, or the state): ``<name>-<kind>-<hash>``."""
    return dns_label(name, kind.value, key=f"{kind.value}\0{uid}\0{name}")
