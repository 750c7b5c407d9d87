"""The report ConfigMap as the API server receives it: owned by its object, within a
ConfigMap's 1 MiB, never half a character."""

from __future__ import annotations

import pytest

from greenloop.core import crd
from greenloop.k8s.jobs import Owner
from greenloop.k8s.reports import MAX_REPORT, build_report_configmap

OWNER = Owner(name="checkout", namespace="staging", uid="4f1c2d3e-0000-4000-8000-00000000abcd")


def test_the_report_is_owned_by_its_object_so_it_goes_with_it() -> None:
    cm = build_report_configmap(OWNER, "checkout-report-1a2b3c4d", "# greenloop report\n")
    assert cm["metadata"] == {
        "name": "checkout-report-1a2b3c4d",
        "namespace": "staging",
        "labels": {"app.kubernetes.io/managed-by": "greenloop"},
        "ownerReferences": [
            {
                "apiVersion": crd.API_VERSION,
                "kind": crd.KIND,
                "name": "checkout",
                "uid": OWNER.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    assert cm["data"] == {"report.md": "# greenloop report\n"}


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("x" * MAX_REPORT, "x" * MAX_REPORT),
        ("x" * (MAX_REPORT + 1), "x" * MAX_REPORT + "\n\n(truncated)\n"),
        # A 3-byte character across the limit is dropped whole, not cut in half.
        ("x" * (MAX_REPORT - 1) + "€", "x" * (MAX_REPORT - 1) + "\n\n(truncated)\n"),
    ],
    ids=["at the limit", "one byte over", "a character across the limit"],
)
def test_a_report_too_big_for_a_configmap_is_cut_saying_so(text: str, kept: str) -> None:
    data = build_report_configmap(OWNER, "r", text)["data"]["report.md"]
    assert data == kept
    assert len(data.encode()) < 1024 * 1024
