"""What the operator benches (bench/operator_latency.py, bench/target_change.py,
bench/operator_scale.py) run on: a fresh control plane with kwok's node and `greenloop
operator` watching a namespace (for operator_scale, as its own user, audited); the p95 they
report beside the median; and what operator_scale reads: the audit log, the operator's
/metrics and /proc."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from greenloop.core.upload_proof import AUDIENCE
from tools.cluster.controlplane import ControlPlane
from tools.cluster.crds import ensure_crd
from tools.cluster.operator import Operator, on_loopback
from tools.cluster.procs import free_ports, wait_until


@contextlib.contextmanager
def kwok_operator(namespace: str) -> Iterator[tuple[ControlPlane, Operator, Path]]:
    """The control plane, the operator for `namespace` (created) and a scratch folder,
    once kopf lists and watches; all of it stopped and removed afterwards."""
    cp = ControlPlane.start(controllers=True, build=False)
    tmp = Path(tempfile.mkdtemp(prefix="greenloop-bench-"))
    try:
        cp.create_namespace(namespace)
        with on_loopback(cp, namespace, tmp / "operator.log") as op:
            time.sleep(3)  # let kopf list and watch before the first object
            yield cp, op, tmp
    finally:
        cp.stop()
        shutil.rmtree(cp.workdir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


# ---- bench/operator_scale.py: the operator's own API requests, and its event loop ------

OPERATOR_USER = "greenloop-bench-operator"
AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: [{OPERATOR_USER}]
- level: None
"""


class AuditedControlPlane(ControlPlane):
    """The test control plane with an audit log of the operator's user only: one line
    per request it makes (a watch: when it starts and when it ends, one auditID)."""

    @property
    def operator_audit_log(self) -> Path:
        # Not ControlPlane's own `audit_log` (every user's requests, when started with
        # `audit`): this one keeps the operator's user only.
        return self.workdir / "operator-audit.log"

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        if name == "kube-apiserver":
            policy = self.workdir / "audit-policy.yaml"
            policy.write_text(AUDIT_POLICY)
            args = (
                *args, f"--audit-policy-file={policy}",
                f"--audit-log-path={self.operator_audit_log}",
                # never rotated (the default rotates at 100 MB: N=1000 writes more)
                "--audit-log-maxsize=1000000",
            )  # fmt: skip
        super()._spawn(name, *args, env=env)


