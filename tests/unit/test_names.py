"""Names of the objects the operator creates: deterministic, DNS-safe, at most 63 chars."""

from __future__ import annotations

import re

import pytest

from greenloop.core.names import MAX_NAME, NameKind, job_name, object_name, report_name

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
UID = "6f1c2a9e-0d3b-4c8e-9a51-2f7d9b1e4c00"


@pytest.mark.parametrize(
    ("name", "iteration", "suite", "starts"),
    [
        ("checkout", 1, "critical", "checkout-1-critical-"),
        ("Checkout.Staging", 2, "e2e_API", "checkout-staging-2-e2e-api-"),
        ("a" * 253, 7, "critical", "a" * 54),
        ("x", 12, "s" * 63, "x-12-" + "s" * 49),
        ("---", 1, "...", "1-"),
        ("..", 3, "", "3-"),
    ],
    ids=["plain", "cleaned", "long object name", "long suite", "all punctuation", "empty suite"],
)
def test_a_job_name_is_a_dns_label_of_at_most_63_chars(
    name: str, iteration: int, suite: str, starts: str
) -> None:
    got = job_name(name, UID, iteration, suite)
    assert len(got) <= MAX_NAME
    assert DNS_LABEL.match(got), got
    assert got.startswith(starts), got
    assert got == job_name(name, UID, iteration, suite)  # deterministic


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("a" * 80, UID, 1, "critical"), ("a" * 80 + "b", UID, 1, "critical")),
        (("checkout", UID, 1, "e2e_api"), ("checkout", UID, 1, "e2e-api")),
        (("checkout", UID, 1, "critical"), ("checkout", "other-uid", 1, "critical")),
        (("checkout", UID, 1, "critical"), ("checkout", UID, 2, "critical")),
    ],
    ids=["differ only past the cut", "differ only in cleaned chars", "another uid", "iteration"],
)
def test_different_inputs_give_different_names(
    a: tuple[str, str, int, str], b: tuple[str, str, int, str]
) -> None:
    assert job_name(*a) != job_name(*b)


def test_a_jobs_secret_and_results_have_their_own_names() -> None:
    names = {object_name(kind, "checkout", UID, 1, "critical") for kind in NameKind}
    assert len(names) == len(NameKind)
    assert object_name(NameKind.SECRET, "checkout", UID, 1, "critical").startswith(
        "checkout-1-critical-secret-"
    )


def test_the_report_config_map_name_depends_on_the_object_only() -> None:
    assert report_name("checkout", UID).startswith("checkout-report-")
    assert report_name("checkout", UID) != report_name("checkout", "another")
    assert len(report_name("c" * 253, UID)) <= MAX_NAME
