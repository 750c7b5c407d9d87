"""Pure builders for what one suite run is in a cluster: a Job and its selection
ConfigMap (docs/design.md §4, §8).

No API calls here: each function turns plain inputs into the dict the API server
takes, so the shape is tested without a cluster and the gateway only sends it.
Every name comes from `greenloop.core.names`, derived from (object, uid, iteration,
suite) alone, so a restarted operator finds the Job it made instead of making a twin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from greenloop.core import crd
from greenloop.core.contract import (
    SELECT_ARGS_ENV,
    Selected,
    ShardVars,
    per_index_selection,
    selected,
    suite_env,
)
from greenloop.core.model import EnvVar, PodSettings, Suite
from greenloop.core.names import NameKind, dns_label, object_name
from greenloop.core.pod_command import (
    job_command,
    kube_literal,
    shard_args_key,
    shard_select_args,
    shard_wrapper_command,
)
from greenloop.core.pod_listing import listing_wrapper_command, lists_in_pod
from greenloop.core.pod_reports import gathering_command
from greenloop.core.shards import SHARD_INDEX_ENV, Shard
from greenloop.core.upload_proof import AUDIENCE
from greenloop.k8s.upload_contract import (  # the sidecar's half lives there, light
    TOKEN_DIR,
    TOKEN_FILE,
    TOKEN_PATH,
    UPLOAD_DEADLINE_SECONDS,
)

__all__ = [
    "JUNIT_PATH",
    "LABEL_ITERATION",
    "LABEL_MANAGED_BY",
    "LABEL_SUITE",
    "LABEL_VALIDATION_UID",
    "SELECT_PATH",
    "Owner",
    "SuiteJob",
    "build_job",
    "build_selection_configmap",
    "job_labels",
]

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VALIDATION_UID = "greenloop.dev/validation-uid"
LABEL_ITERATION = "greenloop.dev/iteration"
LABEL_ROUND = "greenloop.dev/round"
LABEL_SUITE = "greenloop.dev/suite"
# Object names may be 253 characters, label values only 63: the name is an annotation.
ANNOTATION_VALIDATION = "greenloop.dev/validation"

RESULTS_DIR = "/greenloop/results"
JUNIT_PATH = f"{RESULTS_DIR}/junit.xml"
SELECT_DIR = "/greenloop/select"
SELECT_FILE = "tests.txt"
SELECT_PATH = f"{SELECT_DIR}/{SELECT_FILE}"
# An Indexed Job's pod carries its index in this annotation (and Kubernetes also sets
# JOB_COMPLETION_INDEX, but after the container's own env, too late for $(VAR) use).
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
#: The sidecar's proof of which pod it is: the pod's own ServiceAccount token, bound to
#: the pod, for the results endpoint's audience only, renewed by the kubelet (the
#: sidecar re-reads it on each attempt). Mounted into the sidecar alone (docs/design.md §8).
TOKEN_VOLUME = "results-token"
TOKEN_AUDIENCE = AUDIENCE
#: The shortest life the API server grants (10 minutes); the kubelet renews the file
#: at 80% of it, so a sidecar never holds a token for long.
TOKEN_SECONDS = 600

GRACE_MARGIN_SECONDS = 15
#: A uid the restricted pod runs as when the image's own user is root (emptyDir is
#: world-writable, so the results folder works for any uid).
RUN_AS = 65532


@dataclass(frozen=True, slots=True)
class Owner:
    """The StagingValidation a Job belongs to (its owner reference and labels)."""

    name: str
    namespace: str
    uid: str
    api_version: str = crd.API_VERSION
    kind: str = crd.KIND

    def reference(self, *, controller: bool = True) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": controller,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True, slots=True)
class SuiteJob:
    """Everything that decides one suite's Job in one iteration of one round."""

    owner: Owner
    iteration: int
    suite: Suite
    reporter_image: str
    results_url: str
    selection: tuple[str, ...] | None = None  # None: the whole suite
    service_account: str = "default"
    round: int = 1  # a spec change starts a new round at iteration 1: new names
    # A sharded run (docs/design.md §4.1): one Indexed Job, index i running shards[i];
    # () runs the suite in one pod as before. ``max_pods``: policy.parallelism.
    shards: tuple[Shard, ...] = ()
    max_pods: int = 1

    @property
    def indexed(self) -> bool:
        return bool(self.shards)

    @property
    def shard_selected(self) -> bool:
        """Each shard has its own selection (greenloop assigned the ids)."""
        return any(s.test_ids is not None for s in self.shards)

    @property
    def split_in_pod(self) -> bool:
        """A whole-suite run of a Go or Maven suite in several indexes: each pod lists
        the tests and runs its share (core/pod_listing, docs/design.md §4.1)."""
        return len(self.shards) > 1 and not self.shard_selected and lists_in_pod(self.suite.runner)

    @property
    def names(self) -> RunNames:
        return run_names(
            self.owner.name, self.owner.uid, self.round, self.iteration, self.suite.name
        )

    @property
    def job_name(self) -> str:
        return self.names.job

    @property
    def selection_name(self) -> str:
        return self.names.selection

    @property
    def results_name(self) -> str:
        return self.names.results

    @property
    def labels(self) -> dict[str, str]:
        return job_labels(self.owner, self.iteration, self.suite.name, self.round)