@contextlib.contextmanager
def audited_kwok_operator(namespace: str) -> Iterator[tuple[AuditedControlPlane, Operator, Path]]:
    """As `kwok_operator`, but the operator runs as its own user (in system:masters, so
    RBAC allows what the admin would) and the API server keeps an audit log of that user:
    the bench's own reads and writes, as admin, are not in it."""
    cp = cast(AuditedControlPlane, AuditedControlPlane.start(controllers=True, build=False))
    tmp = Path(tempfile.mkdtemp(prefix="greenloop-bench-"))
    try:
        cp.create_namespace(namespace)
        ensure_crd(cp)
        kubeconfig = cp.kubeconfig_for_user(OPERATOR_USER, ["system:masters"])
        port, metrics_port = free_ports(2)
        op = Operator(
            cp, namespace, tmp / "operator.log", f"http://127.0.0.1:{port}", port,
            metrics_port=metrics_port, args=("--kubeconfig", str(kubeconfig)),
        )  # fmt: skip
        op.start()
        try:
            wait_until("the operator's /metrics", lambda: scrape(op), timeout=120, interval=0.2)
            time.sleep(3)  # let kopf list and watch before the first object
            yield cp, op, tmp
        finally:
            op.kill(signal.SIGTERM)
    finally:
        cp.stop()
        shutil.rmtree(cp.workdir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def audited_requests(log: Path) -> list[tuple[float, str, str]]:
    """(epoch seconds received, verb, resource) of each request in the audit log, once
    per auditID (a watch is logged when it starts and again when it ends)."""
    seen: dict[str, tuple[float, str, str]] = {}
    with log.open() as lines:
        for line in lines:
            event = json.loads(line)
            if event["auditID"] in seen:
                continue
            received = datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()
            resource = (event.get("objectRef") or {}).get("resource", event.get("requestURI", ""))
            seen[event["auditID"]] = (received, event["verb"], resource)
    return sorted(seen.values())


def scrape(op: Operator) -> str:
    """The operator's /metrics ("" while it does not answer yet)."""
    try:
        url = f"http://127.0.0.1:{op.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as r:
            text: str = r.read().decode()
    except OSError:
        return ""
    return text


def histogram(text: str, name: str) -> dict[float, float]:
    """The cumulative bucket counts of an unlabelled histogram, by upper bound."""
    buckets: dict[float, float] = {}
    prefix = f'{name}_bucket{{le="'
    for line in text.splitlines():
        if line.startswith(prefix):
            bound, _, value = line[len(prefix) :].partition('"} ')
            buckets[float(bound)] = float(value)
    return buckets


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Prometheus's histogram_quantile over the observations between two scrapes: linear
    within the bucket the quantile falls in (its resolution is that bucket's width)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def process_figures(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, resident MiB) of a process on this machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    rss_kib = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return cpu, rss_kib / 1024


def api_request(
    cp: ControlPlane, method: str, path: str, body: dict[str, Any] | None = None,
    content_type: str = "application/json",
) -> tuple[int, bytes]:  # fmt: skip
    """One request to the API server as admin (the bench's own: not in the audit log)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(cp.server + path, data=data, method=method)
    req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, context=cp._ssl_context(), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def watch_events(
    cp: ControlPlane, path: str, on_event: Callable[[str, dict[str, Any]], None],
    stop: threading.Event,
) -> None:  # fmt: skip
    """List `path` (every item an ADDED), then watch it from that resourceVersion, until
    `stop`; a watch that ends or breaks is listed again. Plain JSON lines: the bench's
    own decoding must not take the cores the operator is measured on."""
    while not stop.is_set():
        try:
            code, body = api_request(cp, "GET", path)
            if code != 200:
                time.sleep(0.5)
                continue
            listed = json.loads(body)
            for item in listed["items"]:
                on_event("ADDED", item)
            version = listed["metadata"]["resourceVersion"]
            url = f"{cp.server}{path}?watch=1&resourceVersion={version}&timeoutSeconds=60"
            with urllib.request.urlopen(url, context=cp._ssl_context(), timeout=90) as stream:
                for line in stream:
                    if stop.is_set():
                        return
                    event = json.loads(line)
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        on_event(event["type"], event["object"])
        except (OSError, ValueError):
            time.sleep(0.2)


#: The account the bench's stand-in pods run as (it exists; the Jobs' account does not,
#: so the Job controller makes no pods of its own on kwok).
STAND_IN_ACCOUNT = "greenloop-bench-sidecar"


def ensure_stand_in_account(cp: ControlPlane, namespace: str) -> None:
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": STAND_IN_ACCOUNT}}
    code, body = api_request(cp, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", account)
    if code not in (201, 409):
        raise RuntimeError(f"create account {STAND_IN_ACCOUNT}: HTTP {code}: {body[:300]!r}")


def stand_in_token(cp: ControlPlane, namespace: str, job: dict[str, Any]) -> str:
    """What the Job's pod's sidecar would hold: a pod owned by the Job (held Pending by
    a scheduling gate, as tests/support/pod_tokens.pod_for makes one) and a token bound
    to it for the results endpoint's audience - by two API requests, not kubectl, so
    1,000 of them do not take the cores the operator is measured on."""
    jm = job["metadata"]
    name = f"{jm['name'][:50]}-stand-in"
    labels = {
        **(job["spec"]["template"]["metadata"].get("labels") or {}),
        **((job["spec"].get("selector") or {}).get("matchLabels") or {}),
    }
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": jm["name"], "uid": jm["uid"],
             "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "serviceAccountName": STAND_IN_ACCOUNT,
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "schedulingGates": [{"name": "greenloop.dev/test-stand-in"}],
            "containers": [{"name": "suite", "image": "localhost/e2e:dev"}],
        },
    }
    pods = f"/api/v1/namespaces/{namespace}/pods"
    code, body = api_request(cp, "POST", pods, pod)
    if code == 409:
        code, body = api_request(cp, "GET", f"{pods}/{name}")
    if code not in (200, 201):
        raise RuntimeError(f"stand-in pod {name}: HTTP {code}: {body[:300]!r}")
    made = json.loads(body)
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [AUDIENCE],
            "expirationSeconds": 3600,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name,
                               "uid": made["metadata"]["uid"]},
        },
    }  # fmt: skip
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{STAND_IN_ACCOUNT}/token"
    code, body = api_request(cp, "POST", path, request)
    if code != 201:
        raise RuntimeError(f"token for {name}: HTTP {code}: {body[:300]!r}")
    token: str = json.loads(body)["status"]["token"]
    return token
