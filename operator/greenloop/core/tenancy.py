"""Whose rights greenloop uses for an object (docs/design.md §8, "Tenancy").

Every API call greenloop makes *for* a StagingValidation - creating its Jobs and
ConfigMaps, reading the Secret its webhook names, patching and watching its target
workloads, reading pod logs and Events as evidence - is made as the object's
ServiceAccount through Kubernetes impersonation, the model Flux uses for multi-tenancy.
The operator's own identity keeps only what it needs for itself. These are the rules:
which account acts (`acting_account`), what the API server is told
(`impersonation_headers`), and which condition a refusal becomes (`refusal_condition`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FORBIDDEN",
    "NO_SERVICE_ACCOUNT",
    "Account",
    "Refusal",
    "acting_account",
    "groups_of",
    "impersonation_headers",
    "no_account_message",
    "refusal_condition",
    "verb_of",
]

#: Stalled reasons (the condition's `reason`): no account to act as; the account may not.
NO_SERVICE_ACCOUNT = "NoServiceAccount"
FORBIDDEN = "Forbidden"


@dataclass(frozen=True, slots=True)
class Account:
    """A ServiceAccount, always in the object's own namespace (never another's)."""

    namespace: str
    name: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def __str__(self) -> str:
        return f"serviceaccount {self.namespace}/{self.name}"


def acting_account(namespace: str, named: str | None, default: str | None) -> Account | None:
    """The account greenloop acts as for an object in `namespace`: the one its spec names
    (`spec.serviceAccountName`), else the platform's default (`--default-service-account`),
    else none - and with none, nothing is done for the object (`NoServiceAccount`).
    Never the operator's own identity: that would give every tenant the operator's rights."""
    name = named or default
    return Account(namespace, name) if name else None


def no_account_message() -> str:
    return (
        "no ServiceAccount to act as: set spec.serviceAccountName, or have the platform "
        "start the operator with --default-service-account (chart value "
        "tenancy.defaultServiceAccount)"
    )


def impersonation_headers(account: Account) -> dict[str, str]:
    """The headers that make the API server authorize a request as `account`.

    Only `Impersonate-User`: for a ServiceAccount's username the API server itself adds
    the groups the account's own token carries (`system:serviceaccounts`,
    `system:serviceaccounts:<ns>`, `system:authenticated`; its impersonation filter's
    fixed mapping), so a RoleBinding to a group applies as it would to the account.
    Sending `Impersonate-Group` would make the operator need `impersonate` on `groups`,
    which lets its identity claim any group, `system:masters` too."""
    return {"Impersonate-User": account.username}


def groups_of(account: Account) -> tuple[str, ...]:
    """The groups the API server gives `account` when it is impersonated."""
    return (
        "system:serviceaccounts",
        f"system:serviceaccounts:{account.namespace}",
        "system:authenticated",
    )


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def verb_of(method: str, *, named: bool, watch: bool = False) -> str:
    """The RBAC verb a request is authorized as (the API server's own mapping)."""
    if method.upper() == "GET":
        if watch:
            return "watch"
        return "get" if named else "list"
    return _VERBS.get(method.upper(), method.lower())


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the API server refused the acting account (HTTP 403)."""

    account: Account
    verb: str
    resource: str  # "deployments.apps", "secrets", "pods/log"
    name: str = ""  # empty for list/create of a collection

    def __str__(self) -> str:
        base, _, sub = self.resource.partition("/")  # "pods/log" reads pods/NAME/log
        target = "/".join(p for p in (base, self.name, sub) if p)
        return f"{self.account} cannot {self.verb} {target}"


def refusal_condition(refusal: Refusal | None) -> tuple[str, str]:
    """The Stalled condition's (reason, message) for what stopped greenloop acting for an
    object: no account (`None`) is `NoServiceAccount`; a 403 for the account is
    `Forbidden`, naming account, verb and resource. Either way nothing more is done for
    the object until its spec or the account's rights change - a tenant cannot make the
    operator do what the tenant's own account may not (issue 19, probes 1 and 3)."""
    if refusal is None:
        return NO_SERVICE_ACCOUNT, no_account_message()
    return FORBIDDEN, (
        f"{refusal}: grant it to the account (config/rbac/tenant-role.yaml) or name "
        "another in spec.serviceAccountName"
    )
