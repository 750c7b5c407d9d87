"""The test playing each Job's results sidecar on a kwok cluster (no pods run there).

For every resumed greenloop Job in a namespace it writes the JUnit XML that `answer`
returns and uploads it with that Job's own token through the real upload code
(`greenloop.k8s.upload`, what `greenloop report upload` runs), each in a thread of its
own: an upload outlives an operator that is killed while answering it and retries until
the restarted operator answers, as the real sidecar does.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenloop.core import crd
from greenloop.k8s.upload import Upload, UploadResult, upload
from tools.cluster.controlplane import ControlPlane
from tools.cluster.procs import wait_until

PASS = '<testcase classname="{c}" name="{n}"/>'
FAIL = '<testcase classname="{c}" name="{n}"><failure message="{m}">{m}</failure></testcase>'


def junit(*cases: str) -> bytes:
    return f'<testsuite name="s" tests="{len(cases)}">{"".join(cases)}</testsuite>\n'.encode()


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = obj["metadata"].get("labels") or {}
    return labels


def two_suite_answer(job: dict[str, Any]) -> bytes:
    """The results of a two-suite demo (critical: 2 passing; core: a 503 in iteration 1,
    passing after the redeploy), for the Job the sidecar plays."""
    labels = labels_of(job)
    if labels["greenloop.dev/suite"] == "critical":
        return junit(PASS.format(c="crit", n="login"), PASS.format(c="crit", n="cart"))
    if labels["greenloop.dev/iteration"] == "1":
        return junit(
            PASS.format(c="core", n="health"),
            FAIL.format(c="core", n="websocket", m="HTTP 503 Service Unavailable"),
        )
    return junit(PASS.format(c="core", n="websocket"))


@dataclass
class Snapshot:
    """One `kubectl get` of what the test looks at: the objects of one namespace."""

    validations: dict[str, dict[str, Any]]
    jobs: list[dict[str, Any]]
    secrets: list[dict[str, Any]]

    @classmethod
    def take(cls, cp: ControlPlane, namespace: str) -> Snapshot:
        # Straight to the API server: a kubectl process per look costs more CPU than
        # the operator does, and the tests poll several namespaces at once.
        def items(path: str) -> list[dict[str, Any]]:
            code, body = cp.get(path.format(ns=namespace), timeout=20.0)
            if code != 200:
                raise AssertionError(f"GET {path}: HTTP {code}: {body[:300]}")
            listed: list[dict[str, Any]] = json.loads(body)["items"]
            return listed

        return cls(
            validations={
                o["metadata"]["name"]: o
                for o in items(f"/apis/{crd.API_VERSION}/namespaces/{{ns}}/{crd.PLURAL}")
            },
            jobs=items("/apis/batch/v1/namespaces/{ns}/jobs"),
            secrets=items("/api/v1/namespaces/{ns}/secrets"),
        )

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.validations.get(name, {}).get("status") or {}
        return status

    def token(self, job: dict[str, Any]) -> str | None:
        """The token in the Secret this Job owns (none yet: serve it next time)."""
        for secret in self.secrets:
            owners = secret["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == job["metadata"]["uid"] for o in owners):
                return base64.b64decode(secret["data"]["token"]).decode()
        return None


def url_of(job: dict[str, Any]) -> str:
    """The results URL the Job's own sidecar was given (the operator that made it)."""
    for container in job["spec"]["template"]["spec"].get("initContainers") or ():
        args = list(container.get("command") or ()) + list(container.get("args") or ())
        if "--url" in args:
            return str(args[args.index("--url") + 1])
    raise AssertionError(f"Job {job['metadata']['name']} has no sidecar with --url")


def upload_when_resumed(
    cp: ControlPlane, namespace: str, job: dict[str, Any], xml: Path, url: str
) -> None:
    """Upload `xml` once, as `job`'s sidecar would: when its token Secret exists and the
    Job is resumed (polled every 20 ms, up to 60 s); raise unless the results are stored.
    For one Job at a time (the benches): the Secret is found by the object's uid."""
    name = job["metadata"]["name"]
    uid = labels_of(job)["greenloop.dev/validation-uid"]

    def secret() -> dict[str, Any] | None:
        items = cp.get_json("secrets", "-n", namespace, "-l", f"greenloop.dev/validation-uid={uid}")
        ready = cp.get_json("job", name, "-n", namespace)["spec"].get("suspend")
        return items["items"][0] if items["items"] and ready is False else None

    token = wait_until("the Job's token", secret, timeout=60.0, interval=0.02)["data"]["token"]
    result = upload(
        Upload(
            file=xml, url=url, namespace=namespace, job=name,
            token=base64.b64decode(token).decode(), job_uid=job["metadata"]["uid"],
            deadline_seconds=30,
        )
    )  # fmt: skip
    if not result.ok:
        raise RuntimeError(result.message)


@dataclass
class Sidecar:
    namespace: str
    url: str | None  # None: each Job's own (url_of), as its real sidecar would use
    answer: Callable[[dict[str, Any]], bytes | None]
    tmp: Path
    deadline: float = 60.0
    threads: dict[str, threading.Thread] = field(default_factory=dict)
    results: dict[str, UploadResult] = field(default_factory=dict)
    logs: dict[str, io.StringIO] = field(default_factory=dict)

    def serve(self, seen: Snapshot) -> int:
        """Start an upload for each resumed Job not served yet; how many were started."""
        started = 0
        for job in seen.jobs:
            name = job["metadata"]["name"]
            if name in self.threads or job["spec"].get("suspend"):
                continue
            token = seen.token(job)
            body = self.answer(job) if token else None
            if token is None or body is None:
                continue
            xml = self.tmp / f"{name}.xml"
            xml.write_bytes(body)
            job_upload = Upload(
                file=xml, url=self.url or url_of(job), namespace=self.namespace, job=name,
                token=token, job_uid=job["metadata"]["uid"], deadline_seconds=self.deadline,
            )  # fmt: skip
            self.logs[name] = io.StringIO()
            thread = threading.Thread(
                target=self._send, args=(name, job_upload), name=f"upload {name}", daemon=True
            )
            self.threads[name] = thread
            thread.start()
            started += 1
        return started

    def _send(self, name: str, job_upload: Upload) -> None:
        self.results[name] = upload(job_upload, log=self.logs[name])

    def failed(self) -> list[str]:
        """The uploads that ended without storing their results, with what they said."""
        return [
            f"{name}: {result.message} after {result.attempts} attempts\n"
            f"{self.logs[name].getvalue()[-600:]}"
            for name, result in self.results.items()
            if not result.ok
        ]

    def finish(self, timeout: float = 90.0) -> None:
        """Wait (bounded) for the uploads still running."""
        for thread in self.threads.values():
            thread.join(timeout)
