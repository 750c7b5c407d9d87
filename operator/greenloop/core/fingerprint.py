"""The environment fingerprint: what the targets ran when the tests ran (docs/design.md §8).

For each target workload, the pod-template hash of its current revision and, for each
container of that revision's pods, the image it declares and the digest its pods run
(``imageID``). Results gathered on one fingerprint say nothing about another: when the
fingerprint changes under a round without greenloop having redeployed, the round
starts over (``TargetChanged``), and ``Passed`` names the fingerprint it was proven on.

Pure: the operator shell observes the pods (``greenloop.k8s.fingerprint``) and hands the
engine a :class:`Fingerprint`; local mode has none.

An empty ``image_id`` means "not known yet" (a pod still pulling, or a fake node that
reports none), not "different": :func:`changes` compares digests only where both sides
know them, and :func:`refine` fills them in as pods start, so a rollout that finishes
its pulls never looks like somebody else's change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MAX_ENTRIES",
    "NONE",
    "Entry",
    "Fingerprint",
    "changes",
    "fingerprint",
    "missing",
    "refine",
    "short_id",
]

MAX_ENTRIES = 40  # kept in state; status shows at most 20 (status.MAX_FINGERPRINT)
MAX_FIELD = 300  # characters of one image reference or digest
DIGEST_CHARS = 12
MAX_CHANGES = 4  # workloads named in a TargetChanged message
#: The digest of a fingerprint with no entries (no target found): a word a person reads
#: as "nothing there", not the hash of nothing (e3b0c44298fc).
NONE = "none"
#: The digest an empty fingerprint had before NONE, still read from a stored state.
EMPTY_HASH = hashlib.sha256(b"").hexdigest()[:DIGEST_CHARS]


@dataclass(frozen=True, slots=True, order=True)
class Entry:
    workload: str  # "Deployment/backend"
    revision: str  # pod-template-hash / updateRevision / controller-revision-hash
    container: str
    image: str  # as the pod template declares it
    image_id: str = ""  # the digest the pod runs; "" while not known

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.workload, self.revision, self.container, self.image)

    @property
    def shown_id(self) -> str:
        """The digest, or the image reference when none is known (kwok, a pending pod)."""
        return self.image_id or self.image


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Sorted, de-duplicated entries and a short digest over them."""

    entries: tuple[Entry, ...]
    digest: str
    more: int = 0  # entries left out past MAX_ENTRIES

    def describe(self, limit: int = 3) -> str:
        """`3f2a9c1b0d4e (Deployment/backend app=demo-app:v2@sha256:ab12…)`: for messages."""
        parts = [_entry_text(e) for e in self.entries[:limit]]
        left = len(self.entries) - limit + self.more
        if left > 0:
            parts.append(f"{left} more")
        return f"{self.digest} ({'; '.join(parts) or 'no workloads found'})"


def fingerprint(entries: Iterable[Entry], *, more: int = 0) -> Fingerprint:
    """Normalize: clip, sort, drop duplicates, drop an unknown digest where a known one
    exists for the same image of the same revision; then digest what is kept."""
    clipped = {
        Entry(
            _clip(e.workload), _clip(e.revision), _clip(e.container), _clip(e.image),
            _clip(e.image_id),
        )
        for e in entries
    }  # fmt: skip
    known = {e.key for e in clipped if e.image_id}
    kept = sorted(e for e in clipped if e.image_id or e.key not in known)
    more += max(len(kept) - MAX_ENTRIES, 0)
    kept = kept[:MAX_ENTRIES]
    h = hashlib.sha256()
    for e in kept:
        for part in (e.workload, e.revision, e.container, e.image, e.image_id):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        h.update(b"\n")
    return Fingerprint(tuple(kept), h.hexdigest()[:DIGEST_CHARS] if kept else NONE, more)


def missing(fp: Fingerprint, workloads: Iterable[str]) -> tuple[str, ...]:
    """The workloads (``Deployment/backend``) the fingerprint has no entry for: each
    workload that exists has at least its template's containers, so these do not exist.
    Unknown when entries were left out past MAX_ENTRIES: then none is named."""
    if fp.more:
        return ()
    present = {e.workload for e in fp.entries}
    return tuple(w for w in workloads if w not in present)


def changes(old: Fingerprint, new: Fingerprint) -> tuple[str, ...]:
    """What differs, one line per workload (empty: the same environment). A digest only
    counts where both sides know one: "not pulled yet" is not a change."""
    workloads = sorted({e.workload for e in (*old.entries, *new.entries)})
    out: list[str] = []
    for workload in workloads:
        before = [e for e in old.entries if e.workload == workload]
        after = [e for e in new.entries if e.workload == workload]
        if _same(before, after):
            continue
        out.append(f"{workload}: {_side(before)} → {_side(after)}")
    if len(out) > MAX_CHANGES:
        out = [*out[:MAX_CHANGES], f"and {len(out) - MAX_CHANGES} more workloads"]
    return tuple(out)


def refine(old: Fingerprint, new: Fingerprint) -> Fingerprint:
    """``new`` with the digests ``old`` knew and ``new`` does not (yet): call it only when
    :func:`changes` found none."""
    known: dict[tuple[str, str, str, str], list[str]] = {}
    for e in old.entries:
        if e.image_id:
            known.setdefault(e.key, []).append(e.image_id)
    new_known = {e.key for e in new.entries if e.image_id}
    entries: list[Entry] = []
    for e in new.entries:
        if not e.image_id and e.key not in new_known and e.key in known:
            entries.extend(Entry(*e.key, image_id=i) for i in known[e.key])
        else:
            entries.append(e)
    return fingerprint(entries, more=new.more)


def short_id(image_id: str) -> str:
    """`sha256:` and the first 12 hex digits of a digest; anything else as it is."""
    _, at, digest = image_id.rpartition("@")
    digest = digest if at else image_id
    algo, colon, hexes = digest.partition(":")
    if colon and len(hexes) > DIGEST_CHARS:
        return f"{algo}:{hexes[:DIGEST_CHARS]}"
    return digest


def _same(before: list[Entry], after: list[Entry]) -> bool:
    if {e.key for e in before} != {e.key for e in after}:
        return False
    for key in {e.key for e in before}:
        old_ids = {e.image_id for e in before if e.key == key and e.image_id}
        new_ids = {e.image_id for e in after if e.key == key and e.image_id}
        if old_ids and new_ids and old_ids != new_ids:
            return False
    return True


def _side(entries: list[Entry]) -> str:
    if not entries:
        return "absent"
    revisions = sorted({e.revision for e in entries if e.revision})
    images = sorted({_image_text(e) for e in entries})
    text = ", ".join(images)
    if revisions:
        text += f" (pod template {', '.join(revisions)})"
    return text


def _image_text(e: Entry) -> str:
    shown = f"{e.container}={e.image}"
    if e.image_id:
        shown += f"@{short_id(e.image_id)}"
    return shown


def _entry_text(e: Entry) -> str:
    return f"{e.workload} {_image_text(e)}"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 1] + "…"