@dataclass(frozen=True, slots=True)
class RunNames:
    job: str
    selection: str
    results: str


def run_names(name: str, uid: str, round_: int, iteration: int, suite: str) -> RunNames:
    """The names of one suite run's objects. The round is part of the hashed key (not
    of the readable part), so a new round's iteration 1 never adopts the old one's Job."""
    key_uid = f"{uid}/r{round_}"
    select_key = f"select\0{key_uid}\0{name}\0{iteration}\0{suite}"
    return RunNames(
        job=object_name(NameKind.JOB, name, key_uid, iteration, suite),
        selection=dns_label(name, str(iteration), suite, "select", key=select_key),
        results=object_name(NameKind.RESULTS, name, key_uid, iteration, suite),
    )


def names_of_job(job: Mapping[str, Any]) -> RunNames | None:
    """The names that belong with a Job greenloop made, from its labels; None if the
    labels are not greenloop's."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = (meta.get("annotations") or {}).get(ANNOTATION_VALIDATION)
    iteration, round_ = str(labels.get(LABEL_ITERATION, "")), str(labels.get(LABEL_ROUND, "1"))
    if not (name and iteration.isdigit() and round_.isdigit() and labels.get(LABEL_SUITE)):
        return None
    return run_names(
        str(name),
        str(labels.get(LABEL_VALIDATION_UID, "")),
        int(round_),
        int(iteration),
        str(labels[LABEL_SUITE]),
    )


def job_labels(owner: Owner, iteration: int, suite: str, round_: int = 1) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: "greenloop",
        LABEL_VALIDATION_UID: owner.uid,
        LABEL_ROUND: str(round_),
        LABEL_ITERATION: str(iteration),
        LABEL_SUITE: suite,
    }


def _metadata(
    name: str, run: SuiteJob, owner_ref: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": run.owner.namespace,
        "labels": run.labels,
        "annotations": {ANNOTATION_VALIDATION: run.owner.name},
        "ownerReferences": [dict(owner_ref or run.owner.reference())],
    }


def _job_owner(job_name: str, job_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job_name,
        "uid": job_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _restricted_container() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }


def build_job(run: SuiteJob, *, suspend: bool = True) -> dict[str, Any]:
    """The Job for one suite in one iteration.

    Created suspended: the selection ConfigMap it needs is owned by the Job, so it can
    only be made once the Job's uid exists; the operator resumes it after that and no
    pod ever starts without its selection (docs/design.md §8).
    """
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(run.job_name, run),
        "spec": {
            "suspend": suspend,
            # greenloop decides reruns itself (docs/design.md §1): one pod, never retried.
            "backoffLimit": 0,
            "activeDeadlineSeconds": run.suite.timeout_seconds,
            # A disruption (node drain, preemption) is not the suite's verdict: the pod
            # is replaced instead of counting as the one allowed failure.
            "podFailurePolicy": {
                "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
            },
            "template": {"metadata": {"labels": run.labels}, "spec": _pod_spec(run)},
        },
    }
    if run.indexed:
        spec: dict[str, Any] = job["spec"]
        spec.update(_indexed_spec(run))
        del spec["backoffLimit"]
    return job


def _indexed_spec(run: SuiteJob) -> dict[str, Any]:
    """One index per shard (docs/design.md §4.1), never retried (greenloop reruns what
    failed itself), at most policy.parallelism pods at once. ``backoffLimit`` goes: with
    0, one lost pod would fail the Job and stop every other shard; each index fails on
    its own, listed in ``status.failedIndexes``."""
    count = len(run.shards)
    return {
        "completionMode": "Indexed",
        "completions": count,
        "parallelism": max(1, min(count, run.max_pods)),
        "backoffLimitPerIndex": 0,
    }


def shard_vars(run: SuiteJob) -> ShardVars | None:
    """An Indexed Job's pod reads its index from its completion index annotation."""
    if not run.indexed:
        return None
    field = f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
    return ShardVars(len(run.shards), index_from={"fieldRef": {"fieldPath": field}})


