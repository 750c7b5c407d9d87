"""The pod last seen for each index of a sharded run, kept on its Job (core/shard_pods.py):
written only when a new pod appears, read back whatever else the annotation holds. The
shell (k8s/suites.py) on a real API server, restarted between the pod's deletion and
the verdict: tests/integration/test_operator_shard_pods.py."""

from __future__ import annotations

import pytest

from greenloop.core.shard_pods import last_seen, noted_pods
from greenloop.core.shards import MAX_SHARDS


@pytest.mark.parametrize(
    ("noted", "seen", "names", "text"),
    [
        ({}, {}, {}, None),
        ({}, {0: "j-0-a", 1: "j-1-b"}, {0: "j-0-a", 1: "j-1-b"}, "0=j-0-a,1=j-1-b"),
        ({0: "j-0-a", 1: "j-1-b"}, {0: "j-0-a", 1: "j-1-b"}, {0: "j-0-a", 1: "j-1-b"}, None),
        # a deleted pod: its name is kept; nothing to write
        ({0: "j-0-a", 1: "j-1-b"}, {0: "j-0-a"}, {0: "j-0-a", 1: "j-1-b"}, None),
        # an index's new pod (a disruption replaced it): the newest is named
        ({1: "j-1-b"}, {1: "j-1-c"}, {1: "j-1-c"}, "1=j-1-c"),
        ({10: "j-10-a"}, {2: "j-2-a"}, {2: "j-2-a", 10: "j-10-a"}, "2=j-2-a,10=j-10-a"),
    ],
    ids=["none", "first-seen", "unchanged", "deleted", "replaced", "sorted"],
)
def test_the_last_pod_of_each_index_and_a_write_only_when_it_changes(
    noted: dict[int, str], seen: dict[int, str], names: dict[int, str], text: str | None
) -> None:
    assert last_seen(noted, seen) == (names, text)
    if text is not None:
        assert noted_pods(text) == names


@pytest.mark.parametrize("text", [None, "", "x", "=a", "a=b", "1=", " 3=p ,junk"])
def test_a_malformed_note_is_skipped_not_fatal(text: str | None) -> None:
    assert noted_pods(text) == ({3: "p"} if text and "3=p" in text else {})


def test_the_note_fits_its_budget_at_the_most_shards() -> None:
    names = {i: f"{'j' * 53}-{i}-abcde"[:63] for i in range(MAX_SHARDS)}
    _, text = last_seen({}, names)
    assert text is not None and len(text) <= 4500
