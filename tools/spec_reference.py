#!/usr/bin/env python3
"""Render docs/spec-reference.md from the StagingValidation CRD.

The CRD (crds/stagingvalidation.yaml) is the one source of truth for the spec, so the
reference is generated from it instead of written by hand: every type, default and rule
in the document is read from the schema, and tests/unit/test_spec_reference.py fails
when the committed document no longer matches what this tool renders.

    python tools/spec_reference.py           # (re)write docs/spec-reference.md
    python tools/spec_reference.py --check   # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CRD_PATH = ROOT / "crds" / "stagingvalidation.yaml"
DOC_PATH = ROOT / "docs" / "spec-reference.md"
LOCAL_EXAMPLE = ROOT / "examples" / "specs" / "full-local.yaml"
OPERATOR_EXAMPLE = ROOT / "examples" / "specs" / "operator.yaml"
REGENERATE = "python tools/spec_reference.py"

Schema = Mapping[str, Any]

# Descriptions for fields whose CRD schema has none. The CRD stays the source of truth:
# a description added there wins, and test_spec_reference.py flags entries here that
# became redundant or name a field the CRD no longer has, so this list only shrinks.
FALLBACK_DESCRIPTIONS: dict[str, str] = {
    "spec.suites[].env": (
        "Environment variables for the suite's command, on top of greenloop's own "
        "(`GREENLOOP_JUNIT_XML`, `GREENLOOP_SELECT`, `GREENLOOP_SUITE`, `GREENLOOP_ITERATION`)."
    ),
    "spec.suites[].env[].name": "The variable's name.",
    "spec.suites[].env[].value": "The variable's value.",
    "spec.suites[].timeoutSeconds": (
        "How long one run of the suite may take. A suite that runs longer is stopped (its "
        "whole process group in local mode) and recorded as a `RunnerError`."
    ),
    "spec.target.workloads[].kind": "The kind of workload to restart.",
    "spec.target.workloads[].name": "The workload's name, in the object's namespace.",
    "spec.target.commandTimeoutSeconds": (
        "How long `target.command` may run before it is stopped and the redeploy counts as "
        "failed (local mode)."
    ),
    "spec.target.webhook.url": "The URL that starts the deploy.",
    "spec.target.webhook.method": "The HTTP method of the request.",
    "spec.target.webhook.headersFrom.secretName": (
        "A Secret in the object's namespace: each key is a header name, its value the "
        "header's value (operator mode)."
    ),
    "spec.target.webhook.headersFrom.env": (
        "Header name -> name of the environment variable that holds its value, e.g. "
        "`{Authorization: DEPLOY_TOKEN}` (local mode). An unset variable fails the redeploy."
    ),
    "spec.target.webhook.timeoutSeconds": "How long to wait for the webhook's response.",
    "spec.target.health.url": "The URL polled after a redeploy.",
    "spec.target.health.timeoutSeconds": (
        "How long to wait for `url` to answer `expectStatus` before the redeploy counts as failed."
    ),
    "spec.target.health.expectStatus": "The HTTP status that means healthy.",
    "spec.policy.maxIterations": (
        "At most this many iterations (runs of the suites) per round; failures left after "
        "the last one stop the round as `Stalled`, reason `BudgetExhausted`."
    ),
    "spec.policy.deadlineSeconds": (
        "Wall-clock budget of a round; failures left when it has passed stop the round as "
        "`Stalled`, reason `BudgetExhausted`."
    ),
    "spec.classification[].class": "The failure class given to a failure that matches `pattern`.",
    "status": (
        "Progress of the current round, written by greenloop in both modes (local mode "
        "prints it with `greenloop run --json`)."
    ),
    "status.observedGeneration": "The `metadata.generation` of the spec this status describes.",
    "status.phase": (
        "Where the round is; `Passed` and `Stalled` end it; `WaitingApproval` waits for a "
        "person to approve a redeploy (`status.approval`)."
    ),
    "status.iteration": "The current iteration of the round (1 is the first run).",
    "status.summary": "Test counts of the latest results.",
    "status.summary.expected": (
        "The goal: `spec.expectedTests`, or the number of tests that ran when it is unset."
    ),
    "status.summary.total": "Distinct tests that ran.",
    "status.summary.passed": "Tests that passed.",
    "status.summary.failed": "Tests that failed.",
    "status.summary.skipped": "Tests that were skipped.",
    "status.summary.notRun": "Expected tests that have not run (`expected - total`, at least 0).",
    "status.summary.passRate": "`passed / total` as a percentage, e.g. `98.1%`.",
    "status.priorities": "Counts per priority, P1 first.",
    "status.priorities[].priority": "The priority, `P1`..`P9`.",
    "status.priorities[].total": "Tests of this priority that ran.",
    "status.priorities[].passed": "Tests of this priority that passed.",
    "status.priorities[].failed": "Tests of this priority that failed.",
    "status.priorities[].skipped": "Tests of this priority that were skipped.",
    "status.failingTests[].id": "The test's stable id (for pytest, its node id).",
    "status.failingTests[].suite": "The suite that ran it.",
    "status.failingTests[].class": "Its failure class.",
    "status.failingTests[].evidence": "The line of the failure that decided the class.",
    "status.failingTests[].rootCause": (
        "For a `Dependent` failure, the id of the failing test it depends on; otherwise null."
    ),
    "status.failingTests[].priority": "The test's priority.",
    "status.flakyTests": "Tests that failed, then passed when rerun without a redeploy.",
    "status.flakyTests[].id": "The test's stable id.",
    "status.flakyTests[].suite": "The suite that ran it.",
    "status.flakyTests[].priority": "The test's priority.",
    "status.flakyTests[].iteration": "The iteration in which it passed again.",
    "status.flakyTests[].evidence": "How it had failed.",
    "status.history[].iteration": "The iteration's number.",
    "status.history[].started": "When it started.",
    "status.history[].finished": "When it finished (absent while it runs).",
    "status.history[].passed": "Tests passing after it.",
    "status.history[].failed": "Tests failing after it.",
    "status.history[].action": (
        "What greenloop did: `Run`, `Redeploy`, `Rerun` (without a redeploy), `Done` or `Stall`."
    ),
    "status.history[].reason": "Why, when the action needs one (e.g. the stall reason).",
    "status.report": "Where the full Markdown report is.",
    "status.report.configMap": "The ConfigMap, in the object's namespace, that holds it.",
    "status.conditions": (
        "kstatus conditions `Ready`, `Reconciling` and `Stalled`; "
        "`kubectl wait --for=condition=Ready` waits on the first."
    ),
    "status.conditions[].type": "`Ready`, `Reconciling` or `Stalled`.",
    "status.conditions[].status": "Whether the condition holds.",
    "status.conditions[].reason": "A CamelCase reason, e.g. `RedeployIneffective`.",
    "status.conditions[].message": "A sentence for people.",
    "status.conditions[].observedGeneration": "The generation the condition was set for.",
    "status.conditions[].lastTransitionTime": "When `status` last changed.",
}

# Fields that only one mode uses, with what each mode does with them. Written by hand
# from spec.py's mode checks (the CRD's CEL rules cover only operator mode); render()
# refuses a path the CRD lacks, so a renamed field cannot leave a stale row behind.
_POD_ONLY = "**rejected**, naming the field: a local run starts a process, not a pod"

MODE_FIELDS: tuple[tuple[str, str, str], ...] = (
    (
        "spec.suites[].image",
        "ignored: the command runs on this machine",
        "**required**: the suite's Job runs this image",
    ),
    (
        "spec.suites[].workingDir",
        "the command's directory, relative to the file",
        "only `.` (the image sets the directory)",
    ),
    (
        "spec.suites[].env[].valueFrom",
        "**rejected**: a process has no pod to take it from; use `value`",
        "the value from a Secret key, a ConfigMap key or a pod field (a Secret's is masked)",
    ),
    (
        "spec.suites[].envFrom",
        _POD_ONLY,
        "every key of a Secret (masked) or ConfigMap as variables",
    ),
    (
        "spec.suites[].resources",
        _POD_ONLY,
        "the suite container's requests and limits",
    ),
    (
        "spec.suites[].nodeSelector",
        _POD_ONLY,
        "the suite pod's node labels",
    ),
    (
        "spec.suites[].tolerations",
        _POD_ONLY,
        "the suite pod's tolerations",
    ),
    (
        "spec.suites[].affinity",
        _POD_ONLY,
        "the suite pod's affinity",
    ),
    (
        "spec.suites[].imagePullSecrets",
        _POD_ONLY,
        "registry credentials for the suite's image",
    ),
    (
        "spec.suites[].serviceAccountName",
        _POD_ONLY,
        "the suite pod's service account (else `spec.serviceAccountName`)",
    ),
    (
        "spec.suites[].volumes",
        _POD_ONLY,
        "Secret/ConfigMap (read-only) or emptyDir mounts of the suite container",
    ),
    (
        "spec.target.command",
        "the redeploy command",
        "**rejected**: the operator runs no commands from objects",
    ),
    (
        "spec.target.commandTimeoutSeconds",
        "timeout of `target.command`",
        "ignored (there is no command)",
    ),
    (
        "spec.target.workloads",
        "ignored (warned about when nothing else can redeploy)",
        "restarted; greenloop waits until they have rolled out",
    ),
    (
        "spec.target.webhook.headersFrom.env",
        "header values from environment variables",
        "**rejected**: use `secretName`",
    ),
    (
        "spec.target.webhook.headersFrom.secretName",
        "**rejected**: there are no Secrets; use `env`",
        "header values from a Secret",
    ),
    (
        "spec.policy.redeploy",
        "`Automatic` only: `RequireApproval` is **rejected** (no object to annotate)",
        "`RequireApproval` waits in `WaitingApproval` for `greenloop.dev/approve`",
    ),
    (
        "spec.serviceAccountName",
        "ignored",
        "the account greenloop acts as for the object (impersonation) and the test Jobs "
        "run as; unset, `--default-service-account`, else `Stalled`/`NoServiceAccount`",
    ),
    (
        "spec.revalidateEvery",
        "ignored (a run is one round)",
        "a `Passed` object starts a new round this long after its round ended",
    ),
)


@dataclass(frozen=True)
class Row:
    """One field: its dotted path (``spec.suites[].name``) and schema."""

    path: str
    node: Schema
    required: bool


class ReferenceError(Exception):
    """The CRD cannot be rendered as it stands (e.g. a field with no description)."""


# ---------------------------------------------------------------------------
# Walking the schema


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ReferenceError(f"{path}: not a mapping")
    return loaded


def served_version(crd: Mapping[str, Any]) -> Mapping[str, Any]:
    # The same choice spec.py makes: the served storage version is what objects obey.
    for version in crd["spec"]["versions"]:
        if version.get("served") and version.get("storage"):
            found: Mapping[str, Any] = version
            return found
    raise ReferenceError("the CRD has no served storage version")


def root_schema(crd: Mapping[str, Any]) -> Schema:
    schema: Schema = served_version(crd)["schema"]["openAPIV3Schema"]
    return schema


def object_of(node: Schema) -> Schema | None:
    """The object schema whose fields a node's sub-table lists: the node itself, or its
    items for an array of objects; None for scalars, maps and arrays of scalars."""
    if node.get("type") == "array":
        items = node.get("items")
        return items if isinstance(items, Mapping) and "properties" in items else None
    return node if "properties" in node else None


def child_path(path: str, node: Schema) -> str:
    """Where the fields of ``node`` live: ``spec.suites[]`` for an array of objects."""
    return f"{path}[]" if node.get("type") == "array" else path


def rows_of(obj: Schema, path: str) -> list[Row]:
    """The direct fields of one object level."""
    required = set(obj.get("required", []))
    return [
        Row(f"{path}.{name}", prop, name in required)
        for name, prop in obj.get("properties", {}).items()
    ]


def levels(obj: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    """Every object level under ``obj`` (itself first), as (path, object schema)."""
    yield path, obj
    for row in rows_of(obj, path):
        sub = object_of(row.node)
        if sub is not None:
            yield from levels(sub, child_path(row.path, row.node))


def all_rows(obj: Schema, path: str) -> Iterator[Row]:
    """Every field under ``obj``, depth first, a parent before its own fields."""
    for row in rows_of(obj, path):
        yield row
        sub = object_of(row.node)
        if sub is not None:
            yield from all_rows(sub, child_path(row.path, row.node))


def missing_descriptions(crd: Mapping[str, Any]) -> list[str]:
    """Field paths (spec and status) for which the CRD has no description."""
    root = root_schema(crd)
    missing = [] if "description" in root["properties"]["status"] else ["status"]
    for part in ("spec", "status"):
        missing.extend(
            row.path
            for row in all_rows(root["properties"][part], part)
            if not row.node.get("description")
        )
    return missing


# ---------------------------------------------------------------------------
# Cells


def cell(text: str) -> str:
    """Table-safe text: one line, and pipes escaped (GFM splits cells on them even
    inside code spans)."""
    return " ".join(text.split()).replace("|", "\\|")


def code(text: str) -> str:
    return f"`{text}`"


def flow(value: Any) -> str:
    """A value as YAML flow text, the way one would write it in a spec."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def type_of(node: Schema) -> str:
    kind = node.get("type")
    additional = node.get("additionalProperties")
    if kind == "array" and isinstance(node.get("items"), Mapping):
        text = "[]" + type_of(node["items"])
    elif kind == "object" and isinstance(additional, Mapping):
        text = "map[string]" + type_of(additional)
    else:
        text = str(kind or "any")
    if "format" in node:
        text += f" ({node['format']})"
    if node.get("nullable"):
        text += " or null"
    return text


