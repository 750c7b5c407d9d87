"""The one module that talks to the Kubernetes API (docs/design.md §8).

Everything else in `greenloop.k8s` decides or builds plain dicts; this module sends
them. It goes through `kubernetes.aio` (so no call blocks kopf's event loop) but
speaks raw JSON: objects in and out are the dicts the API server documents, not the
client's generated models, so builders and tests share one shape.

Errors are typed by what a caller does about them: `NotFound` (absent: create it, or
report the missing target), `Conflict` (409: already exists → adopt; stale
resourceVersion → re-read and re-decide), `Forbidden` (403 for an impersonated
account: the object is Stalled naming it), anything else `ApiError`. Waiting is done
with watches bounded by a deadline, never a polling loop.

`gw.acting_as(account)` is the same connection speaking as an object's ServiceAccount
(Kubernetes impersonation, docs/design.md §8 "Tenancy"): what greenloop does *for* an
object goes through it, so the API server checks the tenant's rights, not the operator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes.aio import client as kclient
from kubernetes.aio import config as kconfig

from greenloop.core import crd
from greenloop.core.tenancy import Account, Refusal, impersonation_headers, verb_of

__all__ = [
    "ApiError",
    "Conflict",
    "Forbidden",
    "Gateway",
    "NotFound",
    "Resource",
    "resource_for",
]

log = logging.getLogger("greenloop.gateway")

#: Per-request ceiling; a watch has its own (its server-side timeoutSeconds + a margin).
REQUEST_TIMEOUT = 30.0
MERGE_PATCH = "application/merge-patch+json"
#: Lists and watches of metadata alone (the API server's PartialObjectMetadata): what
#: the store keeps of a results ConfigMap, without its up-to-700-KiB body.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
#: Observers of what the API answered: (kind, object) for every object a read or write
#: returned, so a watch-fed store is never behind the API for an object greenloop read
#: or wrote (docs/design.md §8.1).
Observer = Callable[[str, Mapping[str, Any]], object]
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """The API server refused or failed a request; `status` is the HTTP code."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409: the object exists already (create) or was changed since it was read."""


class Forbidden(ApiError):
    """403 for an impersonated account: `refusal` names the account, verb and resource."""

    def __init__(self, refusal: Refusal, reason: str, message: str) -> None:
        super().__init__(403, reason, message)
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class Resource:
    """Where a kind lives in the REST API."""

    group_version: str  # "v1", "apps/v1", crd.API_VERSION
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        return base


_RESOURCES: Mapping[tuple[str, str], Resource] = {
    ("v1", "ConfigMap"): Resource("v1", "configmaps"),
    ("v1", "Secret"): Resource("v1", "secrets"),
    ("v1", "Pod"): Resource("v1", "pods"),
    ("v1", "Event"): Resource("v1", "events"),
    ("v1", "Service"): Resource("v1", "services"),
    ("v1", "Namespace"): Resource("v1", "namespaces", namespaced=False),
    ("batch/v1", "Job"): Resource("batch/v1", "jobs"),
    ("apps/v1", "Deployment"): Resource("apps/v1", "deployments"),
    ("apps/v1", "StatefulSet"): Resource("apps/v1", "statefulsets"),
    ("apps/v1", "DaemonSet"): Resource("apps/v1", "daemonsets"),
    ("apps/v1", "ReplicaSet"): Resource("apps/v1", "replicasets"),
    ("apps/v1", "ControllerRevision"): Resource("apps/v1", "controllerrevisions"),
    (crd.API_VERSION, crd.KIND): Resource(crd.API_VERSION, crd.PLURAL),
    # kopf's peering objects (--peering): read to keep a standby's units idle.
    ("kopf.dev/v1", "KopfPeering"): Resource("kopf.dev/v1", "kopfpeerings"),
    ("kopf.dev/v1", "ClusterKopfPeering"): Resource(
        "kopf.dev/v1", "clusterkopfpeerings", namespaced=False
    ),
}
_BY_KIND = {kind: res for (_, kind), res in _RESOURCES.items()}


