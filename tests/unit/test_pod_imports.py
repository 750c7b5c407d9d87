"""What runs in every shard's pod starts light (docs/design.md §4): the results sidecar,
`greenloop report upload`, runs on the node's cores beside the suite starting up, so what
it imports is a cost each shard pays (bench/shards.py --node). It needs the standard
library, the upload contract's constants and two pure helpers — not an HTTP client
library, the Kubernetes client, YAML or the Job builder (which pulls in the CRD, the
runners and the planner). The pytest plugin, loaded by every pytest session of a suite
image, needs the shard hash and the priority names, not the spec's model (50 ms of
dataclasses)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What the sidecar's process must not load.
HEAVY = (
    "httpx",
    "kubernetes",
    "kopf",
    "yaml",
    "re2",
    "greenloop.k8s.jobs",
    "greenloop.core.crd",
    "greenloop.core.model",
)

# The sidecar's command up to the wait for SIGTERM: the CLI's parser, then the upload
# module `cmd_report_upload` imports.
SIDECAR = """
import json, sys
from greenloop.cli import build_parser
from greenloop.k8s import upload
args = build_parser().parse_args(
    ["report", "upload", "--file", "/r/junit.xml", "--url", "http://x:8081",
     "--namespace", "ns", "--job", "j", "--now"]
)
assert args.func.__name__ == "cmd_report_upload"
print(json.dumps(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", SIDECAR], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(proc.stdout))


@pytest.mark.parametrize("module", HEAVY)
def test_the_upload_sidecar_does_not_import(loaded: set[str], module: str) -> None:
    assert not {m for m in loaded if m == module or m.startswith(f"{module}.")}


PLUGIN = """
import json, sys
import greenloop.pytest_plugin
print(json.dumps(sorted(sys.modules)))
"""


def test_the_pytest_plugin_does_not_import_the_spec_model() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PLUGIN], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(proc.stdout))
    assert "greenloop.core.model" not in loaded
    assert "greenloop.core.shards" in loaded  # the hash every shard agrees on
