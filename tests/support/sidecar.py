"""The test playing each Job's results sidecar on a kwok cluster (no containers run there).

For every resumed greenloop Job whose pod the Job controller has made, it writes the
JUnit XML that `answer` returns and uploads it with that pod's own bound token (a
TokenRequest bound to the pod, what the kubelet would mount) through the real upload code
(`greenloop.k8s.upload`, what `greenloop report upload` runs), each in a thread of its
own: an upload outlives an operator that is killed while answering it and retries until
the restarted operator answers, as the real sidecar does.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenloop.core import crd
from greenloop.k8s.upload import Upload, UploadResult, upload
from tests.support.pod_tokens import pod_for, pod_token
from tools.cluster.controlplane import ControlPlane
from tools.cluster.procs import wait_until

PASS = '<testcase classname="{c}" name="{n}"/>'
FAIL = '<testcase classname="{c}" name="{n}"><failure message="{m}">{m}</failure></testcase>'


def junit(*cases: str) -> bytes:
    return f'<testsuite name="s" tests="{len(cases)}">{"".join(cases)}</testsuite>\n'.encode()


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = obj["metadata"].get("labels") or {}
    return labels


def core_answer(job: dict[str, Any]) -> bytes:
    """The suite `core`'s results: an HTTP 503 in iteration 1 (which calls for a
    redeploy; `health` passes), passing after it."""
    if labels_of(job)["greenloop.dev/iteration"] == "1":
        return junit(
            PASS.format(c="core", n="health"),
            FAIL.format(c="core", n="websocket", m="HTTP 503 Service Unavailable"),
        )
    return junit(PASS.format(c="core", n="websocket"))


def two_suite_answer(job: dict[str, Any]) -> bytes:
    """The results of a two-suite demo (critical: 2 passing; core: `core_answer`), for
    the Job the sidecar plays."""
    if labels_of(job)["greenloop.dev/suite"] == "critical":
        return junit(PASS.format(c="crit", n="login"), PASS.format(c="crit", n="cart"))
    return core_answer(job)


def two_suite_demo(
    name: str,
    suites: tuple[str, ...] = ("critical", "core"),
    *,
    tests: int = 4,
    health_url: str | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """The StagingValidation `two_suite_answer` answers: `suites` (critical P1, core P2)
    expecting `tests` tests, the Deployment `backend` its target (with `health_url`
    checked when given), at most 4 iterations, no flake retries. No pods on kwok: the
    test plays the sidecar."""
    target: dict[str, Any] = {"workloads": [{"kind": "Deployment", "name": "backend"}]}
    if health_url is not None:
        target["health"] = {"url": health_url, "timeoutSeconds": 60}
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name, **metadata},
        "spec": {
            "serviceAccountName": "no-such-account",
            "expectedTests": tests,
            "suites": [
                {"name": s, "command": ["pytest"], "image": "localhost/e2e:dev", "priority": p}
                for s, p in zip(suites, ("P1", "P2"), strict=False)
            ],
            "target": target,
            "policy": {"maxIterations": 4, "flakeRetries": 0},
        },
    }


@dataclass
class Snapshot:
    """One `kubectl get` of what the test looks at: the objects of one namespace."""

    validations: dict[str, dict[str, Any]]
    jobs: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    cp: ControlPlane

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
            pods=items("/api/v1/namespaces/{ns}/pods"),
            cp=cp,
        )

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.validations.get(name, {}).get("status") or {}
        return status

    def token(self, job: dict[str, Any]) -> str | None:
        """The token the Job's pod's sidecar would hold (no pod yet: serve it next time)."""
        pod = pod_for(self.cp, job["metadata"]["namespace"], job, self.pods)
        return None if pod is None else pod_token(self.cp, pod)


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
    """Upload `xml` once, as `job`'s sidecar would: when the Job controller has made its
    pod (polled every 20 ms, up to 60 s), with that pod's bound token; raise unless the
    results are stored. For one Job at a time (the benches)."""
    name = job["metadata"]["name"]
    selector = f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"

    def pod() -> dict[str, Any] | None:
        items = cp.get_json("pods", "-n", namespace, "-l", selector)["items"]
        return pod_for(cp, namespace, job, items)

    found = wait_until("the Job's pod", pod, timeout=60.0, interval=0.02)
    token_file = xml.with_suffix(".token")
    token_file.write_text(pod_token(cp, found))
    result = upload(
        Upload(
            file=xml, url=url, namespace=namespace, job=name, token_file=token_file,
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
            token_file = self.tmp / f"{name}.token"
            token_file.write_text(token)
            job_upload = Upload(
                file=xml, url=self.url or url_of(job), namespace=self.namespace, job=name,
                token_file=token_file, deadline_seconds=self.deadline,
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
