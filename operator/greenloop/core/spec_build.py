"""Building the model (:mod:`greenloop.core.model`) from a valid, defaulted
StagingValidation: only after :func:`greenloop.core.spec_checks.check` found nothing wrong.
Pure core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from greenloop.core.crd import subschema
from greenloop.core.model import (
    EnvVar,
    FailureClass,
    HeadersFrom,
    Health,
    PodSettings,
    Policy,
    RedeployPolicy,
    RerunMode,
    Rule,
    StagingValidation,
    Suite,
    Target,
    ValidationSpec,
    Volume,
    Webhook,
    Workload,
)
from greenloop.core.schema import apply_defaults
from greenloop.core.spec_checks import parse_duration

__all__ = ["build"]


def build(obj: Mapping[str, Any], body: Mapping[str, Any], source: str) -> StagingValidation:
    meta: Mapping[str, Any] = obj["metadata"]
    spec: Mapping[str, Any] = body["spec"]
    # An absent target still gets the CRD's defaults, so the schema stays the only
    # place defaults are written down.
    target = spec.get("target")
    if target is None:
        target = apply_defaults({}, subschema("spec", "target"))
    every = spec.get("revalidateEvery")
    validation_spec = ValidationSpec(
        suites=tuple(_suite(suite) for suite in spec["suites"]),
        target=_target(target),
        policy=_policy(spec["policy"]),
        classification=tuple(
            Rule(pattern=rule["pattern"], failure_class=FailureClass(rule["class"]))
            for rule in spec.get("classification", ())
        ),
        expected_tests=spec.get("expectedTests"),
        service_account_name=spec.get("serviceAccountName"),
        revalidate_every_seconds=None if every is None else parse_duration(every),
    )
    return StagingValidation(
        name=meta["name"],
        spec=validation_spec,
        namespace=meta.get("namespace") or "default",
        generation=meta.get("generation") or 1,
        uid=meta.get("uid") or "",
        source=source,
        annotations=dict(meta.get("annotations") or {}),
    )


def _suite(suite: Mapping[str, Any]) -> Suite:
    return Suite(
        name=suite["name"],
        command=tuple(suite["command"]),
        priority=suite["priority"],
        image=suite.get("image"),
        working_dir=suite["workingDir"],
        env=tuple(
            EnvVar(name=e["name"], value=e.get("value", ""), value_from=e.get("valueFrom"))
            for e in suite.get("env", ())
        ),
        timeout_seconds=suite["timeoutSeconds"],
        runner=suite["runner"],
        shards=suite["shards"],
        pod=_pod(suite),
    )


def _pod(suite: Mapping[str, Any]) -> PodSettings:
    return PodSettings(
        service_account_name=suite.get("serviceAccountName"),
        env_from=tuple(suite.get("envFrom", ())),
        resources=suite.get("resources", {}),
        node_selector=suite.get("nodeSelector", {}),
        tolerations=tuple(suite.get("tolerations", ())),
        affinity=suite.get("affinity", {}),
        image_pull_secrets=tuple(s["name"] for s in suite.get("imagePullSecrets", ())),
        volumes=tuple(
            Volume(
                name=v["name"],
                mount_path=v["mountPath"],
                source={k: v[k] for k in ("secret", "configMap", "emptyDir") if k in v},
            )
            for v in suite.get("volumes", ())
        ),
    )


def _target(target: Mapping[str, Any]) -> Target:
    webhook = target.get("webhook")
    health = target.get("health")
    return Target(
        workloads=tuple(
            Workload(kind=w["kind"], name=w["name"]) for w in target.get("workloads", ())
        ),
        command=tuple(target.get("command", ())),
        webhook=None if webhook is None else _webhook(webhook),
        health=None
        if health is None
        else Health(
            url=health["url"],
            timeout_seconds=health["timeoutSeconds"],
            expect_status=health["expectStatus"],
        ),
        command_timeout_seconds=target["commandTimeoutSeconds"],
    )


def _webhook(webhook: Mapping[str, Any]) -> Webhook:
    headers = webhook.get("headersFrom")
    return Webhook(
        url=webhook["url"],
        method=webhook["method"],
        headers_from=None
        if headers is None
        else HeadersFrom(secret_name=headers.get("secretName"), env=dict(headers.get("env", {}))),
        timeout_seconds=webhook["timeoutSeconds"],
    )


def _policy(policy: Mapping[str, Any]) -> Policy:
    return Policy(
        max_iterations=policy["maxIterations"],
        deadline_seconds=policy["deadlineSeconds"],
        rerun=RerunMode(policy["rerun"]),
        redeploy_on=tuple(FailureClass(c) for c in policy["redeployOn"]),
        redeploy=RedeployPolicy(policy["redeploy"]),
        flake_retries=policy["flakeRetries"],
        fail_fast=policy["failFast"],
        parallelism=policy["parallelism"],
    )