def selection_vars(run: SuiteJob) -> Selected | None:
    """Where the pod reads its selection: one file, or (when greenloop assigned each
    shard its ids) the file of its own index, named with $(GREENLOOP_SHARD_INDEX)."""
    if run.shard_selected:
        return per_index_selection(run.suite.runner, f"{SELECT_DIR}/{shard_select_key()}")
    if run.selection is not None and not run.indexed:
        return selected(run.suite.runner, SELECT_PATH, run.selection)
    return None


def shard_select_key(index: int | None = None) -> str:
    """The selection ConfigMap's key for one shard; without an index, the form a pod's
    env expands with its own ($(GREENLOOP_SHARD_INDEX), defined before it)."""
    return f"tests-{'$(' + SHARD_INDEX_ENV + ')' if index is None else index}.txt"


def shard_results_name(results: str, index: int | None) -> str:
    """Where one upload is stored: the run's results ConfigMap, one per shard index of a
    sharded run (``<results>-<index>``, within 253 characters: results names are DNS
    labels)."""
    return results if index is None else f"{results}-{index}"


def _pod_spec(run: SuiteJob) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": "results", "emptyDir": {"sizeLimit": "256Mi"}},
        _token_volume(),
    ]
    if run.selection is not None or run.shard_selected:
        volumes.append({"name": "select", "configMap": {"name": run.selection_name}})
    pod = run.suite.pod
    volumes += [{"name": v.name, **v.source} for v in pod.volumes]
    return {
        **_placement(pod),
        "restartPolicy": "Never",
        "serviceAccountName": pod.service_account_name or run.service_account,
        # No API token in any container; the sidecar's results token is its own volume.
        "automountServiceAccountToken": False,
        # Service links stay on (Kubernetes' default): suites may find the
        # target as $(NAME_SERVICE_HOST) in env, where a cluster has no DNS.
        "terminationGracePeriodSeconds": UPLOAD_DEADLINE_SECONDS + GRACE_MARGIN_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [_reporter_container(run)],
        "containers": [_suite_container(run)],
        "volumes": volumes,
    }


def _placement(pod: PodSettings) -> dict[str, Any]:
    """Where the suite's pod may run and what it pulls with, as the team gave it; the
    fields not given are left out (the Pod API's defaults)."""
    fields: dict[str, Any] = {
        "nodeSelector": dict(pod.node_selector),
        "tolerations": [dict(t) for t in pod.tolerations],
        "affinity": dict(pod.affinity),
        "imagePullSecrets": [{"name": name} for name in pod.image_pull_secrets],
    }
    return {key: value for key, value in fields.items() if value}


def _env_var(var: EnvVar) -> dict[str, Any]:
    if var.value_from is not None:
        return {"name": var.name, "valueFrom": dict(var.value_from)}
    return {"name": var.name, "value": var.value}


def _suite_settings(pod: PodSettings) -> dict[str, Any]:
    """The suite container's envFrom and resources, as the team gave them."""
    fields: dict[str, Any] = {
        "envFrom": [dict(e) for e in pod.env_from],
        "resources": dict(pod.resources),
    }
    return {key: value for key, value in fields.items() if value}


