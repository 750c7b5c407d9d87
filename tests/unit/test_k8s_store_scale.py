"""The operator's per-event work does not grow with the number of objects (issue 17): a
watch event, a tick's select, a relist and what an event wakes cost the same per object
at N objects as at 10·N, so a round of N objects is linear in N.

Counted, never timed: the Python lines greenloop runs for N objects doing one step each
(tests/support/scale_steps.py), and for 10·N. Linear work is 10 times as many lines; a
pass over every object per step would be 100 times. bench/store_scale.py prints the same
counts, and CPU times, as ratios.
"""

from __future__ import annotations

import asyncio

import pytest

from greenloop.k8s.store import Store, matches_string
from tests.support.scale_steps import PACKAGE, STORE_STEPS, UNIT_STEPS, Builder, filled

from .counting import lines_of

N = 100
#: 10·N objects may cost at most this many times N's (linear: 10; quadratic: 100).
BOUND = 12.0


STEPS = {**STORE_STEPS, **UNIT_STEPS}


@pytest.mark.parametrize("build", STEPS.values(), ids=STEPS.keys())
def test_ten_times_the_objects_is_at_most_about_ten_times_the_work(build: Builder) -> None:
    once, tenfold = lines_of(build(N), PACKAGE), lines_of(build(10 * N), PACKAGE)
    assert tenfold / once <= BOUND, f"{once:,} lines for {N} objects, {tenfold:,} for {10 * N}"


def test_a_select_from_the_index_finds_what_a_scan_finds() -> None:
    """The index answers as a pass over every object would (the steps above count it)."""
    s = filled(30, namespaces=3)
    s._synced[("Pod", "ns-1")] = asyncio.Event()
    s._synced[("Pod", "ns-1")].set()
    for selector in ("job-name=job-4", "app=app-7,pod-template-hash=1", "pod-template-hash",
                     "pod-template-hash=1,app notin (app-1)", "", "job-name=job-5"):  # fmt: skip
        found = asyncio.run(s.select("Pod", "ns-1", selector))
        scan = sorted(
            (o for (ns, _), o in s.objects["Pod"].items() if ns == "ns-1"
             and matches_string(selector, o["metadata"].get("labels") or {})),
            key=lambda o: str(o["metadata"]["name"]),
        )  # fmt: skip
        assert found == scan, selector
    assert names(s, "ns-1", "job-name=job-4") == ["job-4-pod"]


def test_the_index_follows_a_relabel_a_deletion_and_a_relist() -> None:
    s = filled(3)
    pod = s.get("Pod", "ns-0", "job-1-pod")
    assert pod is not None
    relabelled = {**pod, "metadata": {**pod["metadata"], "resourceVersion": "2",
                                      "labels": {"job-name": "job-9"}}}  # fmt: skip
    s.seen("Pod", relabelled)
    assert names(s, "ns-0", "job-name=job-1") == []
    assert names(s, "ns-0", "job-name=job-9") == ["job-1-pod"]
    s.deleted("Pod", relabelled)
    assert names(s, "ns-0", "job-name=job-9") == []
    s.replace("Pod", "ns-0", [relabelled], "5")  # the list has only it: the rest are gone
    assert names(s, "ns-0", "") == ["job-1-pod"]
    assert names(s, "ns-0", "job-name=job-9") == ["job-1-pod"]


def names(s: Store, namespace: str, selector: str) -> list[str]:
    return [str(o["metadata"]["name"]) for o in s.matching("Pod", namespace, selector)]