_SINGULAR = {"characters": "character", "items": "item", "entries": "entry"}


def bounds(low: Any, high: Any, unit: str) -> str | None:
    def counted(n: Any) -> str:
        word = _SINGULAR.get(unit, unit) if n == 1 else unit
        return f"{n} {word}" if word else str(n)

    if low is not None and high is not None:
        return f"{low}..{counted(high)}"
    if low is not None:
        return f"at least {counted(low)}"
    if high is not None:
        return f"at most {counted(high)}"
    return None


def value_rules(node: Schema) -> list[str]:
    """The structural rules on one node's own value."""
    rules: list[str] = []
    if "enum" in node:
        rules.append("one of " + ", ".join(code(str(v)) for v in node["enum"]))
    if "pattern" in node:
        rules.append("pattern " + code(node["pattern"]))
    checks = (
        ("minLength", "maxLength", "characters"),
        ("minimum", "maximum", ""),
        ("minItems", "maxItems", "items"),
        ("minProperties", "maxProperties", "entries"),
    )
    for low, high, unit in checks:
        text = bounds(node.get(low), node.get(high), unit)
        if text:
            rules.append(text)
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "set":
        rules.append("no duplicates")
    elif list_type == "map":
        keys = ", ".join(code(k) for k in node.get("x-kubernetes-list-map-keys", []))
        rules.append(f"one entry per {keys}")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        rules.append("extra fields kept")
    return rules


