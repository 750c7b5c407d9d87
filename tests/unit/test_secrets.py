"""Secret values never reach a message (core/secrets.py): masking an outside error's text,
refusing a header value HTTP cannot carry without quoting it."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from greenloop.core import spec
from greenloop.core.engine.events import SuiteRun
from greenloop.core.model import Outcome, Suite, TestResult
from greenloop.core.secrets import (
    header_refusal,
    masked,
    masked_run,
    secret_refs,
    withheld_run,
)
from greenloop.k8s.gateway import ApiError
from greenloop.k8s.masking import Unreadable, suite_secret_values

SECRET = "hunter2-s3cr3t\n"


@pytest.mark.parametrize(
    ("text", "secrets", "want"),
    [
        ("Illegal header value b'hunter2-s3cr3t\\n'", [SECRET], "Illegal header value b'***'"),
        ("sent hunter2-s3cr3t to x", [SECRET], "sent *** to x"),
        ("value 'line-one\\nline-two'", ["line-one\nline-two"], "value '***'"),
        ("got line-one only", ["line-one\nline-two"], "got *** only"),
        ("b'caf\\xc3\\xa9!'", ["café!"], "b'***'"),
        ("nothing secret here", [SECRET], "nothing secret here"),
        ("empty values mask nothing", ["", "  "], "empty values mask nothing"),
        ("tok tokentail", ["tok", "tokentail"], "*** ***"),
        ("a b", ["a\nb"], "a b"),  # lines too short to mask on their own
    ],
)
def test_masked_hides_each_value_in_its_obvious_forms(
    text: str, secrets: list[str], want: str
) -> None:
    assert masked(text, secrets) == want


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("hunter2\n", "line break"),
        ("a\r\nInjected: yes", "line break"),
        ("tab\there", "not printable ASCII"),
        ("café", "not printable ASCII"),
        ("nul\x00", "not printable ASCII"),
    ],
)
def test_a_header_value_http_cannot_carry_is_refused_without_quoting_it(
    value: str, why: str
) -> None:
    got = header_refusal("Authorization", value, "Secret ta/db-creds")
    assert got is not None
    assert why in got and "'Authorization'" in got and "Secret ta/db-creds" in got
    assert value.strip() not in got


def test_a_printable_header_value_is_sent() -> None:
    assert header_refusal("Authorization", "Bearer abc.def", "env DEPLOY_TOKEN") is None


# ---------------------------------------------------------------------------
# The Secrets a suite's pod reads (docs/design.md §8)


def _suite(**fields: Any) -> Suite:
    obj = {
        "apiVersion": spec.API_VERSION,
        "kind": spec.KIND,
        "metadata": {"name": "demo"},
        "spec": {"suites": [{"name": "core", "command": ["t"], "image": "e2e:1", **fields}]},
    }
    return spec.from_object(obj, mode="operator").spec.suites[0]


def test_secret_refs_are_every_secret_the_pod_reads_once() -> None:
    suite = _suite(
        env=[
            {"name": "A", "value": "literal"},
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "U", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "x"}}},
        ],
        envFrom=[{"secretRef": {"name": "all"}}, {"configMapRef": {"name": "cfg"}}],
        volumes=[{"name": "tls", "mountPath": "/tls", "secret": {"secretName": "certs"}}],
    )
    assert secret_refs(suite) == (("creds", "token"), ("all", None), ("certs", None))


def test_masked_run_masks_evidence_and_test_texts_but_keeps_ids() -> None:
    failed = TestResult(
        id="t::test_login",
        name="test_login",
        classname="t",
        outcome=Outcome.FAILED,
        message="401 for token hunter2-s3cr3t",
        details="Authorization: Bearer hunter2-s3cr3t",
        output="env TOKEN=hunter2-s3cr3t",
    )
    run = SuiteRun(suite="core", tests=(failed,), error="last log lines: hunter2-s3cr3t")
    out = masked_run(run, [SECRET, ""])
    assert out.error == "last log lines: ***"
    (test,) = out.tests
    assert (test.message, test.details, test.output) == (
        "401 for token ***",
        "Authorization: Bearer ***",
        "env TOKEN=***",
    )
    assert test.id == failed.id and test.outcome is Outcome.FAILED
    assert masked_run(run, []) is run


class _Secrets:
    """A gateway that answers GETs of Secrets and records them; it has no list."""

    def __init__(self, secrets: dict[str, dict[str, str]]) -> None:
        self.secrets = secrets
        self.reads: list[tuple[str, str, str]] = []

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((kind, namespace, name))
        data = self.secrets.get(name)
        if data is None:
            return None
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_suite_secret_values_reads_each_secret_by_name() -> None:
    gw = _Secrets({"creds": {"token": "t0k3n", "other": "not-read"}, "all": {"a": "A1", "b": "B2"}})
    suite = _suite(
        env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
        envFrom=[{"secretRef": {"name": "all"}}, {"secretRef": {"name": "missing"}}],
    )
    values = asyncio.run(suite_secret_values(gw, "team", suite))  # type: ignore[arg-type]
    assert values == ("t0k3n", "A1", "B2")
    assert gw.reads == [("Secret", "team", n) for n in ("creds", "all", "missing")]


class _Forbidden(_Secrets):
    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        raise ApiError(403, "Forbidden", f"secrets {name!r} is forbidden")


def test_a_secret_that_cannot_be_read_withholds_the_run() -> None:
    suite = _suite(envFrom=[{"secretRef": {"name": "creds"}}])
    with pytest.raises(Unreadable) as caught:
        asyncio.run(suite_secret_values(_Forbidden({}), "team", suite))  # type: ignore[arg-type]
    why = str(caught.value)
    assert why == (
        "Secret team/creds could not be read to mask its values (403 Forbidden);"
        " the run's output is withheld"
    )
    run = SuiteRun(suite="core", tests=(TestResult("t", "t", "c", Outcome.PASSED),), error=None)
    out = withheld_run(run, why)
    assert (out.tests, out.error, out.permanent) == ((), why, True)
