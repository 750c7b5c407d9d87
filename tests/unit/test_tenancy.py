"""Whose rights greenloop uses for an object (greenloop.core.tenancy, docs/design.md §8
"Tenancy"), and the gateway that speaks as that account (greenloop.k8s.gateway)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from greenloop.core.status import stalled_reported, stalled_status
from greenloop.core.tenancy import (
    FORBIDDEN,
    NO_SERVICE_ACCOUNT,
    Account,
    Refusal,
    acting_account,
    groups_of,
    impersonation_headers,
    refusal_condition,
    verb_of,
)
from greenloop.k8s.gateway import ApiError, Forbidden, Gateway, refusal_of

TESTS = Account("ta", "tests")

# ---- acting_account: the object's account, else the platform's, else none ------------


@pytest.mark.parametrize(
    ("named", "default", "expected"),
    [
        ("tests", None, Account("ta", "tests")),
        ("tests", "greenloop", Account("ta", "tests")),  # the object's own comes first
        (None, "greenloop", Account("ta", "greenloop")),
        ("", "greenloop", Account("ta", "greenloop")),
        (None, None, None),
        (None, "", None),
    ],
)
def test_the_acting_account_is_the_objects_then_the_platforms_then_none(
    named: str | None, default: str | None, expected: Account | None
) -> None:
    assert acting_account("ta", named, default) == expected


def test_the_account_is_always_in_the_objects_namespace() -> None:
    account = acting_account("ta", "tests", None)
    assert account is not None and account.username == "system:serviceaccount:ta:tests"


# ---- impersonation_headers -------------------------------------------------------------


def test_only_the_user_is_impersonated_its_groups_come_from_the_api_server() -> None:
    # Impersonate-Group would need `impersonate` on groups: any group, system:masters too.
    assert impersonation_headers(TESTS) == {"Impersonate-User": "system:serviceaccount:ta:tests"}
    assert groups_of(TESTS) == (
        "system:serviceaccounts",
        "system:serviceaccounts:ta",
        "system:authenticated",
    )


# ---- refusal_condition: which Stalled condition for which refusal -----------------------


def test_no_account_is_stalled_no_service_account_naming_both_ways_out() -> None:
    reason, message = refusal_condition(None)
    assert reason == NO_SERVICE_ACCOUNT == "NoServiceAccount"
    assert "spec.serviceAccountName" in message and "--default-service-account" in message


def test_a_refusal_is_stalled_forbidden_naming_account_verb_and_resource() -> None:
    reason, message = refusal_condition(Refusal(TESTS, "patch", "deployments.apps", "victim-app"))
    assert reason == FORBIDDEN == "Forbidden"
    assert message.startswith("serviceaccount ta/tests cannot patch deployments.apps/victim-app")


@pytest.mark.parametrize(
    ("method", "path", "watch", "expected"),
    [
        ("PATCH", "/apis/apps/v1/namespaces/ta/deployments/victim-app", False,
         "serviceaccount ta/tests cannot patch deployments.apps/victim-app"),
        ("GET", "/api/v1/namespaces/ta/secrets/db-creds", False,
         "serviceaccount ta/tests cannot get secrets/db-creds"),
        ("POST", "/apis/batch/v1/namespaces/ta/jobs", False,
         "serviceaccount ta/tests cannot create jobs.batch"),
        ("GET", "/api/v1/namespaces/ta/pods", False, "serviceaccount ta/tests cannot list pods"),
        ("GET", "/api/v1/namespaces/ta/pods/p-1/log", False,
         "serviceaccount ta/tests cannot get pods/p-1/log"),
        ("DELETE", "/apis/batch/v1/namespaces/ta/jobs/j", False,
         "serviceaccount ta/tests cannot delete jobs.batch/j"),
        ("GET", "/apis/apps/v1/namespaces/ta/deployments/victim-app", True,
         "serviceaccount ta/tests cannot watch deployments.apps/victim-app"),
    ],
    ids=["patch", "get", "create", "list", "log", "delete", "watch"],
)  # fmt: skip
def test_a_refused_request_is_named_from_its_path(
    method: str, path: str, watch: bool, expected: str
) -> None:
    assert str(refusal_of(TESTS, method, path, watch=watch)).startswith(expected)


def test_a_log_refusal_names_the_subresource() -> None:
    refusal = refusal_of(TESTS, "GET", "/api/v1/namespaces/ta/pods/p-1/log")
    assert (refusal.verb, refusal.resource, refusal.name) == ("get", "pods/log", "p-1")


@pytest.mark.parametrize(
    ("method", "named", "watch", "verb"),
    [("GET", True, False, "get"), ("GET", False, False, "list"), ("GET", True, True, "watch"),
     ("POST", False, False, "create"), ("PATCH", True, False, "patch"),
     ("DELETE", True, False, "delete"), ("PUT", True, False, "update")],
)  # fmt: skip
def test_verbs_are_the_api_servers(method: str, named: bool, watch: bool, verb: str) -> None:
    assert verb_of(method, named=named, watch=watch) == verb


# ---- the stalled status: written once per generation and cause --------------------------


def test_a_stalled_status_is_reported_once_per_generation_and_message() -> None:
    status = stalled_status(3, FORBIDDEN, "serviceaccount ta/tests cannot patch x", 0.0)
    assert status["phase"] == "Stalled"
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", FORBIDDEN)
    assert stalled_reported(status, 3, FORBIDDEN, "serviceaccount ta/tests cannot patch x")
    assert not stalled_reported(status, 4, FORBIDDEN)  # a new spec is looked at again
    assert not stalled_reported(status, 3, FORBIDDEN, "serviceaccount ta/tests cannot get y")
    assert not stalled_reported(status, 3, NO_SERVICE_ACCOUNT)


# ---- the gateway: the headers it sends, the error a 403 becomes --------------------------


class _Response:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self._body = json.dumps(body).encode()

    async def read(self) -> bytes:
        return self._body


class _Api:
    """kubernetes.aio's ApiClient as far as Gateway uses it: records what is sent."""

    def __init__(self, status: int = 200, message: str = "no") -> None:
        self.status = status
        self.message = message
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self.closed = False

    async def param_serialize(self, **kw: Any) -> tuple[Any, ...]:
        return (
            kw["method"],
            "https://api" + kw["resource_path"],
            dict(kw["header_params"]),
            kw["body"],
            None,
        )

    async def call_api(
        self, method: str, url: str, headers: dict[str, str], body: Any, **_: Any
    ) -> _Response:
        self.sent.append((method, url, dict(headers)))
        if self.status == 403:
            return _Response(403, {"reason": "Forbidden", "message": self.message})
        return _Response(self.status, {"metadata": {"generation": 2}})

    async def close(self) -> None:
        self.closed = True