def cel_rules(node: Schema) -> list[str]:
    return [
        f"*operator mode:* {v['message']} ({code(v['rule'])})"
        for v in node.get("x-kubernetes-validations", [])
    ]


def rules_of(row: Row) -> str:
    rules = ["**required**"] if row.required else []
    rules.extend(value_rules(row.node))
    # Rules on the elements of a scalar array or the values of a map belong to this row:
    # those elements have no row of their own.
    inner = row.node.get("items")
    additional = row.node.get("additionalProperties")
    if isinstance(inner, Mapping) and object_of(row.node) is None:
        rules.extend(f"each item: {r}" for r in value_rules(inner))
    if isinstance(additional, Mapping):
        rules.extend(f"each value: {r}" for r in value_rules(additional))
    rules.extend(cel_rules(row.node))
    return "<br>".join(cell(r) for r in rules)


def description_of(path: str, node: Schema) -> str:
    text = node.get("description") or FALLBACK_DESCRIPTIONS.get(path)
    if not text:
        raise ReferenceError(
            f"{path} has no description: add one to the CRD (or, failing that, to "
            "FALLBACK_DESCRIPTIONS in tools/spec_reference.py)"
        )
    return cell(str(text))


def default_of(node: Schema) -> str:
    return cell(code(flow(node["default"]))) if "default" in node else ""


