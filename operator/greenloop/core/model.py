"""The value types every part of greenloop speaks: the spec, test results and diagnoses.

Pure data: no I/O, no clock. The engine, both shells and the report all exchange these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from greenloop.core.priorities import DEFAULT_PRIORITY, PRIORITIES

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_REDEPLOY_ON",
    "PRIORITIES",
    "Diagnosis",
    "EnvVar",
    "FailureClass",
    "HeadersFrom",
    "Health",
    "Outcome",
    "PodSettings",
    "Policy",
    "RedeployPolicy",
    "RerunMode",
    "Rule",
    "StagingValidation",
    "Suite",
    "Target",
    "TestResult",
    "ValidationSpec",
    "Volume",
    "Webhook",
    "Workload",
]


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # an assertion-style <failure>
    ERROR = "error"  # an <error>: the test could not run or crashed
    SKIPPED = "skipped"


class FailureClass(StrEnum):
    """Why a test failed. Built-in classification tries them in this order."""

    DEPENDENT = "Dependent"
    TEST_CODE_ERROR = "TestCodeError"
    AUTH_ERROR = "AuthError"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    CONNECTION_ERROR = "ConnectionError"
    TIMEOUT = "Timeout"
    SERVER_ERROR = "ServerError"
    ASSERTION = "Assertion"
    UNKNOWN = "Unknown"
    # Not found in a test's output: a selected test the rerun skipped or did not report
    # (docs/design.md §7). Failing, never passing; a redeploy cannot fix a wrapper.
    NOT_RERUN = "NotRerun"
    # Not a test's class: a suite that produced no results at all.
    RUNNER_ERROR = "RunnerError"


@dataclass(frozen=True, slots=True)
class TestResult:
    """One testcase as read from JUnit XML.

    ``id`` is stable across runs: the pytest node id where greenloop's plugin recorded
    it, else ``classname::name``. ``message`` is the failure/error/skipped message
    attribute, ``details`` the element's text; both are bounded by the parser.
    """

    __test__ = False  # not a pytest test class

    id: str
    name: str
    classname: str
    outcome: Outcome
    message: str = ""
    details: str = ""
    output: str = ""  # tail of system-out/system-err, bounded
    time: float = 0.0
    priority: str | None = None
    depends_on: tuple[str, ...] = ()
    flaky: bool = False  # failed, then passed on the runner's own rerun (Surefire)
    properties: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_failure(self) -> bool:
        return self.outcome in (Outcome.FAILED, Outcome.ERROR)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Why one test did not pass: its class, the line that decided it, and for
    ``Dependent`` the test it depends on."""

    failure_class: FailureClass
    evidence: str
    root_cause: str | None = None


# ---------------------------------------------------------------------------
# The spec (docs/design.md §1). Field names are the Python spelling of the CRD's.


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One variable of a suite: a literal ``value``, or (operator mode) ``value_from``,
    a container env's valueFrom as the CRD allows it (secretKeyRef, configMapKeyRef,
    fieldRef)."""

    name: str
    value: str
    value_from: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True, slots=True)
class Volume:
    """A volume of a suite's pod (operator mode): ``source`` is the pod volume's one
    source, ``{"secret": {...}}``, ``{"configMap": {...}}`` or ``{"emptyDir": {...}}``."""

    name: str
    mount_path: str
    source: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def read_only(self) -> bool:
        """A Secret's or ConfigMap's files are credentials or configuration, not scratch."""
        return "emptyDir" not in self.source


@dataclass(frozen=True, slots=True)
class PodSettings:
    """How a team configures a suite's pod (operator mode; docs/design.md §8), each
    field as the Pod API spells it; empty when not given."""

    service_account_name: str | None = None
    env_from: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    resources: Mapping[str, Any] = field(default_factory=dict, hash=False)
    node_selector: Mapping[str, str] = field(default_factory=dict, hash=False)
    tolerations: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    affinity: Mapping[str, Any] = field(default_factory=dict, hash=False)
    image_pull_secrets: tuple[str, ...] = ()
    volumes: tuple[Volume, ...] = ()


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    command: tuple[str, ...]
    priority: str = DEFAULT_PRIORITY
    image: str | None = None
    working_dir: str = "."
    env: tuple[EnvVar, ...] = ()
    timeout_seconds: int = 900
    runner: str = "generic"  # one of greenloop.core.runners.RUNNERS
    shards: int = 1  # 1..shards.MAX_SHARDS, run at once (docs/design.md §4.1)
    pod: PodSettings = field(default_factory=PodSettings)

    @property
    def rank(self) -> int:
        """1 for P1 (most critical) .. 9 for P9."""
        return int(self.priority[1:])


@dataclass(frozen=True, slots=True)
class Workload:
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class HeadersFrom:
    """Where webhook headers come from: a Secret (operator mode, each key a header)
    or environment variables (local mode: header name -> variable name)."""

    secret_name: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    method: str = "POST"
    headers_from: HeadersFrom | None = None
    timeout_seconds: int = 60


@dataclass(frozen=True, slots=True)
class Health:
    url: str
    timeout_seconds: int = 300
    expect_status: int = 200


@dataclass(frozen=True, slots=True)
class Target:
    workloads: tuple[Workload, ...] = ()
    command: tuple[str, ...] = ()
    webhook: Webhook | None = None
    health: Health | None = None
    command_timeout_seconds: int = 600


DEFAULT_REDEPLOY_ON: tuple[FailureClass, ...] = (
    FailureClass.SERVICE_UNAVAILABLE,
    FailureClass.CONNECTION_ERROR,
    FailureClass.TIMEOUT,
    FailureClass.SERVER_ERROR,
)


class RerunMode(StrEnum):
    FAILED = "Failed"
    ALL = "All"


class RedeployPolicy(StrEnum):
    """Whether a redeploy the engine decides starts at once or waits for a person
    (docs/design.md §8, the approval gate)."""

    AUTOMATIC = "Automatic"
    REQUIRE_APPROVAL = "RequireApproval"


@dataclass(frozen=True, slots=True)
class Policy:
    max_iterations: int = 5
    deadline_seconds: int = 7200
    rerun: RerunMode = RerunMode.FAILED
    redeploy_on: tuple[FailureClass, ...] = DEFAULT_REDEPLOY_ON
    redeploy: RedeployPolicy = RedeployPolicy.AUTOMATIC
    flake_retries: int = 1
    fail_fast: bool = False
    # Suites of one priority run at once (local mode), and the processes or pods of a
    # sharded suite (docs/design.md §4.1).
    parallelism: int = 1


@dataclass(frozen=True, slots=True)
class Rule:
    """A user classification rule: a regular expression searched in the failure text."""

    pattern: str
    failure_class: FailureClass


@dataclass(frozen=True, slots=True)
class ValidationSpec:
    suites: tuple[Suite, ...]
    target: Target = Target()
    policy: Policy = Policy()
    classification: tuple[Rule, ...] = ()
    expected_tests: int | None = None
    service_account_name: str | None = None
    revalidate_every_seconds: int | None = None

    def suite(self, name: str) -> Suite:
        for suite in self.suites:
            if suite.name == name:
                return suite
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class StagingValidation:
    """A loaded object: metadata plus spec. ``source`` is the file it came from
    (local mode) so paths and messages can refer to it."""

    name: str
    spec: ValidationSpec
    namespace: str = "default"
    generation: int = 1
    uid: str = ""
    source: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