def resource_for(kind: str, api_version: str | None = None) -> Resource:
    """The REST location of a kind greenloop handles; KeyError for any other."""
    if api_version is not None:
        return _RESOURCES[(api_version, kind)]
    return _BY_KIND[kind]


def refusal_of(account: Account, method: str, path: str, *, watch: bool = False) -> Refusal:
    """What a refused request asked for, read from its REST path: `GET
    /apis/apps/v1/namespaces/ta/deployments/victim-app` is `get deployments.apps/victim-app`."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    group = ""
    if parts[:1] == ["apis"] and len(parts) >= 3:
        group, parts = parts[1], parts[3:]
    else:  # /api/v1/...
        parts = parts[2:]
    if len(parts) >= 2 and parts[0] == "namespaces":
        parts = parts[2:] if len(parts) > 2 else parts
    plural = parts[0] if parts else ""
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    resource = plural + (f".{group}" if group else "") + (f"/{sub}" if sub else "")
    verb = verb_of(method, named=bool(name), watch=watch)
    return Refusal(account, verb, resource, name)


def _error(status: int, body: bytes, refused: Refusal | None = None) -> ApiError:
    try:
        doc = json.loads(body)
        reason, message = str(doc.get("reason", "")), str(doc.get("message", ""))
    except (ValueError, AttributeError):
        reason, message = "", body[:500].decode(errors="replace")
    if status == 403 and refused is not None and "cannot impersonate" not in message:
        # (The operator itself not allowed to impersonate is its installation's fault,
        # not the tenant's: an ApiError, logged, not the object's condition.)
        return Forbidden(refused, reason or "Forbidden", message)
    if status == 404:
        return NotFound(status, reason or "NotFound", message)
    if status == 409:
        return Conflict(status, reason or "Conflict", message)
    return ApiError(status, reason or "Error", message)


class Gateway:
    """An API connection: `await Gateway.connect(kubeconfig)`, then `await gw.close()`."""

    def __init__(
        self, api: kclient.ApiClient, account: Account | None = None, *, owner: bool = True
    ) -> None:
        self._api = api
        self.observers: list[Observer] = []
        self.account = account  # None: the operator's own identity
        self._owner = owner  # closes the connection (an acting_as view does not)

    def _seen(self, kind: str, obj: Mapping[str, Any]) -> None:
        for observer in self.observers:
            observer(kind, obj)

    def acting_as(self, account: Account) -> Gateway:
        """The same connection, every request made as `account` (impersonation): the
        operator's identity needs only `impersonate` on it, and a 403 is `Forbidden`.
        Its writes feed the same observers (the store), as the operator's own do."""
        view = Gateway(self._api, account, owner=False)
        view.observers = self.observers
        return view

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Gateway:
        """From a kubeconfig file (or $KUBECONFIG / ~/.kube/config); in a pod without
        one, from the pod's service account."""
        configuration = kclient.Configuration()
        try:
            await kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration, persist_config=False
            )
        except (kconfig.ConfigException, FileNotFoundError, TypeError):
            if kubeconfig is not None:
                raise
            kconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        return cls(kclient.ApiClient(configuration))

    async def close(self) -> None:
        if not self._owner:
            return
        await self._api.close()  # type: ignore[no-untyped-call]
        # aiohttp closes TLS transports on the next loop iterations; give them those,
        # or they are closed by the garbage collector with a ResourceWarning.
        await asyncio.sleep(0.05)

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- raw requests -------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float = REQUEST_TIMEOUT,
    ) -> Any:
        headers = {"Content-Type": content_type, "Accept": accept}
        method_, url, headers_, body_, _ = await self._api.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        if query:
            url += "?" + urlencode(query)
        if self.account is not None:
            headers_ = {**headers_, **impersonation_headers(self.account)}
        return await self._api.call_api(method_, url, headers_, body_, _request_timeout=timeout)

    def _refused(self, method: str, path: str, *, watch: bool = False) -> Refusal | None:
        return None if self.account is None else refusal_of(self.account, method, path, watch=watch)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One API call; the decoded JSON answer, or a typed ApiError."""
        response = await self._send(method, path, query=query, body=body, content_type=content_type)
        data: bytes = await response.read()
        if not 200 <= response.status < 300:
            raise _error(response.status, data, self._refused(method, path))
        doc = json.loads(data) if data else {}
        if not isinstance(doc, dict):
            raise ApiError(response.status, "BadResponse", "the API server did not send an object")
        return doc

    # ---- objects ------------------------------------------------------------------

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        obj = await self.request("GET", resource_for(kind).path(namespace, name))
        self._seen(kind, obj)
        return obj

    async def find(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.get(kind, namespace, name)
        except NotFound:
            return None

    async def list(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """`limit` caps the items the API server sends (the rest stay unread)."""
        query: dict[str, str] = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if limit is not None:
            query["limit"] = str(limit)
        found = await self.request("GET", resource_for(kind).path(namespace), query=query or None)
        for item in found.get("items") or ():
            self._seen(kind, item)
        return found

    async def list_page(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        metadata_only: bool = False,
        limit: int = 500,
        cont: str | None = None,
    ) -> dict[str, Any]:
        """One page of a list (`metadata.continue` names the next), for a store's
        list-then-watch: not observed, the store replaces its contents with it."""
        query = {"limit": str(limit)}
        if label_selector:
            query["labelSelector"] = label_selector
        if cont:
            query["continue"] = cont
        path = resource_for(kind).path(namespace)
        accept = METADATA_LIST if metadata_only else "application/json"
        response = await self._send("GET", path, query=query, accept=accept)
        data: bytes = await response.read()
        if not 200 <= response.status < 300:
            raise _error(response.status, data)
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ApiError(response.status, "BadResponse", "the API server did not send a list")
        return doc

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create; raises Conflict when it exists (the caller adopts what it finds)."""
        meta = obj["metadata"]
        res = resource_for(str(obj["kind"]), str(obj["apiVersion"]))
        made = await self.request("POST", res.path(meta.get("namespace")), body=dict(obj))
        self._seen(str(obj["kind"]), made)
        return made

    async def create_or_adopt(self, obj: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """(object, created): an existing object of the same name is returned as is."""
        try:
            return await self.create(obj), True
        except Conflict:
            meta = obj["metadata"]
            return await self.get(str(obj["kind"]), meta.get("namespace"), meta["name"]), False

    async def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """`dry_run`: authorized, admitted and validated, but not stored - asks whether the
        patch would be allowed without doing it."""
        path = resource_for(kind).path(namespace, name)
        if subresource:
            path += f"/{subresource}"
        query = {"dryRun": "All"} if dry_run else None
        patched = await self.request(
            "PATCH", path, query=query, body=dict(patch), content_type=content_type
        )
        if not dry_run:
            self._seen(kind, patched)
        return patched

    async def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str,
    ) -> dict[str, Any]:
        """A merge patch of /status that the API server applies only if the object is
        still at `resource_version`; Conflict (409) when someone wrote in between —
        re-read and re-decide (docs/design.md §8)."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": dict(status)}
        return await self.patch(kind, namespace, name, body, subresource="status")

    async def delete(
        self, kind: str, namespace: str | None, name: str, *, propagation: str = "Background"
    ) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        with contextlib.suppress(NotFound):
            await self.request("DELETE", resource_for(kind).path(namespace, name), body=body)

    async def pod_log(
        self, namespace: str, pod: str, container: str, *, lines: int = 20, limit: int = 8192
    ) -> str:
        """The container's last `lines` log lines (at most `limit` bytes); "" when the
        kubelet has none to give (no node, container never started) or when the role
        may not read it - that one is logged, naming the missing permission."""
        path = resource_for("Pod").path(namespace, pod) + "/log"
        query = {"container": container, "tailLines": str(lines), "limitBytes": str(limit)}
        response = await self._send("GET", path, query=query, accept="*/*")
        data: bytes = await response.read()
        if response.status == 403 and self.account is not None:
            raise _error(403, data, self._refused("GET", path))
        if response.status in (401, 403):
            log.warning(
                "the log of pod %s/%s is left out of the evidence: %s "
                "(the account needs `get` on pods/log: config/rbac/tenant-role.yaml)",
                namespace, pod, _error(response.status, data),
            )  # fmt: skip
        if response.status != 200:
            return ""
        return data.decode(errors="replace")

    # ---- waiting --------------------------------------------------------------------

    async def watch(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        timeout: float = 60.0,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) for one object until `timeout` seconds have passed."""
        query = {
            "watch": "true",
            "fieldSelector": f"metadata.name={name}",
            "timeoutSeconds": str(max(1, int(timeout))),
            "allowWatchBookmarks": "false",
        }
        if resource_version:
            query["resourceVersion"] = resource_version
        response = await self._send(
            "GET", resource_for(kind).path(namespace), query=query, timeout=timeout + 10
        )
        try:
            if response.status != 200:
                refused = self._refused("GET", resource_for(kind).path(namespace, name), watch=True)
                raise _error(response.status, await response.read(), refused)
            async for event in _events(response.response.content):
                yield event
        finally:
            response.response.release()

    async def watch_kind(
        self,
        kind: str,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        metadata_only: bool = False,
        timeout: float = 300.0,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) for every object of a kind in a namespace (every
        namespace when None) changed after `resource_version`, BOOKMARKs included, until
        the API server ends the watch (after `timeout` seconds). A watch the API server
        cannot serve from that version raises ApiError 410 (the caller lists again)."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(max(1, int(timeout))),
            "allowWatchBookmarks": "true",
        }
        if label_selector:
            query["labelSelector"] = label_selector
        accept = METADATA_ONLY if metadata_only else "application/json"
        response = await self._send(
            "GET", resource_for(kind).path(namespace), query=query, accept=accept,
            timeout=timeout + 30,
        )  # fmt: skip
        try:
            if response.status != 200:
                raise _error(response.status, await response.read())
            async for event in _events(response.response.content):
                yield event
        finally:
            response.response.release()

    async def wait_for(
        self,
        kind: str,
        namespace: str,
        name: str,
        done: Callable[[dict[str, Any]], bool],
        *,
        timeout: float,
    ) -> dict[str, Any] | None:
        """Read the object, then watch it until `done(obj)` holds; the last object seen
        (None if it never existed). Returns when done or after `timeout` seconds; a
        broken or expired watch is re-opened from a fresh read, within the deadline."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while True:
            last = await self.find(kind, namespace, name) or last
            if last is not None and done(last):
                return last
            left = deadline - time.monotonic()
            if left <= 0:
                return last
            rv = (last or {}).get("metadata", {}).get("resourceVersion")
            try:
                async with asyncio.timeout(left):
                    async for kind_, obj in self.watch(
                        kind, namespace, name, resource_version=rv, timeout=left
                    ):
                        if kind_ in ("ADDED", "MODIFIED"):
                            last = obj
                            if done(obj):
                                return obj
            except TimeoutError:
                return last
            except ApiError as err:
                if err.status != 410:  # 410 Gone: the resourceVersion expired; re-read
                    raise


async def _events(stream: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A watch response's (type, object) events, one JSON line each, until it ends; an
    ERROR event (410 Gone, say) raises ApiError with its code."""
    while True:
        line = await stream.readline()
        if not line:
            return
        event = json.loads(line)
        if event.get("type") == "ERROR":
            obj = event.get("object") or {}
            raise ApiError(
                int(obj.get("code", 500)),
                str(obj.get("reason", "WatchError")),
                str(obj.get("message", "")),
            )
        yield str(event["type"]), event["object"]