def _gateway(api: _Api) -> Gateway:
    return Gateway(cast(Any, api))


def test_the_operators_own_requests_carry_no_impersonation() -> None:
    api = _Api()
    asyncio.run(_gateway(api).get("Deployment", "ta", "victim-app"))
    assert not any(k.lower().startswith("impersonate") for k in api.sent[0][2])


def test_requests_for_an_object_are_made_as_its_account() -> None:
    api = _Api()
    actor = _gateway(api).acting_as(TESTS)
    patch = {"spec": {}}
    asyncio.run(actor.patch("Deployment", "ta", "victim-app", patch, dry_run=True))
    method, url, headers = api.sent[0]
    assert headers["Impersonate-User"] == "system:serviceaccount:ta:tests"
    assert (method, url) == (
        "PATCH",
        "https://api/apis/apps/v1/namespaces/ta/deployments/victim-app?dryRun=All",
    )


def test_a_403_for_the_account_is_forbidden_naming_what_it_asked() -> None:
    actor = _gateway(_Api(403)).acting_as(TESTS)
    with pytest.raises(Forbidden) as refused:
        asyncio.run(actor.patch("Deployment", "ta", "victim-app", {}))
    assert str(refused.value.refusal) == (
        "serviceaccount ta/tests cannot patch deployments.apps/victim-app"
    )


def test_a_403_for_the_operator_itself_stays_an_api_error() -> None:
    # The operator's own identity lacking a right is an installation fault, not the
    # tenant's: it is not turned into the object's Stalled condition.
    with pytest.raises(ApiError) as err:
        asyncio.run(_gateway(_Api(403)).get("Deployment", "ta", "victim-app"))
    assert not isinstance(err.value, Forbidden)


def test_the_operator_not_allowed_to_impersonate_is_its_own_fault_not_the_tenants() -> None:
    message = (
        'serviceaccounts "tests" is forbidden: User "system:serviceaccount:greenloop-system:'
        'greenloop" cannot impersonate resource "serviceaccounts" in API group "" in the '
        'namespace "ta"'
    )
    actor = _gateway(_Api(403, message)).acting_as(TESTS)
    with pytest.raises(ApiError) as err:
        asyncio.run(actor.patch("Deployment", "ta", "victim-app", {}))
    assert not isinstance(err.value, Forbidden)


def test_a_log_refused_to_the_account_is_forbidden_not_an_empty_log() -> None:
    actor = _gateway(_Api(403)).acting_as(TESTS)
    with pytest.raises(Forbidden):
        asyncio.run(actor.pod_log("ta", "p-1", "suite"))


def test_an_acting_view_leaves_the_shared_connection_open() -> None:
    api = _Api()
    gw = _gateway(api)
    asyncio.run(gw.acting_as(TESTS).close())
    assert not api.closed