# ---------------------------------------------------------------------------
# The document


def spec_tables(spec: Schema) -> list[str]:
    out: list[str] = []
    for path, obj in levels(spec, "spec"):
        out.append("")
        if path != "spec":  # the root level sits right under the `## spec` heading
            out += [f"### `{path}`", ""]
            # The description sits on the field (an array for `[]` levels); repeat it
            # here so each table reads on its own.
            out.append(description_of(path.removesuffix("[]"), field_at(spec, path)))
            out.append("")
        for rule in cel_rules(obj):
            out.append(f"- {rule}")
        if obj.get("x-kubernetes-validations"):
            out.append("")
        out += [
            "| Field | Type | Default | Rules | Description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in rows_of(obj, path):
            out.append(
                f"| {code(row.path)} | {cell(type_of(row.node))} | {default_of(row.node)} "
                f"| {rules_of(row)} | {description_of(row.path, row.node)} |"
            )
    return out


def field_at(spec: Schema, path: str) -> Schema:
    """The schema of the field at a level's path (``spec.suites[]`` -> suites)."""
    node = spec
    for name in path.removesuffix("[]").split(".")[1:]:
        obj = object_of(node)
        assert obj is not None, path
        node = obj["properties"][name.removesuffix("[]")]
    return node


def status_table(status: Schema) -> list[str]:
    out = [
        "| Field | Type | Rules | Description |",
        "| --- | --- | --- | --- |",
    ]
    for row in all_rows(status, "status"):
        out.append(
            f"| {code(row.path)} | {cell(type_of(row.node))} | {rules_of(row)} "
            f"| {description_of(row.path, row.node)} |"
        )
    return out


def mode_table(spec: Schema) -> list[str]:
    paths = {row.path for row in all_rows(spec, "spec")}
    out = [
        "| Field | Local mode | Operator mode |",
        "| --- | --- | --- |",
    ]
    for path, local, operator in MODE_FIELDS:
        if path not in paths:
            raise ReferenceError(f"MODE_FIELDS names {path}, which the CRD does not have")
        out.append(f"| {code(path)} | {cell(local)} | {cell(operator)} |")
    return out


def example(path: Path) -> list[str]:
    return ["```yaml", path.read_text(encoding="utf-8").rstrip("\n"), "```"]


def render(crd: Mapping[str, Any]) -> str:
    version = served_version(crd)
    root = root_schema(crd)
    spec = root["properties"]["spec"]
    status = root["properties"]["status"]
    names = crd["spec"]["names"]
    api_version = f"{crd['spec']['group']}/{version['name']}"
    short = ", ".join(code(n) for n in names.get("shortNames", []))
    local_name = LOCAL_EXAMPLE.relative_to(ROOT).as_posix()
    operator_name = OPERATOR_EXAMPLE.relative_to(ROOT).as_posix()
    crd_name = CRD_PATH.relative_to(ROOT).as_posix()
    lines = [
        f"<!-- Generated from {crd_name} by tools/spec_reference.py. Do not edit by hand:",
        f"     change the CRD, then run `{REGENERATE}`. -->",
        "",
        f"# {names['kind']} reference",
        "",
        cell(str(root.get("description", ""))),
        "",
        f"`apiVersion: {api_version}`, `kind: {names['kind']}`, short name {short}. "
        f"The fields, types, defaults and rules below are generated from the CRD ({crd_name}), "
        "the one source of truth for the schema: greenloop validates files against the same "
        "schema in both modes.",
        "",
        "## Two modes, one object",
        "",
        "- **Local** (`greenloop run FILE`): no cluster. Suites run as processes on this "
        "machine; a redeploy is `target.command` or `target.webhook`. "
        "`greenloop validate FILE` checks a file without running anything.",
        "- **Operator** (`kubectl apply -f FILE`): the greenloop operator runs each suite as "
        "a Job and redeploys `target.workloads` or calls `target.webhook`. The API server "
        "checks the schema and the CEL rules, marked *operator mode* below: they describe "
        "operator mode because every object in a cluster is run by the operator. "
        "`greenloop validate --mode operator FILE` applies the same rules before you apply.",
        "",
        "Every other field means the same in both modes. These are used by one mode only:",
        "",
        *mode_table(spec),
        "",
        "## `spec`",
        "",
        "Paths use `[]` for the items of a list: `spec.suites[].name` is the `name` of each "
        "suite. A default is filled in when the field is absent.",
        *spec_tables(spec),
        "",
        "## `status`",
        "",
        description_of("status", status),
        "",
        *status_table(status),
        "",
        "## Examples",
        "",
        f"Local mode, every field ({local_name}):",
        "",
        *example(LOCAL_EXAMPLE),
        "",
        f"Operator mode ({operator_name}):",
        "",
        *example(OPERATOR_EXAMPLE),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# CLI


def check(expected: str, path: Path) -> str | None:
    """Why ``path`` differs from ``expected``, or None when it is up to date."""
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    if not path.exists():
        return f"{name} does not exist; run: {REGENERATE}"
    actual = path.read_text(encoding="utf-8")
    if actual == expected:
        return None
    diff = difflib.unified_diff(
        actual.splitlines(), expected.splitlines(), name, "rendered from the CRD", lineterm=""
    )
    shown = list(diff)[:40]
    return (
        f"{name} is out of date with {CRD_PATH.relative_to(ROOT).as_posix()} (or the "
        f"examples it quotes); run: {REGENERATE}\n" + "\n".join(shown)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the document differs from what the CRD renders",
    )
    args = parser.parse_args(argv)
    try:
        text = render(load_crd())
    except ReferenceError as err:
        print(f"spec_reference: {err}", file=sys.stderr)
        return 2
    if args.check:
        problem = check(text, DOC_PATH)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
