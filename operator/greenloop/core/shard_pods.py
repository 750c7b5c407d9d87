"""Which pod ran each index of a sharded run, for the report (docs/design.md §4.1).

A shard's report line names its pod, also when the pod was deleted before its index was
read (killed, evicted): then the watch store no longer has it, and an Indexed Job's pod
names are not derivable (``<job>-<index>-<random>``, from the Job controller's
generateName). So the operator keeps the last pod seen for each index on the Job, in
one annotation (``index=name`` pairs): it survives an operator restart, as the Job's
other notes do, and the store that holds the Job holds it. Budget: at most
``MAX_SHARDS`` (64) pairs of a 63-character pod name, about 4.3 KB of the Job's 256 KB
for annotations.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["last_seen", "noted_pods"]


def noted_pods(text: str | None) -> dict[int, str]:
    """The annotation's pairs; anything malformed in it is skipped (it is a note)."""
    out: dict[int, str] = {}
    for pair in (text or "").split(","):
        index, _, name = pair.strip().partition("=")
        if index.isdigit() and name:
            out[int(index)] = name
    return out


def last_seen(
    noted: Mapping[int, str], seen: Mapping[int, str]
) -> tuple[dict[int, str], str | None]:
    """The pod last seen for each index: those seen now over those noted before; and the
    annotation's new text when it changed (None: nothing to write)."""
    names = {**noted, **seen}
    if names == dict(noted):
        return names, None
    return names, ",".join(f"{i}={names[i]}" for i in sorted(names))