def _token_volume() -> dict[str, Any]:
    """The pod's ServiceAccount token for the results endpoint only: the API server
    binds it to this pod, so it proves which pod (and Job) uploads; nothing a tenant
    can read or mint for itself is accepted instead (docs/design.md §8)."""
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": TOKEN_AUDIENCE,
                        "expirationSeconds": TOKEN_SECONDS,
                        "path": TOKEN_FILE,
                    }
                }
            ]
        },
    }


def _suite_container(run: SuiteJob) -> dict[str, Any]:
    """The suite itself, with the runner contract's environment (docs/design.md §4)."""
    suite = run.suite
    env = [
        # Test ids are never Kubernetes' to expand: the selection words are literal.
        _env_var(
            replace(var, value=kube_literal(var.value)) if var.name == SELECT_ARGS_ENV else var
        )
        for var in suite_env(suite, run.iteration, JUNIT_PATH, selection_vars(run), shard_vars(run))
    ]
    mounts: list[dict[str, Any]] = [{"name": "results", "mountPath": RESULTS_DIR}]
    if run.selection is not None or run.shard_selected:
        mounts.append({"name": "select", "mountPath": SELECT_DIR, "readOnly": True})
    mounts += [
        {"name": v.name, "mountPath": v.mount_path, "readOnly": v.read_only}
        for v in suite.pod.volumes
    ]
    return {
        "name": "suite",
        "image": suite.image,
        "command": list(_command(run)),
        "env": env,
        **_suite_settings(suite.pod),
        "volumeMounts": mounts,
        "securityContext": _restricted_container(),
    }


def _command(run: SuiteJob) -> tuple[str, ...]:
    """The suite's command, placeholders filled in as local mode fills them; an Indexed
    Job's through the shell wrapper when each index needs arguments of its own
    (core/pod_command.py, docs/runners.md "In operator mode")."""
    suite = run.suite
    if run.split_in_pod:
        command = listing_wrapper_command(suite.command, suite.runner, JUNIT_PATH)
    elif run.indexed:
        command = shard_wrapper_command(
            suite.command, suite.runner, run.shards, JUNIT_PATH, SELECT_DIR
        )
    else:
        command = job_command(suite.command, suite.runner, run.selection, JUNIT_PATH)
    # Maven: Surefire's reports gathered into the uploaded file (core/pod_reports).
    return gathering_command(command, suite.runner, JUNIT_PATH)


def _reporter_container(run: SuiteJob) -> dict[str, Any]:
    """The sidecar that uploads the suite's JUnit XML (`greenloop report upload`)."""
    command = ["greenloop", "report", "upload", "--file", JUNIT_PATH, "--url", run.results_url]
    command += ["--namespace", run.owner.namespace, "--job", run.job_name]
    command += ["--token-file", TOKEN_PATH, "--deadline", str(UPLOAD_DEADLINE_SECONDS)]
    return {
        "name": "greenloop-results",
        "image": run.reporter_image,
        # A native sidecar: it runs beside the suite, does not keep the Job alive, and
        # gets SIGTERM once the suite container has exited - its cue to upload.
        "restartPolicy": "Always",
        "command": command,
        "volumeMounts": [
            {"name": "results", "mountPath": RESULTS_DIR, "readOnly": True},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"memory": "128Mi"},
        },
        "securityContext": {**_restricted_container(), "readOnlyRootFilesystem": True},
    }


def build_selection_configmap(run: SuiteJob, *, job_uid: str) -> dict[str, Any]:
    """The tests to run (GREENLOOP_SELECT's file), one id a line, owned by the Job; a
    sharded run's holds one key per shard index (``tests-<i>.txt``), and for a runner
    told its selection as arguments, that index's arguments (``args-<i>.txt``)."""
    ids: Sequence[str] = run.selection or ()
    data = {SELECT_FILE: "".join(f"{t}\n" for t in ids)}
    if run.shard_selected:
        data = {
            shard_select_key(s.index): "".join(f"{t}\n" for t in s.test_ids or ())
            for s in run.shards
        }
        # A runner told its selection as arguments: each index's, for the wrapper.
        for shard in run.shards:
            words = shard_select_args(run.suite.runner, shard)
            if words is not None:
                data[shard_args_key(shard.index)] = words
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(run.selection_name, run, _job_owner(run.job_name, job_uid)),
        "data": data,
    }
